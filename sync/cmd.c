/*
 * cmd.c - backend commands (docs/protocol.md, "Commands") and the configuration overlay.
 *
 * Applied once, answered every time. Every command this device decides is recorded in
 * the store under its id with the reply it got (store_command_*): a redelivery (the
 * broker resends unacknowledged QoS 1 messages, the backend retries) is answered from
 * there with "duplicate": true and applied no second time, across restarts too. A command
 * that acts through the engine (policy_assign, policy_revoke, end_cover) is recorded in
 * the same transaction as the event it produced (core_submit_cmd), so a crash can never
 * leave the event applied and the command unrecorded, or the reverse. A config command
 * is recorded together with the keys it set (table config_overlay) in one transaction,
 * then applied in memory; the overlay is applied again over the file at every start and
 * reload, so a setting the backend made survives a restart and a SIGHUP.
 *
 * A payload that fails any check is refused whole (proto.c), counted and answered; a
 * refusal is not recorded, since nothing was decided.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "evjson.h"
#include "log.h"
#include "proto.h"
#include "sync.h"
#include "sync_int.h"

/* ---------------------------------------------------------------- remote configuration */

enum rk_type { RK_DURATION, RK_NUMBER, RK_TRIGGER };

/*
 * The keys the backend may set, with the ranges coverd.conf(5) gives them (config.c's
 * table; engine_config_check then checks how they combine). Only billing-rule parameters
 * are remotely settable: paths, the socket and the broker settings stay local.
 */
static const struct rkey {
	const char *key;
	enum rk_type type;
	size_t off;
	double lo, hi;
	bool hi_open;
	bool grid;          /* the activation grid: never changed under an open session */
} rkeys[] = {
	{ "engine.trigger", RK_TRIGGER, offsetof(struct coverd_config, engine.trigger), 0, 0, false, false },
	{ "engine.gap_end", RK_DURATION, offsetof(struct coverd_config, engine.gap_end_ms), 1e3, 864e5, false, false },
	{ "engine.idle_end", RK_DURATION, offsetof(struct coverd_config, engine.idle_end_ms), 1e3, 864e5, false, false },
	{ "engine.app_silence", RK_DURATION, offsetof(struct coverd_config, engine.app_silence_ms), 1e3, 864e5, false, false },
	{ "engine.max_session", RK_DURATION, offsetof(struct coverd_config, engine.max_session_ms), 6e4, 6048e5, false, false },
	{ "engine.min_cover", RK_DURATION, offsetof(struct coverd_config, engine.min_cover_ms), 1e3, 864e5, false, true },
	{ "engine.activation_length", RK_DURATION, offsetof(struct coverd_config, engine.unit_ms), 6e4, 864e5, false, true },
	{ "engine.move_speed", RK_NUMBER, offsetof(struct coverd_config, engine.move_speed_mps), 0, 100, true, false },
	{ "engine.max_eph", RK_NUMBER, offsetof(struct coverd_config, engine.max_eph_m), 0, 1e5, false, false },
	{ "engine.max_jump_speed", RK_NUMBER, offsetof(struct coverd_config, engine.max_jump_mps), 0, 1e4, false, false },
	{ "engine.max_fix_gap", RK_DURATION, offsetof(struct coverd_config, engine.max_fix_gap_ms), 1e3, 864e5, false, false },
};

static const struct rkey *rkey_find(const char *key)
{
	for (size_t i = 0; i < sizeof(rkeys) / sizeof(rkeys[0]); i++)
		if (strcmp(rkeys[i].key, key) == 0)
			return &rkeys[i];
	return NULL;
}

/* Sets one key from its JSON value text. 0, or -EINVAL with why. */
static int rkey_apply(struct coverd_config *cfg, const char *key, const char *value, char *why,
                      size_t whylen)
{
	const struct rkey *k = rkey_find(key);
	if (k == NULL) {
		snprintf(why, whylen, "%s is not remotely settable", key);
		return -EINVAL;
	}
	cJSON *v = cJSON_Parse(value);
	int r = -EINVAL;
	char *field = (char *)cfg + k->off;
	switch (k->type) {
	case RK_TRIGGER: {
		enum engine_trigger t;
		if (cJSON_IsString(v) && engine_trigger_parse(v->valuestring, &t) == 0) {
			memcpy(field, &t, sizeof(t));
			r = 0;
		} else {
			snprintf(why, whylen, "%s must be job, online or motion", key);
		}
		break;
	}
	case RK_DURATION: {
		int64_t ms = -1;
		if (cJSON_IsString(v) && config_parse_duration(v->valuestring, &ms) == 0)
			;
		else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0 &&
		         v->valuedouble <= 1e9 && floor(v->valuedouble * 1000.0) == v->valuedouble * 1000.0)
			ms = (int64_t)(v->valuedouble * 1000.0);   /* a bare number is seconds */
		if (ms < 0) {
			snprintf(why, whylen, "%s: not a duration (\"10m\", \"90s\" or seconds)", key);
		} else if ((double)ms < k->lo || (double)ms > k->hi) {
			char a[32], b[32];
			config_format_duration((int64_t)k->lo, a, sizeof(a));
			config_format_duration((int64_t)k->hi, b, sizeof(b));
			snprintf(why, whylen, "%s: out of range [%s, %s]", key, a, b);
		} else {
			memcpy(field, &ms, sizeof(ms));
			r = 0;
		}
		break;
	}
	case RK_NUMBER: {
		double d = NAN;
		if (cJSON_IsNumber(v))
			d = v->valuedouble;
		if (!isfinite(d)) {
			snprintf(why, whylen, "%s: not a number", key);
		} else if (d <= k->lo || (k->hi_open ? d >= k->hi : d > k->hi)) {
			snprintf(why, whylen, "%s: out of range (%g, %g%s", key, k->lo, k->hi,
			         k->hi_open ? ")" : "]");
		} else {
			memcpy(field, &d, sizeof(d));
			r = 0;
		}
		break;
	}
	}
	cJSON_Delete(v);
	return r;
}

struct overlay_ctx {
	struct coverd_config tmp;
	int n, bad;
};

static int overlay_row(void *ctx, const char *key, const char *value, const char *cmd_id,
                       int64_t t_ms)
{
	(void)t_ms;
	struct overlay_ctx *o = ctx;
	char why[160];
	if (rkey_apply(&o->tmp, key, value, why, sizeof(why)) != 0) {
		log_warnx("configuration set by backend command %s ignored: %s", cmd_id, why);
		o->bad++;
		return 0;
	}
	o->n++;
	return 0;
}

int sync_config_overlay(struct store *st, struct coverd_config *cfg)
{
	struct overlay_ctx o;
	memset(&o, 0, sizeof(o));
	o.tmp = *cfg;
	int r = store_config_overlay(st, overlay_row, &o);
	if (r < 0)
		return r;
	if (o.n == 0)
		return 0;
	const char *why = NULL;
	if (engine_config_check(&o.tmp.engine, &why) != 0) {
		log_warnx("configuration set by backend commands conflicts with the file (%s); "
		          "using the file's values", why);
		return 0;
	}
	*cfg = o.tmp;
	return o.n;
}

/* ---------------------------------------------------------------- replies */

/* Prints a reply; result (may be NULL) is consumed. */
static int reply_print(const char *id, bool ok, cJSON *result, const char *error,
                       bool duplicate, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	bool good = o != NULL && cJSON_AddNumberToObject(o, "v", 1) != NULL &&
	            (id != NULL ? cJSON_AddStringToObject(o, "id", id) != NULL
	                        : cJSON_AddNullToObject(o, "id") != NULL) &&
	            cJSON_AddBoolToObject(o, "ok", ok) != NULL;
	if (good && ok) {
		if (result == NULL)
			result = cJSON_CreateObject();
		good = result != NULL && cJSON_AddItemToObject(o, "result", result);
		if (!good)
			cJSON_Delete(result);
		result = NULL;
	} else if (good) {
		good = cJSON_AddStringToObject(o, "error", error != NULL ? error : "failed") != NULL;
	}
	cJSON_Delete(result);
	good = good && cJSON_AddBoolToObject(o, "duplicate", duplicate) != NULL &&
	       cJSON_PrintPreallocated(o, buf, (int)len, 0);
	cJSON_Delete(o);
	return good ? 0 : -ENOSPC;
}

static void reply_send(struct sync *s, const char *text)
{
	if (sync__publish(s, s->t_reply, text, strlen(text), false, NULL) != 0)
		log_warnx("MQTT: command reply not sent (the backend will resend the command)");
}

/* A reply that records nothing: the command was refused before anything was decided. */
static void reply_refusal(struct sync *s, const char *id, const char *error)
{
	char buf[512];
	if (reply_print(id, false, NULL, error, false, buf, sizeof(buf)) == 0)
		reply_send(s, buf);
}

/* Records a decided command that produced no event, then answers it. */
static void decide(struct sync *s, const struct sync_cmd *cmd, const char *json, cJSON *result,
                   const char *error, const struct store_overlay_kv *kv, size_t n,
                   const char *counter)
{
	char buf[STORE_CMD_REPLY_MAX + 1];
	if (reply_print(cmd->id, error == NULL, result, error, false, buf, sizeof(buf)) != 0) {
		reply_refusal(s, cmd->id, "internal: reply too large");
		return;
	}
	int r = store_command_put(core_store(s->core), cmd->id, json, buf, core_now(s->core), kv, n);
	if (r != 0) {
		log_warnx("command %s not recorded: %s; not applied", cmd->id, store_strerror(r));
		core_count(s->core, "cmd.store_failed", 1);
		reply_refusal(s, cmd->id, "store_failed");
		return;
	}
	core_count(s->core, counter, 1);
	reply_send(s, buf);
}

struct ev_ctx {
	const struct sync_cmd *cmd;
	char reply[STORE_CMD_REPLY_MAX + 1];
	bool made;
};

/* core_reply_fn: the reply of an engine command, from the step's actions. */
static int event_reply(void *ctx, const struct engine_state *st, const struct engine_actions *acts,
                       int reject, char *buf, size_t len)
{
	(void)st;
	struct ev_ctx *e = ctx;
	cJSON *result = NULL;
	char err[96];
	const char *error = NULL;
	if (reject == REJECT_POLICY_MISMATCH) {
		error = "policy_mismatch";   /* the command error docs/protocol.md names */
	} else if (reject != 0) {
		snprintf(err, sizeof(err), "rejected: %s", engine_reject_name((enum engine_reject)reject));
		error = err;
	} else {
		result = cJSON_CreateObject();
		if (result == NULL)
			return -ENOMEM;
		bool ok;
		if (e->cmd->type == SYNC_CMD_POLICY_ASSIGN) {
			ok = cJSON_AddStringToObject(result, "policy_id", e->cmd->policy_id) != NULL;
		} else {
			enum engine_rule want = e->cmd->type == SYNC_CMD_END_COVER ? RULE_END_COMMAND
			                                                           : RULE_POLICY_REVOKED;
			const char *ended = NULL;
			for (size_t i = 0; i < acts->n; i++)
				if (acts->a[i].type == ACTION_SESSION_CLOSE && acts->a[i].rule == want)
					ended = acts->a[i].sess.id;
			ok = ended != NULL ? cJSON_AddStringToObject(result, "ended_session", ended) != NULL
			                   : cJSON_AddNullToObject(result, "ended_session") != NULL;
		}
		if (!ok) {
			cJSON_Delete(result);
			return -ENOMEM;
		}
	}
	int r = reply_print(e->cmd->id, error == NULL, result, error, false, e->reply,
	                    sizeof(e->reply));
	if (r != 0 || strlen(e->reply) >= len)
		return -ENOSPC;
	memcpy(buf, e->reply, strlen(e->reply) + 1);
	e->made = true;
	return 0;
}

static void apply_event(struct sync *s, const struct sync_cmd *cmd, const char *json)
{
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	switch (cmd->type) {
	case SYNC_CMD_POLICY_ASSIGN:
		ev.type = COV_EV_POLICY;
		ev.u.policy.assign = true;
		snprintf(ev.u.policy.policy_id, sizeof(ev.u.policy.policy_id), "%s", cmd->policy_id);
		snprintf(ev.u.policy.driver_id, sizeof(ev.u.policy.driver_id), "%s", cmd->driver_id);
		snprintf(ev.u.policy.vehicle_id, sizeof(ev.u.policy.vehicle_id), "%s", cmd->vehicle_id);
		break;
	case SYNC_CMD_POLICY_REVOKE:
		ev.type = COV_EV_POLICY;
		ev.u.policy.assign = false;
		snprintf(ev.u.policy.policy_id, sizeof(ev.u.policy.policy_id), "%s", cmd->policy_id);
		break;
	default:
		ev.type = COV_EV_CMD;
		ev.u.cmd = CMD_END_COVER;
		break;
	}
	core_stamp(s->core, &ev, INT64_MIN);
	struct ev_ctx e = { .cmd = cmd };
	struct core_result res;
	int r = core_submit_cmd(s->core, &ev, cmd->id, json, event_reply, &e, &res);
	if (r != 0 || !e.made) {
		log_warnx("command %s (%s) not applied: %s", cmd->id, sync_cmd_name(cmd->type),
		          r != 0 ? store_strerror(r) : "no reply");
		core_count(s->core, "cmd.store_failed", 1);
		reply_refusal(s, cmd->id, "store_failed");
		return;
	}
	log_info("command %s (%s) %s%s", cmd->id, sync_cmd_name(cmd->type),
	         res.accepted ? "applied" : "rejected by the engine: ",
	         res.accepted ? "" : engine_reject_name(res.reject));
	core_count(s->core, res.accepted                         ? "cmd.applied"
	                    : res.reject == REJECT_POLICY_MISMATCH ? "cmd.policy_mismatch"
	                                                          : "cmd.rejected", 1);
	reply_send(s, e.reply);
}

static void apply_config(struct sync *s, const struct sync_cmd *cmd, const char *json)
{
	struct coverd_config n = *core_config(s->core);
	const struct coverd_config *o = core_config(s->core);
	char why[200], err[240];
	struct store_overlay_kv kv[SYNC_CONFIG_KEYS_MAX];
	for (size_t i = 0; i < cmd->n_set; i++) {
		if (rkey_apply(&n, cmd->set[i].key, cmd->set[i].value, why, sizeof(why)) != 0) {
			snprintf(err, sizeof(err), "bad_config: %s", why);
			goto bad;
		}
		kv[i].key = cmd->set[i].key;
		kv[i].value = cmd->set[i].value;
	}
	const char *cwhy = NULL;
	if (core_state(s->core)->s.open &&
	    (n.engine.unit_ms != o->engine.unit_ms || n.engine.min_cover_ms != o->engine.min_cover_ms)) {
		snprintf(err, sizeof(err), "bad_config: activation_length and min_cover cannot change "
		         "while session %s is open", core_state(s->core)->s.id);
		goto bad;
	}
	if (engine_config_check(&n.engine, &cwhy) != 0) {
		snprintf(err, sizeof(err), "bad_config: %s", cwhy);
		goto bad;
	}
	cJSON *result = cJSON_CreateObject();
	cJSON *keys = result != NULL ? cJSON_AddArrayToObject(result, "applied") : NULL;
	for (size_t i = 0; keys != NULL && i < cmd->n_set; i++) {
		cJSON *k = cJSON_CreateString(cmd->set[i].key);
		if (k == NULL || !cJSON_AddItemToArray(keys, k)) {
			cJSON_Delete(k);
			keys = NULL;
		}
	}
	if (keys == NULL) {
		cJSON_Delete(result);
		reply_refusal(s, cmd->id, "internal: out of memory");
		return;
	}
	/* Recorded (with the overlay) before it is applied: a crash in between is repaired
	 * by the overlay at the next start. */
	char buf[STORE_CMD_REPLY_MAX + 1];
	if (reply_print(cmd->id, true, result, NULL, false, buf, sizeof(buf)) != 0) {
		reply_refusal(s, cmd->id, "internal: reply too large");
		return;
	}
	int r = store_command_put(core_store(s->core), cmd->id, json, buf, core_now(s->core), kv,
	                          cmd->n_set);
	if (r != 0) {
		log_warnx("command %s not recorded: %s; not applied", cmd->id, store_strerror(r));
		core_count(s->core, "cmd.store_failed", 1);
		reply_refusal(s, cmd->id, "store_failed");
		return;
	}
	if (core_reload(s->core, &n) != 0)
		log_warnx("command %s: recorded but not applied until the next start", cmd->id);
	else
		log_info("command %s (config): %zu key%s set by the backend", cmd->id, cmd->n_set,
		         cmd->n_set == 1 ? "" : "s");
	core_count(s->core, "cmd.applied", 1);
	reply_send(s, buf);
	return;
bad:
	log_warnx("command %s (config) refused: %s", cmd->id, err);
	decide(s, cmd, json, NULL, err, NULL, 0, "cmd.bad_config");
}

struct dup_ctx {
	char reply[STORE_CMD_REPLY_MAX + 64];
	bool found;
};

static int dup_row(void *ctx, const struct store_command_row *r)
{
	struct dup_ctx *d = ctx;
	cJSON *o = cJSON_Parse(r->reply);
	bool ok = cJSON_IsObject(o);
	if (ok) {
		cJSON_DeleteItemFromObjectCaseSensitive(o, "duplicate");
		ok = cJSON_AddTrueToObject(o, "duplicate") != NULL &&
		     cJSON_PrintPreallocated(o, d->reply, (int)sizeof(d->reply), 0);
	}
	cJSON_Delete(o);
	d->found = ok;
	return ok ? 0 : -EIO;
}

void sync__cmd_on_message(struct sync *s, const void *payload, size_t len)
{
	struct sync_cmd cmd;
	const char *reason = "malformed";
	char why[200], name[48], err[240];
	int r = sync_proto_cmd(payload, len, &cmd, &reason, why, sizeof(why));
	if (r != 0) {
		snprintf(name, sizeof(name), "cmd.%s", reason);
		core_count(s->core, name, 1);
		log_warnx("command %s refused (%s): %s", cmd.have_id ? cmd.id : "(no id)", reason, why);
		if (r == -ENOTSUP)
			snprintf(err, sizeof(err), "unknown_command");
		else if (r == -EPROTO)
			snprintf(err, sizeof(err), "unsupported_version");
		else
			snprintf(err, sizeof(err), "%s: %s", reason, why);
		reply_refusal(s, cmd.have_id ? cmd.id : NULL, err);
		return;
	}
	/* Checked by sync_proto_cmd: len <= SYNC_CMD_MAX. The copy is NUL-terminated. */
	char json[SYNC_CMD_MAX + 1];
	memcpy(json, payload, len);
	json[len] = '\0';

	struct dup_ctx d = { .found = false };
	r = store_command_get(core_store(s->core), cmd.id, dup_row, &d);
	if (r == 0 && d.found) {
		log_info("command %s (%s) already applied: answering again, not applying",
		         cmd.id, sync_cmd_name(cmd.type));
		core_count(s->core, "cmd.duplicate", 1);
		reply_send(s, d.reply);
		return;
	}
	if (r != -ENOENT) {
		log_warnx("command %s: the record of applied commands cannot be read; not applied",
		          cmd.id);
		core_count(s->core, "cmd.store_failed", 1);
		reply_refusal(s, cmd.id, "store_failed");
		return;
	}
	if (cmd.have_expires && core_now(s->core) > cmd.expires_ms) {
		log_warnx("command %s (%s) arrived after it expired; not applied", cmd.id,
		          sync_cmd_name(cmd.type));
		decide(s, &cmd, json, NULL, "expired", NULL, 0, "cmd.expired");
		return;
	}
	switch (cmd.type) {
	case SYNC_CMD_PING: {
		cJSON *res = cJSON_CreateObject();
		char t[EVJSON_TIME_MAX];
		evjson_format_time(core_now(s->core), t, sizeof(t));
		if (res == NULL || cJSON_AddTrueToObject(res, "pong") == NULL ||
		    cJSON_AddStringToObject(res, "t", t) == NULL) {
			cJSON_Delete(res);
			reply_refusal(s, cmd.id, "internal: out of memory");
			return;
		}
		/* A ping changes nothing, so it is answered without a record: recorded, a
		 * backend's keep-alive pings would push real commands out of the window of the
		 * last STORE_CMD_KEEP ids, and a redelivered old command would be applied again. */
		char buf[STORE_CMD_REPLY_MAX + 1];
		if (reply_print(cmd.id, true, res, NULL, false, buf, sizeof(buf)) != 0) {
			reply_refusal(s, cmd.id, "internal: reply too large");
			return;
		}
		core_count(s->core, "cmd.applied", 1);
		reply_send(s, buf);
		return;
	}
	case SYNC_CMD_POLICY_REVOKE:
		/* Whether the revoke names a policy the device may give up (the one held, or the
		 * one the open session runs under) is the engine's to judge, the same on every
		 * path (socket, replay, here): a mismatch comes back as its rejection. */
		apply_event(s, &cmd, json);
		return;
	case SYNC_CMD_POLICY_ASSIGN:
	case SYNC_CMD_END_COVER:
		apply_event(s, &cmd, json);
		return;
	case SYNC_CMD_CONFIG:
		apply_config(s, &cmd, json);
		return;
	}
}
