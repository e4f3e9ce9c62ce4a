/*
 * status.c - the retained status on coverd/v1/<device>/status (docs/protocol.md,
 * "Status", docs/schema/status.schema.json).
 *
 * Published first on every connect, whenever the cover state changes (session,
 * activation, policy, the outbox bound, health, the backlog draining), and every
 * status interval (2 × keepalive) so the backlog's age stays current on dashboards. It is
 * one QoS 1 message behind at most `window` records, never behind the backlog.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "evjson.h"
#include "log.h"
#include "sync_int.h"

static bool add_time(cJSON *o, const char *k, bool have, int64_t ms)
{
	if (!have)
		return cJSON_AddNullToObject(o, k) != NULL;
	char t[EVJSON_TIME_MAX];
	evjson_format_time(ms, t, sizeof(t));
	return cJSON_AddStringToObject(o, k, t) != NULL;
}

static bool add_str(cJSON *o, const char *k, const char *v)
{
	if (v == NULL || v[0] == '\0')
		return cJSON_AddNullToObject(o, k) != NULL;
	return cJSON_AddStringToObject(o, k, v) != NULL;
}

static bool add_reason(cJSON *arr, const char *r)
{
	cJSON *s = cJSON_CreateString(r);
	if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
		cJSON_Delete(s);
		return false;
	}
	return true;
}

/* The health reasons, as short fixed strings dashboards can match on. */
static bool add_health(struct sync *s, cJSON *o, bool *healthy)
{
	const struct engine_state *st = core_state(s->core);
	cJSON *h = cJSON_AddObjectToObject(o, "health");
	cJSON *reasons = h != NULL ? cJSON_CreateArray() : NULL;
	if (reasons == NULL)
		return false;
	bool ok = true;
	if (store_ping(core_store(s->core)) != 0)
		ok = ok && add_reason(reasons, "database_unreachable");
	/* Without a GNSS source there is no fix to judge. */
	if (strcmp(s->cfg.gnss_source, "none") != 0) {
		if (!st->have_fix)
			ok = ok && add_reason(reasons, "no_fix");
		else if (core_now(s->core) - st->last_fix_ms >= s->cfg.fix_stale_ms)
			ok = ok && add_reason(reasons, "fix_stale");
	}
	if (s->outbox_full)
		ok = ok && add_reason(reasons, "outbox_full");
	*healthy = cJSON_GetArraySize(reasons) == 0;
	ok = ok && cJSON_AddBoolToObject(h, "healthy", *healthy) != NULL;
	if (!cJSON_AddItemToObject(h, "reasons", reasons)) {
		cJSON_Delete(reasons);
		return false;
	}
	return ok;
}

static cJSON *build_online(struct sync *s, char *key, size_t keylen)
{
	struct core *c = s->core;
	const struct engine_state *st = core_state(c);
	char act[ENGINE_ACT_ID_MAX];
	core_open_activation_id(c, act, sizeof(act));
	int64_t now = core_now(c);
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	bool on = st->s.open;
	const char *policy = st->has_policy ? st->policy.policy_id : NULL;
	bool ok = cJSON_AddNumberToObject(o, "v", 1) != NULL &&
	          cJSON_AddStringToObject(o, "device_id", s->device_id) != NULL &&
	          cJSON_AddStringToObject(o, "state", "online") != NULL &&
	          add_time(o, "t", true, now) &&
	          cJSON_AddStringToObject(o, "version", COVERD_VERSION) != NULL &&
	          cJSON_AddBoolToObject(o, "on_cover", on) != NULL &&
	          add_str(o, "session", on ? st->s.id : NULL) &&
	          add_time(o, "session_start", on, st->s.start_ms) &&
	          add_str(o, "activation", act) && add_str(o, "policy_id", policy);
	if (ok && st->have_fix && isfinite(st->last_fix.lat) && isfinite(st->last_fix.lon)) {
		cJSON *f = cJSON_AddObjectToObject(o, "last_fix");
		ok = f != NULL && add_time(f, "t", true, st->last_fix_ms) &&
		     cJSON_AddNumberToObject(f, "lat", st->last_fix.lat) != NULL &&
		     cJSON_AddNumberToObject(f, "lon", st->last_fix.lon) != NULL &&
		     (isfinite(st->last_fix.speed_mps)
		          ? cJSON_AddNumberToObject(f, "speed", st->last_fix.speed_mps) != NULL
		          : cJSON_AddNullToObject(f, "speed") != NULL);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "last_fix") != NULL;
	}
	int64_t depth = 0, oldest = 0;
	cJSON *ob = ok ? cJSON_AddObjectToObject(o, "outbox") : NULL;
	ok = ob != NULL && store_outbox_depth(core_store(c), &depth, &oldest) == 0;
	if (ok) {
		double age = oldest != 0 && now > oldest ? (double)(now - oldest) / 1000.0 : 0.0;
		ok = cJSON_AddNumberToObject(ob, "depth", (double)depth) != NULL &&
		     (depth > 0 ? cJSON_AddNumberToObject(ob, "oldest_unacked_age_s",
		                                          round(age * 10.0) / 10.0) != NULL
		                : cJSON_AddNullToObject(ob, "oldest_unacked_age_s") != NULL) &&
		     add_time(ob, "last_ack", s->last_ack_t_ms != 0, s->last_ack_t_ms) &&
		     cJSON_AddNumberToObject(ob, "acked_upto", (double)s->acked_upto) != NULL &&
		     cJSON_AddBoolToObject(ob, "full", s->outbox_full) != NULL &&
		     cJSON_AddNumberToObject(ob, "track_dropped", (double)s->track_pruned) != NULL;
	}
	bool healthy = false;
	ok = ok && add_health(s, o, &healthy);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	snprintf(key, keylen, "%d|%s|%s|%s|%d|%d|%d", on, on ? st->s.id : "", act,
	         policy != NULL ? policy : "", s->outbox_full, healthy, depth == 0);
	return o;
}

void sync__status_publish(struct sync *s)
{
	char key[sizeof(s->status_key)];
	cJSON *o = build_online(s, key, sizeof(key));
	bool ok = o != NULL &&
	          cJSON_PrintPreallocated(o, s->status_print, (int)sizeof(s->status_print), 0);
	cJSON_Delete(o);
	if (!ok) {
		log_warnx("MQTT: the status could not be built");
		return;
	}
	if (sync__publish(s, s->t_status, s->status_print, strlen(s->status_print), true, NULL) ==
	    0) {
		memcpy(s->status_key, key, sizeof(key));
		s->status_dirty = false;
	}
}

void sync__status_changed(struct sync *s)
{
	char key[sizeof(s->status_key)];
	cJSON *o = build_online(s, key, sizeof(key));
	cJSON_Delete(o);
	if (o == NULL || strcmp(key, s->status_key) == 0)
		return;
	s->status_dirty = true;
	sync__kick(s);
}

int sync__status_offline(struct sync *s, const char *reason, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL && cJSON_AddNumberToObject(o, "v", 1) != NULL &&
	          cJSON_AddStringToObject(o, "device_id", s->device_id) != NULL &&
	          cJSON_AddStringToObject(o, "state", "offline") != NULL &&
	          cJSON_AddStringToObject(o, "reason", reason) != NULL;
	/* The will is fixed at connect time, so only the shutdown form carries a time. */
	if (ok && strcmp(reason, "shutdown") == 0)
		ok = add_time(o, "t", true, core_now(s->core));
	ok = ok && cJSON_PrintPreallocated(o, buf, (int)len, 0);
	cJSON_Delete(o);
	return ok ? (int)strlen(buf) : -ENOSPC;
}
