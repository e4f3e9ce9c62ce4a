/*
 * engine_harness.c - the model and drivers shared by the engine's tests; see the header.
 */
#include "engine_harness.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void errbuf_init(struct errbuf *eb)
{
	eb->n = 0;
	eb->len = 0;
	eb->s[0] = '\0';
}

void errbuf_add(struct errbuf *eb, const char *fmt, ...)
{
	eb->n++;
	/* Keep room for the ellipsis so a flood of messages still ends readably. */
	if (eb->len + 8 >= sizeof(eb->s))
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(eb->s + eb->len, sizeof(eb->s) - eb->len - 8, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	size_t room = sizeof(eb->s) - eb->len - 8;
	eb->len += (size_t)w < room ? (size_t)w : room - 1;
	if (eb->len + 1 < sizeof(eb->s)) {
		eb->s[eb->len++] = '\n';
		eb->s[eb->len] = '\0';
	}
	if (eb->len + 8 >= sizeof(eb->s)) {
		memcpy(eb->s + eb->len, "...\n", 5);
		eb->len += 4;
	}
}

void harness_fmt_time(char *buf, size_t len, int64_t t_ms)
{
	int64_t sec = t_ms / 1000, ms = t_ms % 1000;
	if (ms < 0) {
		ms += 1000;
		sec -= 1;
	}
	time_t tt = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&tt, &tm)) {
		snprintf(buf, len, "%" PRId64 "ms", t_ms);
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
}

void model_init(struct model *m)
{
	/* Sessions are cleared as they open; clearing all of them here would dominate the
	 * property test's run time. */
	m->n = 0;
	m->steps = m->ticks = m->actions = m->tracks = m->rejects = 0;
	m->last_reject = REJECT_NONE;
	m->check_deadlines = false;
	m->cur = -1;
	m->hash = 1469598103934665603ULL;
	errbuf_init(&m->err);
}

int model_act_count(const struct model *m, int si)
{
	int n = 0;
	for (int k = 0; k < ENGINE_MAX_ACTS; k++)
		if (m->s[si].acts[k].seen)
			n++;
	return n;
}

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		*h ^= b[i];
		*h *= 1099511628211ULL;
	}
}

static void hash_i64(uint64_t *h, int64_t v) { hash_bytes(h, &v, sizeof(v)); }
static void hash_dbl(uint64_t *h, double v) { hash_bytes(h, &v, sizeof(v)); }

/* Hashes what an action says, field by field, so struct padding never enters the hash. */
static void hash_action(uint64_t *h, const struct engine_action *a)
{
	hash_i64(h, a->type);
	hash_i64(h, a->rule);
	hash_i64(h, a->at_ms);
	hash_i64(h, a->reject);
	if (a->type != ACTION_REJECT) {
		hash_bytes(h, a->sess.id, strnlen(a->sess.id, sizeof(a->sess.id)));
		hash_i64(h, (int64_t)a->sess.ordinal);
		hash_i64(h, a->sess.start_ms);
		hash_i64(h, a->sess.end_ms);
		hash_i64(h, a->sess.end_reason);
	}
	if (a->type == ACTION_ACT_OPEN || a->type == ACTION_ACT_CLOSE ||
	    a->type == ACTION_ACT_VOID) {
		const struct engine_activation *x = &a->act;
		hash_i64(h, x->index);
		hash_i64(h, x->status);
		hash_i64(h, x->revision);
		hash_i64(h, x->start_ms);
		hash_i64(h, x->end_ms);
		hash_i64(h, x->end_reason);
		hash_dbl(h, x->distance_m);
		hash_i64(h, x->moving_ms);
		hash_i64(h, x->jobs);
		hash_i64(h, x->tq);
		hash_i64(h, x->anomalies);
	}
	if (a->type == ACTION_TRACK) {
		hash_dbl(h, a->fix.lat);
		hash_dbl(h, a->fix.lon);
	}
}

static const char *type_name(enum engine_action_type t)
{
	switch (t) {
	case ACTION_SESSION_OPEN: return "SESSION_OPEN";
	case ACTION_SESSION_CLOSE: return "SESSION_CLOSE";
	case ACTION_ACT_OPEN: return "ACT_OPEN";
	case ACTION_ACT_CLOSE: return "ACT_CLOSE";
	case ACTION_ACT_VOID: return "ACT_VOID";
	case ACTION_TRACK: return "TRACK";
	case ACTION_REJECT: return "REJECT";
	case ACTION_NOTE: return "NOTE";
	}
	return "?";
}

static void model_act_action(struct model *m, const struct engine_config *cfg,
                             const struct engine_action *a, char *tb)
{
	if (m->cur < 0) {
		errbuf_add(&m->err, "%s %s before any SESSION_OPEN", tb, type_name(a->type));
		return;
	}
	struct model_session *ms = &m->s[m->cur];
	if (strcmp(a->sess.id, ms->id) != 0 || a->sess.ordinal != ms->ordinal)
		errbuf_add(&m->err, "%s %s names session %s (%" PRIu64 "), want %s (%" PRIu64 ")",
		           tb, type_name(a->type), a->sess.id, a->sess.ordinal, ms->id, ms->ordinal);
	int idx = a->act.index;
	if (idx < 0 || idx >= ENGINE_MAX_ACTS) {
		errbuf_add(&m->err, "%s %s index %d out of range", tb, type_name(a->type), idx);
		return;
	}
	struct model_act *ma = &ms->acts[idx];
	const struct engine_activation *x = &a->act;
	if (a->type == ACTION_ACT_OPEN) {
		int64_t want = ms->start_ms + (int64_t)idx * cfg->unit_ms;
		if (ma->seen)
			errbuf_add(&m->err, "%s activation %d opened twice", tb, idx);
		if (x->revision != 1 || x->status != ACT_OPEN || x->end_ms != 0)
			errbuf_add(&m->err, "%s ACT_OPEN %d: revision %d status %d end_ms %" PRId64
			           " (want 1, ACT_OPEN, 0)", tb, idx, x->revision, x->status,
			           x->end_ms);
		if (idx != ms->max_index + 1)
			errbuf_add(&m->err, "%s activation %d opened after %d", tb, idx,
			           ms->max_index);
		if (x->start_ms != want)
			errbuf_add(&m->err, "%s activation %d starts at %+" PRId64
			           " ms from the session start, want %+" PRId64, tb, idx,
			           x->start_ms - ms->start_ms, want - ms->start_ms);
		if (idx > 0 && a->at_ms != x->start_ms)
			errbuf_add(&m->err, "%s activation %d opened at %+" PRId64
			           " ms from its hour", tb, idx, a->at_ms - x->start_ms);
		if (ms->closed)
			errbuf_add(&m->err, "%s activation %d opened after SESSION_CLOSE", tb, idx);
		if (idx > ms->max_index)
			ms->max_index = idx;
		ma->open_at_ms = a->at_ms;
		ma->open_rule = a->rule;
	} else {
		if (!ma->seen)
			errbuf_add(&m->err, "%s %s of activation %d that was never opened", tb,
			           type_name(a->type), idx);
		else if (x->revision != ma->a.revision + 1)
			errbuf_add(&m->err, "%s %s activation %d revision %d after %d", tb,
			           type_name(a->type), idx, x->revision, ma->a.revision);
		if (ma->seen && x->start_ms != ma->a.start_ms)
			errbuf_add(&m->err, "%s %s activation %d start moved", tb, type_name(a->type),
			           idx);
		if (a->type == ACTION_ACT_CLOSE) {
			if (x->status != ACT_CLOSED)
				errbuf_add(&m->err, "%s ACT_CLOSE %d status %d", tb, idx, x->status);
			if (x->end_ms < x->start_ms || x->end_ms - x->start_ms > cfg->unit_ms)
				errbuf_add(&m->err, "%s ACT_CLOSE %d bad interval [%" PRId64 ", %" PRId64
				           ")", tb, idx, x->start_ms, x->end_ms);
			if (x->end_reason == END_NONE || x->end_reason == END_VOID)
				errbuf_add(&m->err, "%s ACT_CLOSE %d end reason %s", tb, idx,
				           engine_end_reason_name(x->end_reason));
		} else if (x->status != ACT_VOID) {
			errbuf_add(&m->err, "%s ACT_VOID %d status %d", tb, idx, x->status);
		}
		ma->last_rule = a->rule;
	}
	ma->a = *x;
	ma->seen = true;
	ma->changes++;
}

static void model_apply(struct model *m, const struct engine_config *cfg,
                        const struct engine_state *st, const struct engine_event *ev, int rc,
                        const struct engine_actions *out)
{
	char tb[64], tbuf[40];
	harness_fmt_time(tbuf, sizeof(tbuf), ev->t_ms);
	snprintf(tb, sizeof(tb), "[event type %d at %s]", (int)ev->type, tbuf);
	m->steps++;
	if (out->n > ENGINE_MAX_ACTIONS) {
		errbuf_add(&m->err, "%s out->n %zu > ENGINE_MAX_ACTIONS", tb, out->n);
		return;
	}
	bool saw_reject = false;
	for (size_t i = 0; i < out->n; i++) {
		const struct engine_action *a = &out->a[i];
		m->actions++;
		hash_action(&m->hash, a);
		switch (a->type) {
		case ACTION_SESSION_OPEN: {
			if (m->cur >= 0 && !m->s[m->cur].closed)
				errbuf_add(&m->err, "%s SESSION_OPEN while session %s is open", tb,
				           m->s[m->cur].id);
			if (m->n >= MODEL_MAX_SESSIONS) {
				errbuf_add(&m->err, "%s more than %d sessions", tb, MODEL_MAX_SESSIONS);
				break;
			}
			struct model_session *ms = &m->s[m->n];
			memset(ms, 0, sizeof(*ms));
			memcpy(ms->id, a->sess.id, sizeof(ms->id));
			ms->id[sizeof(ms->id) - 1] = '\0';
			ms->ordinal = a->sess.ordinal;
			ms->trigger = a->sess.trigger;
			ms->start_ms = a->sess.start_ms;
			ms->end_ms = INT64_MIN;
			ms->open_at_ms = a->at_ms;
			ms->open_rule = a->rule;
			ms->max_index = -1;
			/* An event opens a session at its own time; the one exception is max_session
			 * ending a session mid-job, which opens the next at once, at that deadline
			 * (RULE_START_JOB_IN_PROGRESS, fired before this step's event). */
			bool at_event = a->at_ms == ev->t_ms;
			if (!at_event && !(a->rule == RULE_START_JOB_IN_PROGRESS && a->at_ms < ev->t_ms))
				errbuf_add(&m->err, "%s SESSION_OPEN at %" PRId64 " by rule %s, want the "
				           "event's time", tb, a->at_ms, engine_rule_name(a->rule));
			if (a->sess.start_ms != a->at_ms)
				errbuf_add(&m->err, "%s SESSION_OPEN at %" PRId64 " start %" PRId64
				           ", want the time it opened", tb, a->at_ms, a->sess.start_ms);
			if (a->sess.end_ms != 0)
				errbuf_add(&m->err, "%s SESSION_OPEN with end_ms %" PRId64, tb,
				           a->sess.end_ms);
			/* The event itself may change the held policy, and may end a session opened
			 * at a deadline before it, so these hold for opens at the event's time. */
			if (at_event && (strcmp(a->sess.policy_id, st->policy.policy_id) != 0 ||
			                 strcmp(a->sess.driver_id, st->policy.driver_id) != 0 ||
			                 strcmp(a->sess.vehicle_id, st->policy.vehicle_id) != 0))
				errbuf_add(&m->err, "%s SESSION_OPEN policy %s/%s/%s, held %s/%s/%s", tb,
				           a->sess.policy_id, a->sess.driver_id, a->sess.vehicle_id,
				           st->policy.policy_id, st->policy.driver_id,
				           st->policy.vehicle_id);
			/* Only the event's own step opens a session at its time, so that one is st->s. */
			if (at_event && (strcmp(st->s.id, ms->id) != 0 || st->s.ordinal != ms->ordinal ||
			                 st->s.start_ms != ms->start_ms))
				errbuf_add(&m->err, "%s SESSION_OPEN %s but the state holds %s", tb, ms->id,
				           st->s.id);
			m->cur = m->n++;
			break;
		}
		case ACTION_SESSION_CLOSE: {
			if (m->cur < 0 || m->s[m->cur].closed) {
				errbuf_add(&m->err, "%s SESSION_CLOSE with no open session", tb);
				break;
			}
			struct model_session *ms = &m->s[m->cur];
			ms->closed = true;
			ms->close_at_ms = a->at_ms;
			ms->close_rule = a->rule;
			ms->end_ms = a->sess.end_ms;
			ms->end_reason = a->sess.end_reason;
			if (strcmp(a->sess.id, ms->id) != 0 || a->sess.ordinal != ms->ordinal ||
			    a->sess.start_ms != ms->start_ms)
				errbuf_add(&m->err, "%s SESSION_CLOSE names session %s, want %s", tb,
				           a->sess.id, ms->id);
			if (a->sess.end_ms < ms->start_ms || a->sess.end_ms > a->at_ms)
				errbuf_add(&m->err, "%s SESSION_CLOSE end %" PRId64 " outside [start %"
				           PRId64 ", fired %" PRId64 "]", tb, a->sess.end_ms, ms->start_ms,
				           a->at_ms);
			if (st->s.ordinal == ms->ordinal && strcmp(st->s.id, ms->id) == 0) {
				if (st->s.open)
					errbuf_add(&m->err, "%s SESSION_CLOSE but st->s.open", tb);
				if (st->s.end_ms != ms->end_ms || st->s.end_reason != ms->end_reason)
					errbuf_add(&m->err, "%s SESSION_CLOSE says end %" PRId64 " %s, the "
					           "state %" PRId64 " %s", tb, ms->end_ms,
					           engine_end_reason_name(ms->end_reason), st->s.end_ms,
					           engine_end_reason_name(st->s.end_reason));
			}
			break;
		}
		case ACTION_ACT_OPEN:
		case ACTION_ACT_CLOSE:
		case ACTION_ACT_VOID:
			model_act_action(m, cfg, a, tb);
			break;
		case ACTION_TRACK:
			m->tracks++;
			if (m->cur < 0 || m->s[m->cur].closed || strcmp(a->sess.id, m->s[m->cur].id) != 0)
				errbuf_add(&m->err, "%s TRACK for session '%s' while not on cover in it", tb,
				           a->sess.id);
			break;
		case ACTION_NOTE:
			break;
		case ACTION_REJECT:
			m->rejects++;
			m->last_reject = a->reject;
			saw_reject = true;
			if (rc == 0)
				errbuf_add(&m->err, "%s ACTION_REJECT but engine_step returned 0", tb);
			break;
		default:
			errbuf_add(&m->err, "%s unknown action type %d", tb, (int)a->type);
			break;
		}
	}
	if (rc != 0) {
		/* A revoke is judged once the deadlines before it fired (engine.h): their
		 * actions may precede its ACTION_REJECT; every other rejection stands alone. */
		size_t last = out->n > 0 ? out->n - 1 : 0;
		if (!saw_reject || out->n == 0 || out->a[last].type != ACTION_REJECT ||
		    (rc != REJECT_POLICY_MISMATCH && out->n != 1))
			errbuf_add(&m->err, "%s rejected (%d) with %zu actions, want one ACTION_REJECT "
			           "last", tb, rc, out->n);
		else if ((int)out->a[last].reject != rc)
			errbuf_add(&m->err, "%s returned %d but ACTION_REJECT says %d", tb, rc,
			           (int)out->a[last].reject);
	}
}

static struct engine_event ev_base(int64_t t, enum engine_event_type type)
{
	struct engine_event e;
	memset(&e, 0, sizeof(e));
	e.t_ms = t;
	e.type = type;
	e.tq = TQ_GNSS;
	return e;
}

struct engine_event ev_tick(int64_t t) { return ev_base(t, COV_EV_TICK); }

struct engine_event ev_app(int64_t t, enum engine_app_event a)
{
	struct engine_event e = ev_base(t, COV_EV_APP);
	e.u.app = a;
	return e;
}

struct engine_event ev_fix(int64_t t, double lat, double lon, double speed, double eph)
{
	struct engine_event e = ev_base(t, COV_EV_FIX);
	e.u.fix.lat = lat;
	e.u.fix.lon = lon;
	e.u.fix.speed_mps = speed;
	e.u.fix.course_deg = 0.0;
	e.u.fix.eph_m = eph;
	e.u.fix.mode = 3;
	return e;
}

struct engine_event ev_assign(int64_t t, const char *policy, const char *driver,
                              const char *vehicle)
{
	struct engine_event e = ev_base(t, COV_EV_POLICY);
	e.u.policy.assign = true;
	snprintf(e.u.policy.policy_id, sizeof(e.u.policy.policy_id), "%s", policy);
	snprintf(e.u.policy.driver_id, sizeof(e.u.policy.driver_id), "%s", driver);
	snprintf(e.u.policy.vehicle_id, sizeof(e.u.policy.vehicle_id), "%s", vehicle);
	return e;
}

struct engine_event ev_revoke(int64_t t, const char *policy)
{
	struct engine_event e = ev_base(t, COV_EV_POLICY);
	e.u.policy.assign = false;
	snprintf(e.u.policy.policy_id, sizeof(e.u.policy.policy_id), "%s", policy);
	return e;
}

struct engine_event ev_ignition(int64_t t, bool on)
{
	struct engine_event e = ev_base(t, COV_EV_IGNITION);
	e.u.ignition_on = on;
	return e;
}

struct engine_event ev_cmd(int64_t t, enum engine_cmd c)
{
	struct engine_event e = ev_base(t, COV_EV_CMD);
	e.u.cmd = c;
	return e;
}

static void check_deadline_not_late(const struct engine_config *cfg,
                                    const struct engine_state *st, struct model *m)
{
	static struct engine_state probe;
	static struct engine_actions pout;
	int64_t d = engine_next_deadline(cfg, st);
	/* A deadline at d fires only once time passes d: a tick at d itself fires nothing. */
	int64_t t = d == INT64_MAX ? st->last_t_ms + 20 * DAY_MS : d;
	if (t < st->last_t_ms)
		return;
	probe = *st;
	struct engine_event tk = ev_tick(t);
	int rc = engine_step(cfg, &probe, &tk, &pout);
	if (rc == 0 && pout.n == 0)
		return;
	char a[40], b[40];
	harness_fmt_time(a, sizeof(a), st->last_t_ms);
	if (d == INT64_MAX)
		snprintf(b, sizeof(b), "INT64_MAX");
	else
		harness_fmt_time(b, sizeof(b), d);
	errbuf_add(&m->err, "after the event at %s engine_next_deadline() says %s, but a tick "
	           "%s fires %s (rc %d) at %+" PRId64 " ms", a, b,
	           d == INT64_MAX ? "20 days later" : "at it",
	           pout.n > 0 ? type_name(pout.a[0].type) : "nothing", rc,
	           pout.n > 0 ? pout.a[0].at_ms - st->last_t_ms : 0);
}

int harness_step(const struct engine_config *cfg, struct engine_state *st,
                 const struct engine_event *ev, struct engine_actions *out, struct model *m)
{
	int rc = engine_step(cfg, st, ev, out);
	if (rc < 0 || rc > REJECT_TOO_MANY_JOBS)
		errbuf_add(&m->err, "engine_step returned %d", rc);
	model_apply(m, cfg, st, ev, rc, out);
	if (rc == 0) {
		if (st->last_t_ms != ev->t_ms)
			errbuf_add(&m->err, "after an event at %" PRId64 " last_t_ms is %" PRId64,
			           ev->t_ms, st->last_t_ms);
		int64_t d = engine_next_deadline(cfg, st);
		if (d < ev->t_ms) {
			char tb[40];
			harness_fmt_time(tb, sizeof(tb), ev->t_ms);
			errbuf_add(&m->err, "after the event at %s the next deadline is %+" PRId64
			           " ms from it: every deadline before it should have fired",
			           tb, d - ev->t_ms);
		}
		if (m->check_deadlines)
			check_deadline_not_late(cfg, st, m);
	}
	return rc;
}

/* Sends TICKs 1 ms after the deadlines before t (inclusive: at or before t), as the
 * daemon's timer would; a tick never goes past t. */
static void tick_before(const struct engine_config *cfg, struct engine_state *st,
                        struct engine_actions *out, struct model *m, int64_t t, bool inclusive)
{
	for (int guard = 0;; guard++) {
		int64_t d = engine_next_deadline(cfg, st);
		if (d == INT64_MAX || d > t || (!inclusive && d == t))
			return;
		if (d + 1 > t)
			return;  /* due at t itself: the tick or event at t + 1 judges it */
		if (st->started && d < st->last_t_ms) {
			errbuf_add(&m->err, "next deadline %" PRId64 " is not after the last event %"
			           PRId64, d, st->last_t_ms);
			return;
		}
		if (guard > 200000) {
			errbuf_add(&m->err, "deadlines never stop before %" PRId64, t);
			return;
		}
		struct engine_event tk = ev_tick(d + 1);
		m->ticks++;
		harness_step(cfg, st, &tk, out, m);
	}
}

int harness_feed(const struct engine_config *cfg, struct engine_state *st,
                 const struct engine_event *ev, struct engine_actions *out, struct model *m,
                 bool tick)
{
	if (tick)
		tick_before(cfg, st, out, m, ev->t_ms, false);
	return harness_step(cfg, st, ev, out, m);
}

void harness_drain(const struct engine_config *cfg, struct engine_state *st,
                   struct engine_actions *out, struct model *m, int max_ticks)
{
	for (int i = 0;; i++) {
		int64_t d = engine_next_deadline(cfg, st);
		if (d == INT64_MAX)
			return;
		if (i >= max_ticks) {
			errbuf_add(&m->err, "still a deadline pending after %d ticks", max_ticks);
			return;
		}
		if (st->started && d < st->last_t_ms) {
			errbuf_add(&m->err, "next deadline %" PRId64 " is before the last event %"
			           PRId64, d, st->last_t_ms);
			return;
		}
		struct engine_event tk = ev_tick(d + 1);
		m->ticks++;
		harness_step(cfg, st, &tk, out, m);
	}
}

void harness_run_until(const struct engine_config *cfg, struct engine_state *st,
                       struct engine_actions *out, struct model *m, int64_t until, bool tick)
{
	if (tick)
		tick_before(cfg, st, out, m, until, true);
	if (!st->started || st->last_t_ms < until) {
		struct engine_event tk = ev_tick(until);
		m->ticks++;
		harness_step(cfg, st, &tk, out, m);
	}
}

static bool dbl_same(double a, double b) { return memcmp(&a, &b, sizeof(a)) == 0; }

#define DIFF(cond, ...)                               \
	do {                                          \
		if (cond) {                           \
			snprintf(why, len, __VA_ARGS__); \
			return false;                 \
		}                                     \
	} while (0)

static bool pos_equal(const struct engine_pos *a, const struct engine_pos *b)
{
	if (a->valid != b->valid)
		return false;
	return !a->valid || (dbl_same(a->lat, b->lat) && dbl_same(a->lon, b->lon));
}

static bool act_equal(const struct engine_activation *a, const struct engine_activation *b,
                      char *why, size_t len)
{
	DIFF(a->index != b->index, "index %d vs %d", a->index, b->index);
	DIFF(a->status != b->status, "act %d status %d vs %d", a->index, a->status, b->status);
	DIFF(a->revision != b->revision, "act %d revision %d vs %d", a->index, a->revision,
	     b->revision);
	DIFF(a->start_ms != b->start_ms || a->end_ms != b->end_ms,
	     "act %d interval [%" PRId64 ",%" PRId64 ") vs [%" PRId64 ",%" PRId64 ")", a->index,
	     a->start_ms, a->end_ms, b->start_ms, b->end_ms);
	DIFF(a->end_reason != b->end_reason, "act %d end reason %s vs %s", a->index,
	     engine_end_reason_name(a->end_reason), engine_end_reason_name(b->end_reason));
	DIFF(!dbl_same(a->distance_m, b->distance_m), "act %d distance %.3f vs %.3f", a->index,
	     a->distance_m, b->distance_m);
	DIFF(a->moving_ms != b->moving_ms, "act %d moving_ms %" PRId64 " vs %" PRId64, a->index,
	     a->moving_ms, b->moving_ms);
	DIFF(a->jobs != b->jobs, "act %d jobs %d vs %d", a->index, a->jobs, b->jobs);
	DIFF(!pos_equal(&a->start_pos, &b->start_pos) || !pos_equal(&a->end_pos, &b->end_pos),
	     "act %d positions differ", a->index);
	DIFF(a->tq != b->tq, "act %d tq %d vs %d", a->index, a->tq, b->tq);
	DIFF(a->anomalies != b->anomalies, "act %d anomalies %#x vs %#x", a->index,
	     a->anomalies, b->anomalies);
	return true;
}

bool harness_session_equal(const struct engine_session *a, const struct engine_session *b,
                           char *why, size_t len)
{
	DIFF(a->open != b->open, "session open %d vs %d", a->open, b->open);
	DIFF(strcmp(a->id, b->id) != 0, "session id %s vs %s", a->id, b->id);
	DIFF(a->ordinal != b->ordinal, "ordinal %" PRIu64 " vs %" PRIu64, a->ordinal,
	     b->ordinal);
	DIFF(a->trigger != b->trigger, "trigger differs");
	DIFF(a->start_ms != b->start_ms || a->end_ms != b->end_ms,
	     "session [%" PRId64 ",%" PRId64 ") vs [%" PRId64 ",%" PRId64 ")", a->start_ms,
	     a->end_ms, b->start_ms, b->end_ms);
	DIFF(a->end_reason != b->end_reason, "session end reason %s vs %s",
	     engine_end_reason_name(a->end_reason), engine_end_reason_name(b->end_reason));
	DIFF(strcmp(a->policy_id, b->policy_id) || strcmp(a->driver_id, b->driver_id) ||
	     strcmp(a->vehicle_id, b->vehicle_id), "session policy/driver/vehicle differ");
	DIFF(a->n_acts != b->n_acts, "n_acts %d vs %d", a->n_acts, b->n_acts);
	for (int k = 0; k < a->n_acts && k < ENGINE_MAX_ACTS; k++)
		if (!act_equal(&a->acts[k], &b->acts[k], why, len))
			return false;
	return true;
}

bool harness_state_equal(const struct engine_state *a, const struct engine_state *b,
                         char *why, size_t len)
{
	DIFF(a->version != b->version, "version %d vs %d", a->version, b->version);
	DIFF(a->started != b->started, "started differs");
	DIFF(a->last_t_ms != b->last_t_ms, "last_t_ms %" PRId64 " vs %" PRId64, a->last_t_ms,
	     b->last_t_ms);
	DIFF(a->online != b->online || a->private_mode != b->private_mode ||
	     a->ignition_on != b->ignition_on || a->has_policy != b->has_policy,
	     "online/private/ignition/policy flags differ");
	DIFF(a->policy.assign != b->policy.assign ||
	     strcmp(a->policy.policy_id, b->policy.policy_id) != 0 ||
	     strcmp(a->policy.driver_id, b->policy.driver_id) != 0 ||
	     strcmp(a->policy.vehicle_id, b->policy.vehicle_id) != 0, "policy differs");
	DIFF(a->jobs_active != b->jobs_active, "jobs_active %d vs %d", a->jobs_active,
	     b->jobs_active);
	DIFF(a->last_job_end_ms != b->last_job_end_ms || a->last_app_ms != b->last_app_ms ||
	     a->last_move_ms != b->last_move_ms, "last job end / app / move differ");
	DIFF(a->have_fix != b->have_fix, "have_fix differs");
	if (a->have_fix) {
		DIFF(a->last_fix_ms != b->last_fix_ms, "last_fix_ms differs");
		DIFF(!dbl_same(a->last_fix.lat, b->last_fix.lat) ||
		     !dbl_same(a->last_fix.lon, b->last_fix.lon) ||
		     !dbl_same(a->last_fix.speed_mps, b->last_fix.speed_mps) ||
		     a->last_fix.mode != b->last_fix.mode, "last_fix differs");
		DIFF(a->last_fix_moving != b->last_fix_moving, "last_fix_moving differs");
	}
	DIFF(a->sessions_total != b->sessions_total, "sessions_total %" PRIu64 " vs %" PRIu64,
	     a->sessions_total, b->sessions_total);
	DIFF(a->rejected_total != b->rejected_total, "rejected_total %" PRIu64 " vs %" PRIu64,
	     a->rejected_total, b->rejected_total);
	return harness_session_equal(&a->s, &b->s, why, len);
}

bool harness_model_equal(const struct model *a, const struct model *b, char *why, size_t len)
{
	DIFF(a->n != b->n, "%d sessions vs %d", a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const struct model_session *x = &a->s[i], *y = &b->s[i];
		DIFF(strcmp(x->id, y->id) != 0, "session %d id %s vs %s", i, x->id, y->id);
		DIFF(x->start_ms != y->start_ms || x->end_ms != y->end_ms,
		     "session %s [%" PRId64 ",%" PRId64 ") vs [%" PRId64 ",%" PRId64 ")", x->id,
		     x->start_ms, x->end_ms, y->start_ms, y->end_ms);
		DIFF(x->end_reason != y->end_reason, "session %s end reason %s vs %s", x->id,
		     engine_end_reason_name(x->end_reason), engine_end_reason_name(y->end_reason));
		DIFF(x->closed != y->closed || x->close_at_ms != y->close_at_ms,
		     "session %s closed %d at %" PRId64 " vs %d at %" PRId64, x->id, x->closed,
		     x->close_at_ms, y->closed, y->close_at_ms);
		DIFF(x->open_rule != y->open_rule || x->close_rule != y->close_rule,
		     "session %s rules differ", x->id);
		for (int k = 0; k < ENGINE_MAX_ACTS; k++) {
			const struct model_act *p = &x->acts[k], *q = &y->acts[k];
			DIFF(p->seen != q->seen, "session %s activation %d seen %d vs %d", x->id, k,
			     p->seen, q->seen);
			if (!p->seen)
				continue;
			DIFF(p->changes != q->changes, "session %s activation %d changes %d vs %d",
			     x->id, k, p->changes, q->changes);
			if (!act_equal(&p->a, &q->a, why, len))
				return false;
		}
	}
	DIFF(a->actions != b->actions, "%zu actions vs %zu", a->actions, b->actions);
	DIFF(a->hash != b->hash, "action streams differ (hash %016" PRIx64 " vs %016" PRIx64 ")",
	     a->hash, b->hash);
	DIFF(a->rejects != b->rejects, "%zu rejects vs %zu", a->rejects, b->rejects);
	return true;
}

enum engine_rule harness_rule_for_end(enum engine_end_reason r)
{
	switch (r) {
	case END_OFFLINE: return RULE_OFFLINE;
	case END_GAP: return RULE_GAP_END;
	case END_IDLE: return RULE_IDLE_END;
	case END_APP_SILENCE: return RULE_APP_SILENCE;
	case END_MAX_SESSION: return RULE_MAX_SESSION;
	case END_POLICY_REVOKED: return RULE_POLICY_REVOKED;
	case END_COMMAND: return RULE_END_COMMAND;
	case END_PRIVATE: return RULE_PRIVATE;
	case END_JOB_TIMEOUT: return RULE_JOB_TIMEOUT;
	case END_NONE:
	case END_HOUR:
	case END_VOID:
		break;
	}
	return RULE_NONE;
}
