/*
 * engine.c - the cover session engine. See engine.h for the rules; this file keeps them
 * in one place each: earliest_end() holds every session-ending deadline, apply_*() the
 * effect of each event type, close_session() the backdating of activations.
 */
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define NONE INT64_MIN

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void engine_config_defaults(struct engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->device_id, sizeof(cfg->device_id), "%s", "coverd-dev");
	cfg->trigger = TRIGGER_JOB;
	cfg->gap_end_ms = 10 * 60 * 1000;
	cfg->idle_end_ms = 30 * 60 * 1000;
	cfg->app_silence_ms = 5 * 60 * 1000;
	cfg->max_session_ms = 16LL * 3600 * 1000;
	cfg->min_cover_ms = 60 * 60 * 1000;
	cfg->unit_ms = 60 * 60 * 1000;
	cfg->move_speed_mps = 2.0;
	cfg->max_eph_m = 50.0;
	cfg->max_jump_mps = 90.0;
	cfg->max_fix_gap_ms = 30 * 1000;
	cfg->job_timeout_ms = 3LL * 3600 * 1000;
}

int engine_config_check(const struct engine_config *cfg, const char **why)
{
	const char *r = NULL;
	size_t len = strnlen(cfg->device_id, sizeof(cfg->device_id));

	if (len == 0 || len == sizeof(cfg->device_id))
		r = "device id must be 1 to 47 characters";
	for (size_t i = 0; r == NULL && i < len; i++) {
		char c = cfg->device_id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			r = "device id may hold only letters, digits, '-', '_' and '.' "
			    "(it is part of MQTT topics and record ids)";
	}
	if (r == NULL && (cfg->trigger < TRIGGER_JOB || cfg->trigger > TRIGGER_MOTION))
		r = "trigger must be job, online or motion";
	else if (r == NULL && cfg->unit_ms < 60 * 1000)
		r = "activation_length must be at least 1 minute";
	else if (r == NULL && (cfg->gap_end_ms <= 0 || cfg->idle_end_ms <= 0 ||
	                       cfg->app_silence_ms <= 0 || cfg->max_session_ms <= 0 ||
	                       cfg->max_fix_gap_ms <= 0 || cfg->job_timeout_ms <= 0))
		r = "durations must be positive";
	else if (r == NULL && (cfg->min_cover_ms <= 0 || cfg->min_cover_ms > cfg->unit_ms))
		/* With started-unit billing the first activation already bills a whole unit; a
		 * larger minimum would bill units with no cover in them, which we refuse. */
		r = "min_cover must be positive and at most activation_length";
	else if (r == NULL && (cfg->max_session_ms + cfg->unit_ms - 1) / cfg->unit_ms > ENGINE_MAX_ACTS)
		r = "max_session may span at most 48 activations";
	else if (r == NULL && cfg->gap_end_ms >= cfg->max_session_ms)
		r = "gap_end must be shorter than max_session";
	else if (r == NULL && !(cfg->move_speed_mps > 0 && cfg->move_speed_mps < 100))
		r = "move_speed must be in (0, 100) m/s";
	else if (r == NULL && !(cfg->max_eph_m > 0 && isfinite(cfg->max_eph_m)))
		r = "max_eph must be a positive number of metres";
	else if (r == NULL && !(cfg->max_jump_mps > cfg->move_speed_mps && isfinite(cfg->max_jump_mps)))
		r = "max_jump_speed must be finite and above move_speed";
	if (r != NULL) {
		if (why)
			*why = r;
		return -EINVAL;
	}
	return 0;
}

void engine_state_init(struct engine_state *st)
{
	memset(st, 0, sizeof(*st));
	st->version = ENGINE_STATE_VERSION;
	st->last_t_ms = NONE;
	st->last_job_end_ms = NONE;
	st->last_app_ms = NONE;
	st->last_move_ms = NONE;
	st->last_fix_ms = NONE;
	st->grace_from_ms = NONE;
	st->anon_first_ms = NONE;
	st->anon_last_ms = NONE;
	st->pend.at_ms = NONE;
}

/* ---- ids and names ---------------------------------------------------------------- */

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm); no libc time zone. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

void engine_session_id(char *buf, size_t len, const char *device, int64_t start_ms, uint64_t ordinal)
{
	int64_t secs = start_ms >= 0 ? start_ms / 1000 : -((-start_ms + 999) / 1000);
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	int64_t sod = secs - days * 86400;
	int y, m, d;

	civil_from_days(days, &y, &m, &d);
	snprintf(buf, len, "%s-%04d%02d%02dT%02d%02d%02dZ-%" PRIu64, device, y, m, d,
	         (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), ordinal);
}

void engine_activation_id(char *buf, size_t len, const char *session_id, int index)
{
	snprintf(buf, len, "%s-%d", session_id, index);
}

const char *engine_end_reason_name(enum engine_end_reason r)
{
	static const char *const names[] = {
		[END_NONE] = "none", [END_OFFLINE] = "offline", [END_GAP] = "gap_end",
		[END_IDLE] = "idle_end", [END_APP_SILENCE] = "app_silence",
		[END_MAX_SESSION] = "max_session", [END_POLICY_REVOKED] = "policy_revoked",
		[END_COMMAND] = "end_cover", [END_PRIVATE] = "private", [END_HOUR] = "hour",
		[END_VOID] = "voided", [END_JOB_TIMEOUT] = "job_timeout",
	};
	if ((unsigned)r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "unknown";
}

const char *engine_rule_name(enum engine_rule r)
{
	static const char *const names[] = {
		[RULE_NONE] = "none", [RULE_START_JOB] = "start_job",
		[RULE_START_ONLINE] = "start_online", [RULE_START_MOTION] = "start_motion",
		[RULE_HOUR_BOUNDARY] = "hour_boundary", [RULE_OFFLINE] = "offline",
		[RULE_GAP_END] = "gap_end", [RULE_IDLE_END] = "idle_end",
		[RULE_APP_SILENCE] = "app_silence", [RULE_MAX_SESSION] = "max_session",
		[RULE_POLICY_REVOKED] = "policy_revoked", [RULE_END_COMMAND] = "end_cover",
		[RULE_PRIVATE] = "private", [RULE_BACKDATED_END] = "backdated_end",
		[RULE_JOB_TIMEOUT] = "job_timeout",
		[RULE_START_JOB_IN_PROGRESS] = "start_job_in_progress",
		[RULE_ZERO_LENGTH] = "zero_length",
	};
	if ((unsigned)r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "unknown";
}

const char *engine_reject_name(enum engine_reject r)
{
	switch (r) {
	case REJECT_NONE: return "none";
	case REJECT_OUT_OF_ORDER: return "out_of_order";
	case REJECT_BAD_FIX: return "bad_fix";
	case REJECT_BAD_EVENT: return "bad_event";
	case REJECT_POLICY_MISMATCH: return "policy_mismatch";
	case REJECT_TOO_MANY_JOBS: return "too_many_jobs";
	}
	return "unknown";
}

const char *engine_note_name(enum engine_note n)
{
	switch (n) {
	case NOTE_NONE: return "none";
	case NOTE_DUPLICATE: return "duplicate";
	case NOTE_JOB_IGNORED: return "job_ignored";
	case NOTE_JOB_TIMEOUT: return "job_timeout";
	}
	return "unknown";
}

static const char *const trigger_names[] = { "job", "online", "motion" };
static const char *const app_names[] = {
	[APP_ONLINE] = "online", [APP_OFFLINE] = "offline", [APP_JOB_ACCEPTED] = "job_accepted",
	[APP_JOB_PICKED_UP] = "job_picked_up", [APP_JOB_DELIVERED] = "job_delivered",
	[APP_JOB_CANCELLED] = "job_cancelled", [APP_HEARTBEAT] = "heartbeat",
	[APP_PRIVATE_ON] = "private_on", [APP_PRIVATE_OFF] = "private_off",
};
static const char *const tq_names[] = { "gnss", "ntp", "rtc", "unsynced" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *engine_trigger_name(enum engine_trigger t)
{
	return (unsigned)t < NELEM(trigger_names) ? trigger_names[t] : "unknown";
}

const char *engine_app_event_name(enum engine_app_event e)
{
	return (unsigned)e < NELEM(app_names) ? app_names[e] : "unknown";
}

const char *engine_tq_name(enum engine_time_quality q)
{
	return (unsigned)q < NELEM(tq_names) ? tq_names[q] : "unknown";
}

static int parse_name(const char *const *names, size_t n, const char *name, int *out)
{
	if (name == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (names[i] && strcmp(names[i], name) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

int engine_app_event_parse(const char *name, enum engine_app_event *out)
{
	int v, rc = parse_name(app_names, NELEM(app_names), name, &v);
	if (rc == 0)
		*out = (enum engine_app_event)v;
	return rc;
}

int engine_trigger_parse(const char *name, enum engine_trigger *out)
{
	int v, rc = parse_name(trigger_names, NELEM(trigger_names), name, &v);
	if (rc == 0)
		*out = (enum engine_trigger)v;
	return rc;
}

int engine_tq_parse(const char *name, enum engine_time_quality *out)
{
	int v, rc = parse_name(tq_names, NELEM(tq_names), name, &v);
	if (rc == 0)
		*out = (enum engine_time_quality)v;
	return rc;
}

double engine_distance_m(double lat1, double lon1, double lat2, double lon2)
{
	const double r = 6371008.8, rad = M_PI / 180.0;
	double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
	double a = sin(dlat / 2) * sin(dlat / 2) +
	           cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
	if (a > 1.0)
		a = 1.0;
	return 2.0 * r * atan2(sqrt(a), sqrt(1.0 - a));
}

/* ---- actions ---------------------------------------------------------------------- */

static void session_ref(const struct engine_session *s, struct engine_session_ref *ref)
{
	memcpy(ref->id, s->id, sizeof(ref->id));
	ref->ordinal = s->ordinal;
	ref->trigger = s->trigger;
	ref->start_ms = s->start_ms;
	ref->end_ms = s->open ? 0 : s->end_ms;
	ref->end_reason = s->open ? END_NONE : s->end_reason;
	memcpy(ref->policy_id, s->policy_id, sizeof(ref->policy_id));
	memcpy(ref->driver_id, s->driver_id, sizeof(ref->driver_id));
	memcpy(ref->vehicle_id, s->vehicle_id, sizeof(ref->vehicle_id));
}

static struct engine_action *push(const struct engine_state *st, struct engine_actions *out,
                                  enum engine_action_type type, enum engine_rule rule,
                                  int64_t at_ms)
{
	/* The bound is structural (see ENGINE_MAX_ACTIONS); reaching it would mean a bug. */
	if (out->n >= ENGINE_MAX_ACTIONS)
		return NULL;
	struct engine_action *a = &out->a[out->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	a->rule = rule;
	a->at_ms = at_ms;
	if (st->s.ordinal > 0)
		session_ref(&st->s, &a->sess);
	return a;
}

static void push_act(const struct engine_state *st, struct engine_actions *out,
                     enum engine_action_type type, enum engine_rule rule, int64_t at_ms,
                     const struct engine_activation *act)
{
	struct engine_action *a = push(st, out, type, rule, at_ms);
	if (a)
		a->act = *act;
}

/* ---- session mechanics ------------------------------------------------------------ */

static struct engine_pos current_pos(const struct engine_config *cfg,
                                     const struct engine_state *st, int64_t t)
{
	struct engine_pos p = { 0, 0, false };
	if (st->have_fix && t - st->last_fix_ms <= cfg->max_fix_gap_ms) {
		p.lat = st->last_fix.lat;
		p.lon = st->last_fix.lon;
		p.valid = true;
	}
	return p;
}

static struct engine_activation *current_act(struct engine_state *st)
{
	if (!st->s.open || st->s.n_acts == 0)
		return NULL;
	struct engine_activation *a = &st->s.acts[st->s.n_acts - 1];
	return a->status == ACT_OPEN ? a : NULL;
}

/* The next hour boundary of the open session: the start of the next activation. */
static int64_t next_boundary(const struct engine_config *cfg, const struct engine_state *st)
{
	return st->s.start_ms + (int64_t)st->s.n_acts * cfg->unit_ms;
}

/* The time since which the vehicle stands: its last moving fix in this session, or the
 * session's start before the first one. */
static int64_t still_since(const struct engine_state *st)
{
	return st->last_move_ms != NONE && st->last_move_ms >= st->s.start_ms ? st->last_move_ms
	                                                                       : st->s.start_ms;
}

/* The earliest accept among the jobs in progress, or NONE. */
static int64_t oldest_job(const struct engine_state *st)
{
	int64_t t = st->anon_jobs > 0 ? st->anon_first_ms : NONE;
	for (int i = 0; i < st->n_jobs; i++)
		if (t == NONE || st->jobs[i].accepted_ms < t)
			t = st->jobs[i].accepted_ms;
	return t;
}

/*
 * Books jobs, anomalies and time quality of an event at t on the activation whose
 * interval holds t: the open one, or, exactly at the next boundary, the one that boundary
 * will open (kept in st->pend until then).
 */
static void attribute(const struct engine_config *cfg, struct engine_state *st, int64_t t,
                      int jobs, uint32_t anomalies, enum engine_time_quality tq)
{
	struct engine_activation *a = current_act(st);
	if (a == NULL)
		return;
	if (t >= next_boundary(cfg, st)) {
		struct engine_pending *p = &st->pend;
		if (p->at_ms != t) {
			p->at_ms = t;
			p->jobs = 0;
			p->anomalies = 0;
			p->tq = TQ_GNSS;
		}
		p->jobs += jobs;
		p->anomalies |= anomalies;
		if (tq > p->tq)
			p->tq = tq;
		return;
	}
	a->jobs += jobs;
	a->anomalies |= anomalies;
	if (tq > a->tq)
		a->tq = tq;
}

static void snap_take(const struct engine_config *cfg, const struct engine_state *st,
                      struct engine_snap *snap, int64_t t)
{
	const struct engine_session *s = &st->s;

	memset(snap, 0, sizeof(*snap));
	if (!s->open || s->n_acts == 0)
		return;
	const struct engine_activation *a = &s->acts[s->n_acts - 1];
	snap->valid = true;
	snap->t_ms = t;
	snap->index = a->index;
	snap->distance_m = a->distance_m;
	snap->moving_ms = a->moving_ms;
	snap->pos = current_pos(cfg, st, t);
	snap->anomalies = a->anomalies;
	snap->tq = a->tq;
}

/* A snapshot taken at exactly `end`, or NULL. */
static const struct engine_snap *snap_for(const struct engine_state *st, int64_t end)
{
	const struct engine_snap *c[4] = { &st->snap_job, &st->snap_grace, &st->snap_app,
	                                   &st->snap_move };
	for (int i = 0; i < 4; i++)
		if (c[i]->valid && c[i]->t_ms == end)
			return c[i];
	return NULL;
}

static void restore_snap(struct engine_activation *a, const struct engine_snap *snap)
{
	a->distance_m = snap->distance_m;
	a->moving_ms = snap->moving_ms;
	a->anomalies = snap->anomalies;
	a->tq = snap->tq;
	if (snap->pos.valid)
		a->end_pos = snap->pos;
}

/* What kept cover alive when an activation began at h. */
static void alive_at(const struct engine_config *cfg, const struct engine_state *st, int64_t h,
                     struct engine_activation *a)
{
	if (st->jobs_active > 0) {
		a->alive = ALIVE_JOB;
		a->alive_since_ms = oldest_job(st);
	} else if (st->s.trigger == TRIGGER_JOB) {
		if (st->grace_from_ms != NONE && h <= st->grace_from_ms + cfg->gap_end_ms) {
			a->alive = ALIVE_GRACE;
			a->alive_since_ms = st->grace_from_ms;
		} else {
			a->alive = ALIVE_MOVEMENT;
			a->alive_since_ms = still_since(st);
		}
	} else {
		a->alive = ALIVE_ONLINE;
		a->alive_since_ms = max64(st->s.start_ms, max64(st->last_move_ms, st->last_job_end_ms));
	}
}

static void open_activation(const struct engine_config *cfg, struct engine_state *st,
                            struct engine_actions *out, int64_t start, enum engine_rule rule,
                            enum engine_time_quality tq, int64_t at)
{
	struct engine_session *s = &st->s;
	struct engine_activation *a = &s->acts[s->n_acts];

	memset(a, 0, sizeof(*a));
	a->index = s->n_acts;
	a->status = ACT_OPEN;
	a->revision = 1;
	a->start_ms = start;
	a->start_pos = current_pos(cfg, st, start);
	a->tq = tq;
	if (a->index == 0) {
		a->alive = ALIVE_START;
		a->alive_since_ms = start;
	} else {
		alive_at(cfg, st, start, a);
	}
	if (st->pend.at_ms == start) {
		a->jobs += st->pend.jobs;
		a->anomalies |= st->pend.anomalies;
		if (st->pend.tq > a->tq)
			a->tq = st->pend.tq;
	}
	st->pend.at_ms = NONE;
	s->n_acts++;
	push_act(st, out, ACTION_ACT_OPEN, rule, at, a);
}

static void open_session(const struct engine_config *cfg, struct engine_state *st,
                         struct engine_actions *out, int64_t t, enum engine_time_quality tq,
                         enum engine_rule rule)
{
	struct engine_session *s = &st->s;

	memset(s, 0, sizeof(*s));
	s->open = true;
	s->ordinal = ++st->sessions_total;
	s->trigger = cfg->trigger;
	s->start_ms = t;
	memcpy(s->policy_id, st->policy.policy_id, sizeof(s->policy_id));
	memcpy(s->driver_id, st->policy.driver_id, sizeof(s->driver_id));
	memcpy(s->vehicle_id, st->policy.vehicle_id, sizeof(s->vehicle_id));
	engine_session_id(s->id, sizeof(s->id), cfg->device_id, s->start_ms, s->ordinal);
	st->pend.at_ms = NONE;
	push(st, out, ACTION_SESSION_OPEN, rule, t);
	open_activation(cfg, st, out, s->start_ms, rule, tq, t);
}

/*
 * Ends the session at end (clamped to its start), detected at `at`. Activations that
 * start at or after the end (other than the first, which carries min_cover, unless the
 * session is of zero length with no job accepted) are voided by a new revision; a closed
 * activation reaching past the end is closed again.
 */
static void close_session(const struct engine_config *cfg, struct engine_state *st,
                          struct engine_actions *out, int64_t end,
                          enum engine_end_reason reason, enum engine_rule rule, int64_t at)
{
	struct engine_session *s = &st->s;

	end = max64(end, s->start_ms);
	const struct engine_snap *snap = end < at ? snap_for(st, end) : NULL;
	bool zero = end == s->start_ms && s->jobs_accepted == 0;

	/* Events exactly at the boundary that is also the end belong to the last activation;
	 * after a backdated end they belong to none. */
	if (st->pend.at_ms != NONE && st->pend.at_ms == end && s->n_acts > 0) {
		struct engine_activation *l = &s->acts[s->n_acts - 1];
		l->jobs += st->pend.jobs;
		l->anomalies |= st->pend.anomalies;
		if (st->pend.tq > l->tq)
			l->tq = st->pend.tq;
	}
	st->pend.at_ms = NONE;
	/* An activation that begins exactly at the end is voided; a job accepted at that
	 * instant belongs to the last billed activation, which gets a new revision for it.
	 * (Only jobs move: no job can be accepted after a backdated end, while the voided
	 * activation's anomalies and time quality may come from later events, which belong
	 * to no billed activation.) */
	int moved_to = -1;
	for (int j = 1; j < s->n_acts; j++) {
		struct engine_activation *a = &s->acts[j], *p = &s->acts[j - 1];
		if (a->status != ACT_VOID && a->start_ms == end && p->status != ACT_VOID &&
		    a->jobs > 0) {
			p->jobs += a->jobs;
			a->jobs = 0;
			moved_to = j - 1;
		}
	}
	s->open = false;
	s->end_ms = end;
	s->end_reason = reason;
	for (int j = 0; j < s->n_acts; j++) {
		struct engine_activation *a = &s->acts[j];
		if (a->status == ACT_VOID)
			continue;
		if ((j > 0 || zero) && a->start_ms >= end) {
			a->status = ACT_VOID;
			a->revision++;
			a->end_ms = a->start_ms;
			a->end_reason = END_VOID;
			push_act(st, out, ACTION_ACT_VOID, j == 0 ? RULE_ZERO_LENGTH : RULE_BACKDATED_END,
			         at, a);
		} else if (a->status == ACT_OPEN) {
			a->status = ACT_CLOSED;
			a->revision++;
			a->end_ms = min64(a->start_ms + cfg->unit_ms, end);
			a->end_reason = reason;
			a->end_pos = current_pos(cfg, st, at);
			if (snap && snap->index == j)
				restore_snap(a, snap);
			push_act(st, out, ACTION_ACT_CLOSE, rule, at, a);
		} else if (a->end_ms > end || j == moved_to) {
			a->revision++;
			if (a->end_ms > end) {
				a->end_ms = end;
				a->end_reason = reason;
			}
			if (snap && snap->index == j)
				restore_snap(a, snap);
			push_act(st, out, ACTION_ACT_CLOSE, RULE_BACKDATED_END, at, a);
		}
	}
	if (reason == END_APP_SILENCE)
		st->silence_ended = true;
	push(st, out, ACTION_SESSION_CLOSE, rule, at);
}

/* ---- deadlines -------------------------------------------------------------------- */

struct pending_end {
	int64_t at;      /* the deadline: the rule fires once time passes it */
	int64_t end;     /* when the session ends (the condition's beginning) */
	enum engine_end_reason reason;
	enum engine_rule rule;
};

/* Earlier deadlines win; at equal deadlines the rule considered first wins. */
static void consider(struct pending_end *p, bool *found, int64_t at, int64_t end,
                     enum engine_end_reason reason, enum engine_rule rule)
{
	if (!*found || at < p->at) {
		p->at = at;
		p->end = end;
		p->reason = reason;
		p->rule = rule;
		*found = true;
	}
}

/* Whether the gap_end grace is being judged: the app was alive through all of it. */
static bool grace_judged(const struct engine_config *cfg, const struct engine_state *st)
{
	return st->last_app_ms == NONE ||
	       st->grace_from_ms + cfg->gap_end_ms <= st->last_app_ms + cfg->app_silence_ms;
}

/* The earliest session-ending deadline of the open session; the rules of engine.h. */
static bool earliest_end(const struct engine_config *cfg, const struct engine_state *st,
                         struct pending_end *p)
{
	const struct engine_session *s = &st->s;
	bool found = false;

	if (!s->open)
		return false;
	if (s->trigger == TRIGGER_JOB && st->jobs_active == 0 && st->grace_from_ms != NONE &&
	    grace_judged(cfg, st))
		consider(p, &found, st->grace_from_ms + cfg->gap_end_ms, st->grace_from_ms,
		         END_GAP, RULE_GAP_END);
	if (s->trigger != TRIGGER_MOTION && st->last_app_ms != NONE) {
		int64_t ss = still_since(st);
		int64_t stand = st->jobs_active > 0 ? cfg->idle_end_ms : cfg->gap_end_ms;
		consider(p, &found, max64(st->last_app_ms + cfg->app_silence_ms, ss + stand),
		         max64(st->last_app_ms, ss), END_APP_SILENCE, RULE_APP_SILENCE);
	}
	if (s->trigger != TRIGGER_JOB && st->jobs_active == 0) {
		int64_t base = max64(s->start_ms, max64(st->last_move_ms, st->last_job_end_ms));
		consider(p, &found, base + cfg->idle_end_ms, base, END_IDLE, RULE_IDLE_END);
	}
	consider(p, &found, s->start_ms + cfg->max_session_ms, s->start_ms + cfg->max_session_ms,
	         END_MAX_SESSION, RULE_MAX_SESSION);
	return found;
}

/* The earliest job_timeout deadline of the jobs in progress, or INT64_MAX. */
static int64_t next_job_expiry(const struct engine_config *cfg, const struct engine_state *st)
{
	int64_t d = INT64_MAX;
	if (st->anon_jobs > 0)
		d = st->anon_last_ms + cfg->job_timeout_ms;
	for (int i = 0; i < st->n_jobs; i++)
		d = min64(d, st->jobs[i].last_ms + cfg->job_timeout_ms);
	return d;
}

int64_t engine_next_deadline(const struct engine_config *cfg, const struct engine_state *st)
{
	struct pending_end p;
	int64_t d = next_job_expiry(cfg, st);

	if (st->s.open) {
		d = min64(d, next_boundary(cfg, st));
		if (earliest_end(cfg, st, &p))
			d = min64(d, p.at);
	}
	return d;
}

static bool can_start(const struct engine_state *st)
{
	return !st->s.open && st->has_policy && !st->private_mode;
}

/*
 * A driver doing a job is never uninsured for want of a trigger: with a job in progress,
 * online, not private, a policy held and no session open, one opens at t. The one
 * exception is a silence that ended cover: the app's return reopens it.
 */
static void ensure_cover(const struct engine_config *cfg, struct engine_state *st,
                         struct engine_actions *out, int64_t t, enum engine_time_quality tq,
                         enum engine_rule rule)
{
	if (st->jobs_active > 0 && st->online && can_start(st) && !st->silence_ended)
		open_session(cfg, st, out, t, tq, rule);
}

/* The job that ended or timed out was the last: the grace counts from the last job end. */
static void jobs_now_none(const struct engine_config *cfg, struct engine_state *st)
{
	st->grace_from_ms = st->last_job_end_ms;
	(void)cfg;
}

static void note(struct engine_state *st, struct engine_actions *out, int64_t t,
                 enum engine_note n);

/* Ends the jobs whose job_timeout is due at d, with a note for each; returns how many. */
static int expire_jobs(const struct engine_config *cfg, struct engine_state *st,
                       struct engine_actions *out, int64_t d, int64_t at)
{
	int n = 0;

	if (st->anon_jobs > 0 && st->anon_last_ms + cfg->job_timeout_ms <= d) {
		n += st->anon_jobs;
		st->last_job_end_ms = max64(st->last_job_end_ms, st->anon_last_ms);
		st->anon_jobs = 0;
		st->anon_first_ms = NONE;
	}
	for (int i = 0; i < st->n_jobs;) {
		if (st->jobs[i].last_ms + cfg->job_timeout_ms <= d) {
			st->last_job_end_ms = max64(st->last_job_end_ms, st->jobs[i].last_ms);
			st->jobs[i] = st->jobs[--st->n_jobs];
			n++;
		} else {
			i++;
		}
	}
	st->jobs_active = st->n_jobs + st->anon_jobs;
	for (int i = 0; i < n; i++)
		note(st, out, at, NOTE_JOB_TIMEOUT);
	if (n > 0 && st->jobs_active == 0)
		jobs_now_none(cfg, st);
	return n;
}

/*
 * Fires every deadline strictly before `limit`, in time order. At one instant a job
 * timeout goes first, then a session-ending rule, then the hour boundary, so no hour
 * opens in a session that has already ended at that moment.
 */
static void fire_deadlines(const struct engine_config *cfg, struct engine_state *st,
                           struct engine_actions *out, int64_t limit,
                           enum engine_time_quality tq)
{
	/* A rule can fall due in the past only because a later deadline fired first in this
	 * loop (a job timeout ends a job at its last event, making idle_end or the silence
	 * rule overdue): it is detected no earlier than that deadline. */
	int64_t floor = INT64_MIN;
	for (;;) {
		struct pending_end p;
		bool have_end = earliest_end(cfg, st, &p);
		int64_t je = next_job_expiry(cfg, st);
		int64_t h = st->s.open ? next_boundary(cfg, st) : INT64_MAX;
		int64_t d = min64(je, h);
		if (have_end)
			d = min64(d, p.at);
		if (d == INT64_MAX || d >= limit)
			return;
		/* The rule is detected now, at the first time past its deadline; actions carry
		 * the later of the deadline and the last event. */
		int64_t at = st->last_t_ms != NONE ? max64(d, st->last_t_ms) : d;
		at = max64(at, floor);
		floor = at;

		if (je == d) {
			(void)expire_jobs(cfg, st, out, d, at);
			if (st->s.open && st->s.trigger == TRIGGER_JOB && st->jobs_active == 0 &&
			    grace_judged(cfg, st) && st->grace_from_ms + cfg->gap_end_ms < d)
				close_session(cfg, st, out, st->grace_from_ms, END_JOB_TIMEOUT,
				              RULE_JOB_TIMEOUT, at);
			continue;
		}
		if (have_end && p.at == d) {
			close_session(cfg, st, out, p.end, p.reason, p.rule, at);
			/* max_session mid-job: the next session opens at once. */
			ensure_cover(cfg, st, out, p.end, tq, RULE_START_JOB_IN_PROGRESS);
			continue;
		}
		struct engine_activation *a = current_act(st);
		if (a) {
			a->status = ACT_CLOSED;
			a->revision++;
			a->end_ms = h;
			a->end_reason = END_HOUR;
			a->end_pos = current_pos(cfg, st, h);
			push_act(st, out, ACTION_ACT_CLOSE, RULE_HOUR_BOUNDARY, at, a);
		}
		if (st->s.n_acts >= ENGINE_MAX_ACTS) {
			/* engine_config_check keeps max_session within ENGINE_MAX_ACTS units, so
			 * this is unreachable; end the session rather than overrun the array. */
			close_session(cfg, st, out, h, END_MAX_SESSION, RULE_MAX_SESSION, at);
			continue;
		}
		open_activation(cfg, st, out, h, RULE_HOUR_BOUNDARY, tq, at);
	}
}

/* ---- events ----------------------------------------------------------------------- */

static bool fix_valid(const struct engine_fix *f)
{
	if (!isfinite(f->lat) || !isfinite(f->lon) || f->lat < -90 || f->lat > 90 ||
	    f->lon < -180 || f->lon > 180)
		return false;
	if (f->mode < 1 || f->mode > 3)
		return false;
	if (!isnan(f->speed_mps) && !(isfinite(f->speed_mps) && f->speed_mps >= 0))
		return false;
	if (!isnan(f->eph_m) && !(isfinite(f->eph_m) && f->eph_m >= 0))
		return false;
	if (!isnan(f->course_deg) && !isfinite(f->course_deg))
		return false;
	return true;
}

static void apply_fix(const struct engine_config *cfg, struct engine_state *st,
                      struct engine_actions *out, const struct engine_event *ev)
{
	const struct engine_fix *f = &ev->u.fix;

	if (f->mode < 2) {
		st->gnss.no_fix++;
		return;
	}
	if (isnan(f->eph_m) || f->eph_m > cfg->max_eph_m) {
		st->gnss.eph++;
		return;
	}
	st->gnss.accepted++;
	int64_t dt = st->have_fix ? ev->t_ms - st->last_fix_ms : 0;
	bool recent = st->have_fix && dt <= cfg->max_fix_gap_ms;
	double dist = st->have_fix ?
	    engine_distance_m(st->last_fix.lat, st->last_fix.lon, f->lat, f->lon) : 0.0;
	double speed = f->speed_mps;
	bool jump = false;

	if (st->have_fix && dist > 0) {
		/* Implied speed; a same-millisecond fix that moved is judged over 1 s. */
		double implied = dist / ((double)max64(dt, 1000) / 1000.0);
		jump = implied > cfg->max_jump_mps;
		if (isnan(speed) && recent && !jump && dt > 0)
			speed = implied;
	}
	bool moving = !jump && !isnan(speed) && speed >= cfg->move_speed_mps;

	struct engine_activation *a = current_act(st);
	if (jump)
		attribute(cfg, st, ev->t_ms, 0, ANOM_POSITION_JUMP, ev->tq);
	if (recent && moving) {
		/* Distance and moving time accrue only over movement: the segment ending in a
		 * moving fix. A parked receiver's jitter adds nothing. */
		if (a) {
			a->distance_m += dist;
			a->moving_ms += dt;
		}
		st->gnss.moving_ms += dt;
	}
	st->have_fix = true;
	st->last_fix_ms = ev->t_ms;
	st->last_fix = *f;
	st->last_fix.speed_mps = speed;
	st->last_fix_moving = moving;
	if (moving) {
		st->last_move_ms = ev->t_ms;
		snap_take(cfg, st, &st->snap_move, ev->t_ms);
	}

	if (cfg->trigger == TRIGGER_MOTION && moving && st->ignition_on && can_start(st))
		open_session(cfg, st, out, ev->t_ms, ev->tq, RULE_START_MOTION);
	if (st->s.open) {
		struct engine_action *t = push(st, out, ACTION_TRACK, RULE_NONE, ev->t_ms);
		if (t)
			t->fix = st->last_fix;
	}
}

/*
 * An ending event (offline, private_on, end cover, revoke) at t: cover ends at t, or, when
 * it comes inside the grace with no job in progress, at the grace's start, as gap_end would
 * have ended it, under the event's own reason.
 */
static void end_by_event(const struct engine_config *cfg, struct engine_state *st,
                         struct engine_actions *out, int64_t t, enum engine_end_reason reason,
                         enum engine_rule rule)
{
	if (!st->s.open)
		return;
	int64_t end = t;
	if (st->s.trigger == TRIGGER_JOB && st->jobs_active == 0 && st->grace_from_ms != NONE &&
	    t <= st->grace_from_ms + cfg->gap_end_ms)
		end = st->grace_from_ms;
	close_session(cfg, st, out, end, reason, rule, t);
}

static void clear_jobs(struct engine_state *st)
{
	st->n_jobs = 0;
	st->anon_jobs = 0;
	st->anon_first_ms = NONE;
	st->jobs_active = 0;
}

static int find_job(const struct engine_state *st, const char *id)
{
	for (int i = 0; i < st->n_jobs; i++)
		if (strcmp(st->jobs[i].id, id) == 0)
			return i;
	return -1;
}

static void note(struct engine_state *st, struct engine_actions *out, int64_t t,
                 enum engine_note n)
{
	if (n == NOTE_DUPLICATE)
		st->jobs_duplicate_total++;
	else if (n == NOTE_JOB_IGNORED)
		st->jobs_ignored_total++;
	else if (n == NOTE_JOB_TIMEOUT)
		st->jobs_timeout_total++;
	struct engine_action *a = push(st, out, ACTION_NOTE, RULE_NONE, t);
	if (a)
		a->note = n;
}

static void job_event(const struct engine_config *cfg, struct engine_state *st, int64_t t)
{
	snap_take(cfg, st, &st->snap_job, t);
}

/* A delivery or cancellation that ended a job. */
static void job_ended(const struct engine_config *cfg, struct engine_state *st, int64_t t)
{
	st->jobs_active = st->n_jobs + st->anon_jobs;
	st->last_job_end_ms = t;
	job_event(cfg, st, t);
	if (st->jobs_active == 0)
		jobs_now_none(cfg, st);
}

static void apply_app(const struct engine_config *cfg, struct engine_state *st,
                      struct engine_actions *out, const struct engine_event *ev)
{
	int64_t t = ev->t_ms;
	const char *id = ev->job_id;
	bool was_silent = st->last_app_ms != NONE && t > st->last_app_ms + cfg->app_silence_ms;

	/* The app is back after a silence. Only when the grace ran out during it while
	 * movement kept the session alive does the grace restart from the return; otherwise
	 * it goes on from the last job end, so a short silence changes no bill. */
	if (was_silent && st->s.open && st->s.trigger == TRIGGER_JOB && st->jobs_active == 0 &&
	    st->grace_from_ms != NONE && st->grace_from_ms + cfg->gap_end_ms < t) {
		st->grace_from_ms = t;
		snap_take(cfg, st, &st->snap_grace, t);
	}
	st->last_app_ms = t;
	st->silence_ended = false;
	snap_take(cfg, st, &st->snap_app, t);

	switch (ev->u.app) {
	case APP_ONLINE:
		st->online = true;
		if (cfg->trigger == TRIGGER_ONLINE && can_start(st))
			open_session(cfg, st, out, t, ev->tq, RULE_START_ONLINE);
		break;
	case APP_OFFLINE:
		st->online = false;
		end_by_event(cfg, st, out, t, END_OFFLINE, RULE_OFFLINE);
		clear_jobs(st);
		break;
	case APP_JOB_ACCEPTED:
		if (!st->online || st->private_mode) {
			note(st, out, t, NOTE_JOB_IGNORED);
			break;
		}
		if (id[0] != '\0') {
			if (find_job(st, id) >= 0) {
				note(st, out, t, NOTE_DUPLICATE);
				break;
			}
			struct engine_job *j = &st->jobs[st->n_jobs++];
			memset(j, 0, sizeof(*j));
			snprintf(j->id, sizeof(j->id), "%s", id);
			j->accepted_ms = t;
			j->last_ms = t;
		} else {
			if (st->anon_jobs == 0)
				st->anon_first_ms = t;
			st->anon_jobs++;
			st->anon_last_ms = t;
		}
		st->jobs_active = st->n_jobs + st->anon_jobs;
		if (!st->s.open)
			ensure_cover(cfg, st, out, t, ev->tq,
			             cfg->trigger == TRIGGER_JOB || cfg->trigger == TRIGGER_ONLINE ?
			                 RULE_START_JOB : RULE_START_JOB_IN_PROGRESS);
		if (st->s.open) {
			st->s.jobs_accepted++;
			attribute(cfg, st, t, 1, 0, ev->tq);
		}
		job_event(cfg, st, t);
		break;
	case APP_JOB_PICKED_UP:
		/* A pickup never creates a job; it is an event of the job it names. */
		if (id[0] != '\0') {
			int i = find_job(st, id);
			if (i < 0) {
				note(st, out, t, NOTE_DUPLICATE);
				break;
			}
			st->jobs[i].last_ms = t;
		} else {
			if (st->anon_jobs == 0) {
				note(st, out, t, NOTE_DUPLICATE);
				break;
			}
			st->anon_last_ms = t;
		}
		job_event(cfg, st, t);
		break;
	case APP_JOB_DELIVERED:
	case APP_JOB_CANCELLED:
		if (id[0] != '\0') {
			int i = find_job(st, id);
			if (i < 0) {
				note(st, out, t, NOTE_DUPLICATE);
				break;
			}
			st->jobs[i] = st->jobs[--st->n_jobs];
		} else {
			/* With nothing in progress it neither ends nor extends anything. */
			if (st->anon_jobs == 0) {
				note(st, out, t, NOTE_DUPLICATE);
				break;
			}
			st->anon_jobs--;
			st->anon_last_ms = t;
			if (st->anon_jobs == 0)
				st->anon_first_ms = NONE;
		}
		job_ended(cfg, st, t);
		break;
	case APP_HEARTBEAT:
		break;
	case APP_PRIVATE_ON:
		st->private_mode = true;
		end_by_event(cfg, st, out, t, END_PRIVATE, RULE_PRIVATE);
		clear_jobs(st);
		break;
	case APP_PRIVATE_OFF:
		st->private_mode = false;
		break;
	}
}

static bool id_ok(const char *s, size_t max)
{
	return memchr(s, '\0', max) != NULL;
}

static bool event_valid(const struct engine_event *ev)
{
	if ((unsigned)ev->tq > TQ_UNSYNCED)
		return false;
	if (!id_ok(ev->job_id, sizeof(ev->job_id)))
		return false;
	switch (ev->type) {
	case COV_EV_TICK:
		return true;
	case COV_EV_APP:
		return (unsigned)ev->u.app <= APP_PRIVATE_OFF;
	case COV_EV_FIX:
		return true;   /* checked by fix_valid, with its own reason */
	case COV_EV_POLICY:
		if (!id_ok(ev->u.policy.policy_id, ENGINE_ID_MAX))
			return false;
		return !ev->u.policy.assign ||
		       (ev->u.policy.policy_id[0] != '\0' &&
		        id_ok(ev->u.policy.driver_id, ENGINE_ID_MAX) &&
		        id_ok(ev->u.policy.vehicle_id, ENGINE_ID_MAX));
	case COV_EV_IGNITION:
		return true;
	case COV_EV_POWER:
		return (unsigned)ev->u.power <= POWER_RESTORED;
	case COV_EV_CMD:
		return ev->u.cmd == CMD_END_COVER;
	}
	return false;
}

static int reject(struct engine_state *st, struct engine_actions *out, const struct engine_event *ev,
                  enum engine_reject why)
{
	st->rejected_total++;
	if (ev->type == COV_EV_FIX) {
		if (why == REJECT_BAD_FIX)
			st->gnss.bad_value++;
		else if (why == REJECT_OUT_OF_ORDER)
			st->gnss.out_of_order++;
	}
	struct engine_action *a = push(st, out, ACTION_REJECT, RULE_NONE, ev->t_ms);
	if (a) {
		a->reject = why;
		memset(&a->sess, 0, sizeof(a->sess));
	}
	return (int)why;
}

/* A revoke naming a policy that is neither held nor the open session's. */
static bool revoke_mismatch(const struct engine_state *st, const struct engine_policy *p)
{
	if (p->policy_id[0] == '\0')
		return false;
	if (st->has_policy && strcmp(st->policy.policy_id, p->policy_id) == 0)
		return false;
	if (st->s.open && strcmp(st->s.policy_id, p->policy_id) == 0)
		return false;
	return true;
}

/*
 * Whether an accept at t would exceed ENGINE_MAX_JOBS. Judged before any deadline before
 * t fires, so it counts only the jobs that do not time out before t.
 */
static bool too_many_jobs(const struct engine_config *cfg, const struct engine_state *st,
                          const struct engine_event *ev)
{
	if (!st->online || st->private_mode)
		return false;
	int live = 0;
	bool dup = false;
	if (st->anon_jobs > 0 && st->anon_last_ms + cfg->job_timeout_ms >= ev->t_ms)
		live += st->anon_jobs;
	for (int i = 0; i < st->n_jobs; i++) {
		if (st->jobs[i].last_ms + cfg->job_timeout_ms >= ev->t_ms) {
			live++;
			if (ev->job_id[0] != '\0' && strcmp(st->jobs[i].id, ev->job_id) == 0)
				dup = true;
		}
	}
	return !dup && live >= ENGINE_MAX_JOBS;
}

static void apply_policy(const struct engine_config *cfg, struct engine_state *st,
                         struct engine_actions *out, const struct engine_event *ev)
{
	const struct engine_policy *p = &ev->u.policy;

	if (p->assign) {
		/* A session in progress keeps the policy it started with. */
		st->policy = *p;
		st->has_policy = true;
		return;
	}
	if (p->policy_id[0] == '\0') {
		st->has_policy = false;
		end_by_event(cfg, st, out, ev->t_ms, END_POLICY_REVOKED, RULE_POLICY_REVOKED);
		return;
	}
	bool held = st->has_policy && strcmp(st->policy.policy_id, p->policy_id) == 0;
	if (st->s.open && strcmp(st->s.policy_id, p->policy_id) == 0)
		end_by_event(cfg, st, out, ev->t_ms, END_POLICY_REVOKED, RULE_POLICY_REVOKED);
	if (held)
		st->has_policy = false;
}

int engine_step(const struct engine_config *cfg, struct engine_state *st,
                const struct engine_event *ev, struct engine_actions *out)
{
	out->n = 0;
	if (st->started && ev->t_ms < st->last_t_ms)
		return reject(st, out, ev, REJECT_OUT_OF_ORDER);
	if (!event_valid(ev))
		return reject(st, out, ev, REJECT_BAD_EVENT);
	if (ev->type == COV_EV_FIX && !fix_valid(&ev->u.fix))
		return reject(st, out, ev, REJECT_BAD_FIX);
	if (ev->type == COV_EV_APP && ev->u.app == APP_JOB_ACCEPTED && too_many_jobs(cfg, st, ev))
		return reject(st, out, ev, REJECT_TOO_MANY_JOBS);

	/* Deadlines strictly before t; those at t wait until every event at t is in. */
	fire_deadlines(cfg, st, out, ev->t_ms, ev->tq);
	/* A revoke is judged at its instant, once the deadlines before it have fired: a
	 * session that had ended by then no longer makes its policy one a revoke may name. */
	if (ev->type == COV_EV_POLICY && !ev->u.policy.assign && revoke_mismatch(st, &ev->u.policy))
		return reject(st, out, ev, REJECT_POLICY_MISMATCH);
	st->started = true;
	st->last_t_ms = ev->t_ms;

	if (st->s.open)
		attribute(cfg, st, ev->t_ms, 0, ev->anomalies, ev->tq);
	bool was_open = st->s.open;
	uint64_t ordinal = st->s.ordinal;

	switch (ev->type) {
	case COV_EV_TICK:
		break;
	case COV_EV_APP:
		apply_app(cfg, st, out, ev);
		break;
	case COV_EV_FIX:
		apply_fix(cfg, st, out, ev);
		break;
	case COV_EV_POLICY:
		apply_policy(cfg, st, out, ev);
		break;
	case COV_EV_IGNITION:
		st->ignition_on = ev->u.ignition_on;
		break;
	case COV_EV_POWER:
		/* Power events are journaled; a shutdown leaves the session open so that the
		 * next start resumes it (invariant 7). */
		break;
	case COV_EV_CMD:
		end_by_event(cfg, st, out, ev->t_ms, END_COMMAND, RULE_END_COMMAND);
		clear_jobs(st);
		break;
	}
	/* A job in progress and every condition met: cover, whatever the trigger (a policy
	 * assigned mid-job, the app back after a silence ended cover mid-job). */
	ensure_cover(cfg, st, out, ev->t_ms, ev->tq, RULE_START_JOB_IN_PROGRESS);
	/* A session opened by this event takes its anomalies too. */
	if (st->s.open && (!was_open || st->s.ordinal != ordinal))
		attribute(cfg, st, ev->t_ms, 0, ev->anomalies, ev->tq);
	return 0;
}
