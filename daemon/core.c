/*
 * core.c - one path for every event: engine_step, then the store.
 *
 * A fix that changes nothing billable (its only action is a track point, or none) is not
 * committed on its own: its track point is buffered by the store and the new engine state
 * stays in memory until the next flush (every track_flush_ms, when the buffer fills, at
 * the next billing event, and at shutdown). That is what keeps 1 Hz tracking from costing
 * one fsync per second, and the loss a power cut can cause is bounded by track_flush_ms of
 * motion detail. Everything else is committed before core_submit returns.
 */
#include "core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evjson.h"
#include "log.h"
#include "paths.h"

struct core {
	struct coverd_config cfg;
	struct loop *loop;
	struct store *store;
	char db_path[CONFIG_PATH_MAX + 32];
	struct engine_state st;
	struct engine_state saved;      /* rollback copy while a step is being committed */
	struct engine_actions acts;
	struct core_timebase tb;
	struct loop_timer deadline_timer;
	struct loop_timer flush_timer;
	bool dirty;                     /* state in memory is newer than the stored one */
	struct core_stats stats;
	store_sign_fn sign;
	void *sign_ctx;
	core_commit_fn commit_hook;
	void *commit_ctx;
	/* The backend command of the event being submitted (core_submit_cmd), else NULL. */
	const char *cmd_id, *cmd_json;
	core_reply_fn cmd_reply;
	void *cmd_reply_ctx;
	/* The socket request of the event being submitted (core_submit_request), else NULL. */
	const char *req_id, *req_raw;
	core_request_reply_fn req_reply;
	void *req_reply_ctx;
	int req_rj;                     /* the engine's verdict on it, for the reply */
};

/* ---------------------------------------------------------------- time */

static int64_t wall_now(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t never(void *ctx, int64_t t_ms)
{
	(void)ctx;
	(void)t_ms;
	return INT64_MAX;
}

int64_t core_now(struct core *c)
{
	int64_t t = c->tb.now(c->tb.ctx);
	if (c->st.started && t < c->st.last_t_ms)
		t = c->st.last_t_ms;
	return t;
}

void core_stamp(struct core *c, struct engine_event *ev, int64_t gnss_time_ms)
{
	if (c->tb.stamp != NULL) {
		c->tb.stamp(c->tb.ctx, ev, gnss_time_ms);
	} else {
		ev->t_ms = c->tb.now(c->tb.ctx);
		ev->tq = TQ_UNSYNCED;
	}
	/* The timeline never runs backwards, but a deadline fired a moment before its loop
	 * time (rounding in a replay's scaling) must not make the next event look old. */
	if (c->st.started && ev->t_ms < c->st.last_t_ms)
		ev->t_ms = c->st.last_t_ms;
}

static void arm_deadline(struct core *c)
{
	int64_t d = engine_next_deadline(&c->cfg.engine, &c->st);
	if (d == INT64_MAX) {
		loop_timer_stop(c->loop, &c->deadline_timer);
		return;
	}
	/* A deadline at d fires at the first time past it (engine.h): tick at d + 1 ms. */
	int64_t at = c->tb.to_loop(c->tb.ctx, d + 1);
	if (at == INT64_MAX) {
		loop_timer_stop(c->loop, &c->deadline_timer);
		return;
	}
	if (loop_timer_start(c->loop, &c->deadline_timer, at, 0) != 0)
		log_warnx("cannot arm the engine deadline timer");
}

static void on_deadline(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct core *c = arg;
	int64_t d = engine_next_deadline(&c->cfg.engine, &c->st);
	if (d == INT64_MAX)
		return;
	/* The tick carries the deadline's own time plus 1 ms rather than "now": the rule
	 * then fires exactly where the engine computed it, however late the loop woke up,
	 * and every event stamped d was applied before it was judged. */
	int64_t at = d + 1;
	if (c->st.started && at < c->st.last_t_ms)
		at = c->st.last_t_ms;
	int r = core_tick(c, at, "timer");
	if (r != 0)
		log_warnx("deadline tick at %" PRId64 " not stored: %s", at, store_strerror(r));
	/* core_tick re-arms; after a failure the state was rolled back, so retry later
	 * rather than spin on a failing disk. */
	if (r != 0)
		(void)loop_timer_after(c->loop, &c->deadline_timer, 5000, 0);
}

static void on_flush(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct core *c = arg;
	int r = core_flush(c);
	if (r != 0)
		log_warnx("track flush failed: %s", store_strerror(r));
}

void core_set_timebase(struct core *c, const struct core_timebase *tb)
{
	c->tb = *tb;
	if (c->tb.to_loop == NULL)
		c->tb.to_loop = never;
	if (c->tb.now == NULL)
		c->tb.now = wall_now;
	arm_deadline(c);
}

/* ---------------------------------------------------------------- lifecycle */

static int open_store(struct core *c, char *err, size_t errlen)
{
	int r = store_open(&c->store, c->db_path, STORE_RW, err, errlen);
	if (r != 0) {
		c->store = NULL;
		return r;
	}
	store_set_signer(c->store, c->sign, c->sign_ctx);
	r = store_set_max_size(c->store, c->cfg.max_size_kib * 1024);
	if (r != 0) {
		snprintf(err, errlen, "%s: cannot bound the database to %lld KiB: %s", c->db_path,
		         (long long)c->cfg.max_size_kib, store_errmsg(c->store));
		store_close(c->store);
		c->store = NULL;
		return r;
	}
	r = store_load_state(c->store, &c->st);
	if (r == -ENOENT) {
		engine_state_init(&c->st);
		r = 0;
	} else if (r != 0) {
		snprintf(err, errlen, "%s: cannot load the engine state: %s", c->db_path,
		         store_strerror(r));
		store_close(c->store);
		c->store = NULL;
		return r;
	}
	c->dirty = false;
	return 0;
}

int core_new(struct core **out, const struct coverd_config *cfg, struct loop *l,
             char *err, size_t errlen)
{
	if (out == NULL || cfg == NULL || l == NULL)
		return -EINVAL;
	struct core *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->cfg = *cfg;
	c->loop = l;
	int n = snprintf(c->db_path, sizeof(c->db_path), "%s/%s", cfg->state_dir, COVERD_DB_NAME);
	if (n < 0 || (size_t)n >= sizeof(c->db_path)) {
		snprintf(err, errlen, "%s: state directory path too long", cfg->state_dir);
		free(c);
		return -ENAMETOOLONG;
	}
	int r = open_store(c, err, errlen);
	if (r != 0) {
		free(c);
		return r;
	}
	c->tb.now = wall_now;
	c->tb.to_loop = never;
	loop_timer_init(&c->deadline_timer, on_deadline, c);
	loop_timer_init(&c->flush_timer, on_flush, c);
	if (c->cfg.track_flush_ms > 0)
		(void)loop_timer_after(l, &c->flush_timer, c->cfg.track_flush_ms,
		                       c->cfg.track_flush_ms);
	if (c->st.s.open) {
		char ts[EVJSON_TIME_MAX];
		evjson_format_time(c->st.s.start_ms, ts, sizeof(ts));
		log_info("resuming session %s (started %s, %d activations)", c->st.s.id, ts,
		         c->st.s.n_acts);
	}
	*out = c;
	return 0;
}

void core_free(struct core *c)
{
	if (c == NULL)
		return;
	loop_timer_stop(c->loop, &c->deadline_timer);
	loop_timer_stop(c->loop, &c->flush_timer);
	if (c->store != NULL) {
		int r = core_flush(c);
		if (r != 0)
			log_warnx("final flush failed: %s", store_strerror(r));
		store_close(c->store);
	}
	free(c);
}

/*
 * Storage is full (the disk, or [store] max_size_kib): deletes stored track detail, that
 * of closed sessions first and the open session's only when nothing else is left, so the
 * billing record that did not fit can be committed (design invariant 5). Returns 0 when
 * room was made, -ENOSPC when no track detail is left to delete.
 */
static int make_room(struct core *c)
{
	const char *keep = c->saved.s.open ? c->saved.s.id : NULL;
	int64_t points = 0;
	int r = store_track_prune(c->store, keep, 64, &points);
	if (r == -ENOENT && keep != NULL)
		r = store_track_prune(c->store, NULL, 64, &points);
	if (r == -ENOENT) {
		log_warnx("storage full and no track detail left to delete: billing records "
		          "cannot be stored until space is freed");
		return -ENOSPC;
	}
	if (r != 0)
		return r;
	log_warnx("storage full: deleted %lld stored track points to keep billing records",
	          (long long)points);
	core_count(c, "storage.full", 1);
	return 0;
}

int core_flush(struct core *c)
{
	if (c->store == NULL)
		return -EBADF;
	if (!c->dirty && store_track_pending(c->store) == 0)
		return 0;
	c->saved = c->st;
	int r = store_flush(c->store, &c->st);
	for (int tries = 0; r == -ENOSPC && tries < 8 && make_room(c) == 0; tries++)
		r = store_flush(c->store, &c->st);
	if (r == 0)
		c->dirty = false;
	else
		c->stats.store_errors++;
	return r;
}

int core_restart(struct core *c, char *err, size_t errlen)
{
	int r = core_flush(c);
	if (r != 0) {
		snprintf(err, errlen, "%s: flush before restart failed: %s", c->db_path,
		         store_strerror(r));
		return r;
	}
	loop_timer_stop(c->loop, &c->deadline_timer);
	store_close(c->store);
	c->store = NULL;
	/* Forget everything the process knew, as a real restart would. */
	memset(&c->st, 0, sizeof(c->st));
	r = open_store(c, err, errlen);
	if (r != 0)
		return r;
	log_info("restarted: state reloaded from %s%s%s", c->db_path,
	         c->st.s.open ? ", resuming session " : "", c->st.s.open ? c->st.s.id : "");
	arm_deadline(c);
	if (c->commit_hook != NULL)
		c->commit_hook(c->commit_ctx, CORE_COMMIT_REOPEN | CORE_COMMIT_STATE);
	return 0;
}

/* ---------------------------------------------------------------- events */

static void log_actions(const struct core *c)
{
	char ts[EVJSON_TIME_MAX], id[ENGINE_ACT_ID_MAX];
	for (size_t i = 0; i < c->acts.n; i++) {
		const struct engine_action *a = &c->acts.a[i];
		evjson_format_time(a->at_ms, ts, sizeof(ts));
		switch (a->type) {
		case ACTION_SESSION_OPEN:
			log_info("session %s opened at %s by rule %s (policy %s)", a->sess.id, ts,
			         engine_rule_name(a->rule), a->sess.policy_id);
			break;
		case ACTION_SESSION_CLOSE: {
			char end[EVJSON_TIME_MAX];
			evjson_format_time(a->sess.end_ms, end, sizeof(end));
			log_info("session %s closed: ended at %s (%s), detected at %s by rule %s",
			         a->sess.id, end, engine_end_reason_name(a->sess.end_reason), ts,
			         engine_rule_name(a->rule));
			break;
		}
		case ACTION_ACT_OPEN:
			engine_activation_id(id, sizeof(id), a->sess.id, a->act.index);
			log_info("activation %s opened at %s by rule %s", id, ts,
			         engine_rule_name(a->rule));
			break;
		case ACTION_ACT_CLOSE:
			engine_activation_id(id, sizeof(id), a->sess.id, a->act.index);
			log_info("activation %s closed (%s, revision %d) at %s by rule %s", id,
			         engine_end_reason_name(a->act.end_reason), a->act.revision, ts,
			         engine_rule_name(a->rule));
			break;
		case ACTION_ACT_VOID:
			engine_activation_id(id, sizeof(id), a->sess.id, a->act.index);
			log_info("activation %s voided (revision %d) at %s by rule %s", id,
			         a->act.revision, ts, engine_rule_name(a->rule));
			break;
		case ACTION_REJECT:
			log_warnx("event at %s rejected: %s", ts, engine_reject_name(a->reject));
			break;
		case ACTION_NOTE:
			if (a->note == NOTE_JOB_TIMEOUT)
				log_info("at %s a job with no event for job_timeout counts as ended at its "
				         "last event", ts);
			else
				log_info("event at %s: %s (counted, without effect)", ts,
				         a->note == NOTE_DUPLICATE ? "duplicate job event"
				                                   : "job accepted while offline or private");
			break;
		case ACTION_TRACK:
			break;
		}
	}
}

/* The one path of every event; count is false for ticks, which are bookkeeping. */
/* A backend command's reply is recorded in the same transaction as its event. */
static void arm_command(struct core *c, int rj)
{
	if (c->cmd_id == NULL || c->cmd_reply == NULL)
		return;
	char reply[STORE_CMD_REPLY_MAX + 1];
	if (c->cmd_reply(c->cmd_reply_ctx, &c->st, &c->acts, rj, reply, sizeof(reply)) == 0 &&
	    store_command_arm(c->store, c->cmd_id, c->cmd_json, reply) != 0)
		log_warnx("command %s: reply not recordable", c->cmd_id);
}

/* The store makes a request's reply inside the transaction, once the journal id is known. */
static int request_reply(void *ctx, int64_t event_id, char *buf, size_t len)
{
	struct core *c = ctx;
	struct core_result res = {
		.accepted = c->req_rj == 0,
		.reject = (enum engine_reject)c->req_rj,
		.journaled = true,
		.event_id = event_id,
	};
	return c->req_reply(c->req_reply_ctx, &res, buf, len);
}

/* A socket request is recorded in the same transaction as its event. */
static int arm_request(struct core *c, int rj)
{
	if (c->req_id == NULL)
		return 0;
	c->req_rj = rj;
	int r = store_request_arm(c->store, c->req_id, c->req_raw, strlen(c->req_raw),
	                          request_reply, c);
	if (r != 0)
		log_warnx("request %s: not recordable: %s", c->req_id, store_strerror(r));
	return r;
}

static int submit(struct core *c, const struct engine_event *ev, const char *source,
                  const char *raw, struct core_result *res, bool count)
{
	if (c->store == NULL)
		return -EBADF;
	struct core_result tmp;
	if (res == NULL)
		res = &tmp;
	memset(res, 0, sizeof(*res));

	c->saved = c->st;
	int rj = engine_step(&c->cfg.engine, &c->st, ev, &c->acts);

	bool billing = false;
	for (size_t i = 0; i < c->acts.n; i++)
		if (c->acts.a[i].type != ACTION_TRACK)
			billing = true;

	int r = 0;
	unsigned what = 0;
	if (rj == 0 && !billing && (ev->type == COV_EV_FIX || ev->type == COV_EV_TICK) &&
	    c->req_id == NULL) {
		/* Nothing billable: buffer the track points and keep the state in memory. A
		 * request with an id is committed, since its reply must be recorded with it. */
		for (size_t i = 0; i < c->acts.n && r == 0; i++) {
			r = store_track_add(c->store, &c->st, c->acts.a[i].at_ms, &c->acts.a[i].fix);
			for (int tries = 0; r == -ENOSPC && tries < 8 && make_room(c) == 0; tries++)
				r = store_flush(c->store, &c->st);
		}
		if (r == 0)
			c->dirty = true;
	} else {
		arm_command(c, rj);
		r = arm_request(c, rj);
		if (r == 0)
			r = store_apply(c->store, &c->cfg.engine, ev, source, raw, &c->st, &c->acts);
		for (int tries = 0; r == -ENOSPC && tries < 8 && make_room(c) == 0; tries++) {
			arm_command(c, rj);
			r = arm_request(c, rj);
			if (r == 0)
				r = store_apply(c->store, &c->cfg.engine, ev, source, raw, &c->st,
				                &c->acts);
		}
		store_command_disarm(c->store);
		store_request_disarm(c->store);
		if (r == 0) {
			c->dirty = false;
			res->journaled = true;
			res->event_id = store_last_event_id(c->store);
			what = CORE_COMMIT_STATE;
			for (size_t i = 0; i < c->acts.n; i++) {
				enum engine_action_type t = c->acts.a[i].type;
				if (t == ACTION_ACT_OPEN || t == ACTION_ACT_CLOSE || t == ACTION_ACT_VOID)
					what |= CORE_COMMIT_OUTBOX | CORE_COMMIT_SESSION;
				else if (t == ACTION_SESSION_OPEN || t == ACTION_SESSION_CLOSE)
					what |= CORE_COMMIT_SESSION;
			}
		}
	}
	if (r != 0) {
		c->st = c->saved;
		c->stats.store_errors++;
		log_warnx("%s event not stored, state rolled back: %s", source, store_strerror(r));
		return r;
	}

	log_actions(c);
	/* The store counts rejections (rejected.<reason>) in the event's own transaction. */
	if (rj != 0) {
		res->accepted = false;
		res->reject = (enum engine_reject)rj;
		if (count)
			c->stats.rejected++;
	} else {
		res->accepted = true;
		if (count)
			c->stats.applied++;
	}
	arm_deadline(c);
	if (what != 0 && c->commit_hook != NULL)
		c->commit_hook(c->commit_ctx, what);
	return 0;
}

int core_submit(struct core *c, const struct engine_event *ev, const char *source,
                const char *raw, struct core_result *res)
{
	return submit(c, ev, source, raw, res, true);
}

int core_submit_cmd(struct core *c, const struct engine_event *ev, const char *cmd_id,
                    const char *cmd_json, core_reply_fn reply, void *reply_ctx,
                    struct core_result *res)
{
	if (cmd_id == NULL || cmd_json == NULL || reply == NULL)
		return -EINVAL;
	c->cmd_id = cmd_id;
	c->cmd_json = cmd_json;
	c->cmd_reply = reply;
	c->cmd_reply_ctx = reply_ctx;
	int r = submit(c, ev, "cmd", NULL, res, true);
	c->cmd_id = NULL;
	c->cmd_json = NULL;
	c->cmd_reply = NULL;
	c->cmd_reply_ctx = NULL;
	return r;
}

int core_submit_request(struct core *c, const struct engine_event *ev, const char *source,
                        const char *raw, const char *req_id, core_request_reply_fn reply,
                        void *reply_ctx, struct core_result *res)
{
	if (raw == NULL || req_id == NULL || req_id[0] == '\0' || reply == NULL)
		return -EINVAL;
	c->req_id = req_id;
	c->req_raw = raw;
	c->req_reply = reply;
	c->req_reply_ctx = reply_ctx;
	int r = submit(c, ev, source, raw, res, true);
	c->req_id = NULL;
	c->req_raw = NULL;
	c->req_reply = NULL;
	c->req_reply_ctx = NULL;
	return r;
}

void core_set_signer(struct core *c, store_sign_fn fn, void *ctx)
{
	c->sign = fn;
	c->sign_ctx = ctx;
	if (c->store != NULL)
		store_set_signer(c->store, fn, ctx);
}

void core_set_commit_hook(struct core *c, core_commit_fn fn, void *ctx)
{
	c->commit_hook = fn;
	c->commit_ctx = ctx;
}

int core_tick(struct core *c, int64_t t_ms, const char *source)
{
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = COV_EV_TICK;
	ev.t_ms = t_ms;
	ev.tq = TQ_RTC;
	return submit(c, &ev, source, NULL, NULL, false);
}

void core_count(struct core *c, const char *name, int64_t delta)
{
	if (c->store == NULL)
		return;
	int r = store_count_add(c->store, name, delta);
	if (r != 0)
		log_warnx("counter %s not stored: %s", name, store_strerror(r));
}

/* ---------------------------------------------------------------- reload */

#define CHANGED_STR(a, b, f) (strcmp((a)->f, (b)->f) != 0)

int core_reload(struct core *c, const struct coverd_config *ncfg)
{
	const char *why = NULL;
	if (engine_config_check(&ncfg->engine, &why) != 0) {
		log_warnx("reload: engine parameters refused (%s); keeping the old configuration",
		          why != NULL ? why : "invalid");
		return -EINVAL;
	}
	struct coverd_config n = *ncfg;
	const struct coverd_config *o = &c->cfg;

	/* These are bound at start (descriptors, files, the store) and need a restart. */
	if (CHANGED_STR(&n, o, state_dir) || CHANGED_STR(&n, o, socket_path) ||
	    n.socket_mode != o->socket_mode || CHANGED_STR(&n, o, gnss_source) ||
	    CHANGED_STR(&n, o, gpsd_host) || CHANGED_STR(&n, o, gpsd_port) ||
	    n.log_syslog != o->log_syslog || n.mqtt_enabled != o->mqtt_enabled)
		log_warnx("reload: state directory, socket, GNSS, syslog and MQTT settings take "
		          "effect at the next restart");
	snprintf(n.state_dir, sizeof(n.state_dir), "%s", o->state_dir);
	snprintf(n.socket_path, sizeof(n.socket_path), "%s", o->socket_path);
	n.socket_mode = o->socket_mode;
	snprintf(n.gnss_source, sizeof(n.gnss_source), "%s", o->gnss_source);
	snprintf(n.gpsd_host, sizeof(n.gpsd_host), "%s", o->gpsd_host);
	snprintf(n.gpsd_port, sizeof(n.gpsd_port), "%s", o->gpsd_port);
	n.log_syslog = o->log_syslog;

	/* Ids and the activation grid of an open session must not change under it. */
	if (c->st.s.open) {
		if (CHANGED_STR(&n.engine, &o->engine, device_id) ||
		    n.engine.unit_ms != o->engine.unit_ms ||
		    n.engine.min_cover_ms != o->engine.min_cover_ms)
			log_warnx("reload: device id, activation length and minimum cover are not "
			          "changed while session %s is open; reload again after it ends",
			          c->st.s.id);
		snprintf(n.engine.device_id, sizeof(n.engine.device_id), "%s", o->engine.device_id);
		n.engine.unit_ms = o->engine.unit_ms;
		n.engine.min_cover_ms = o->engine.min_cover_ms;
		if (engine_config_check(&n.engine, &why) != 0) {
			log_warnx("reload: engine parameters refused with the session's activation "
			          "grid (%s); keeping the old configuration", why);
			return -EINVAL;
		}
	}
	bool flush_changed = n.track_flush_ms != o->track_flush_ms;
	c->cfg = n;
	if (flush_changed) {
		if (c->cfg.track_flush_ms > 0)
			(void)loop_timer_after(c->loop, &c->flush_timer, c->cfg.track_flush_ms,
			                       c->cfg.track_flush_ms);
		else
			loop_timer_stop(c->loop, &c->flush_timer);
	}
	arm_deadline(c);
	return 0;
}

/* ---------------------------------------------------------------- accessors */

const struct coverd_config *core_config(const struct core *c)
{
	return &c->cfg;
}

const struct engine_state *core_state(const struct core *c)
{
	return &c->st;
}

struct store *core_store(struct core *c)
{
	return c->store;
}

const struct core_stats *core_stats(const struct core *c)
{
	return &c->stats;
}

struct loop *core_loop(struct core *c)
{
	return c->loop;
}

const char *core_db_path(const struct core *c)
{
	return c->db_path;
}

void core_open_activation_id(const struct core *c, char *buf, size_t len)
{
	if (len > 0)
		buf[0] = '\0';
	if (!c->st.s.open)
		return;
	for (int i = c->st.s.n_acts - 1; i >= 0; i--) {
		if (c->st.s.acts[i].status == ACT_OPEN) {
			engine_activation_id(buf, len, c->st.s.id, c->st.s.acts[i].index);
			return;
		}
	}
}
