/*
 * engine.h - the cover session engine.
 *
 * The engine is pure: engine_step() takes the configuration, the current state and
 * one event, and updates the state and fills a list of actions. It performs no I/O,
 * reads no clock and allocates nothing; all of its memory is in the caller's structs,
 * whose sizes are fixed at compile time. The same engine runs live input, replayed
 * scenarios and tests, so the same events always give the same sessions, activations
 * and ids.
 *
 * Time. Every event carries t_ms, milliseconds on the engine's timeline. The daemon's
 * clock module (hal/clock.h) builds that timeline from CLOCK_BOOTTIME anchored to the
 * best wall clock available, so it never jumps backwards and durations are right across
 * wall-clock steps; a replay uses the recorded times. The engine measures every rule on
 * t_ms and also uses it as the wall-clock label (UTC milliseconds since the epoch).
 *
 * Rules: design.md section 2, revision 2 (2026-12-07). The points that text leaves to
 * the builders are settled here, marked [decided]; tests/model/ implements the same text.
 *
 * Instants and ties. Every event stamped t is applied, in arrival order, before any
 * deadline due at t is judged: engine_step() fires only the deadlines strictly before the
 * event's time, then applies the event. A deadline at d fires at the first event or tick
 * later than d; engine_next_deadline() returns d, and the daemon ticks at d + 1 ms; a
 * replay ends with a tick 1 ms after its last event. So "up to gap_end" is inclusive, and
 * a heartbeat exactly app_silence after the previous app event is not a silence. At equal
 * deadlines gap_end wins over the app-silence rule, and every session-ending rule wins
 * over an hour boundary (no hour opens in a session that ended at that instant).
 *
 * Jobs. With a job_id the engine keeps the set of jobs in progress; without one it keeps
 * a count [decided: the two are separate; an event without id acts on the count only].
 * The set and the count together hold at most ENGINE_MAX_JOBS; one more accept is
 * rejected (REJECT_TOO_MANY_JOBS). Accept of an id in progress, delivery/cancel/pickup of
 * an id not in progress, and delivery/cancel/pickup without id while the count is 0 are
 * duplicates [decided: a stray pickup counts as one]:
 * counted (NOTE_DUPLICATE), no effect on jobs. job_picked_up never creates a job; it
 * refreshes the timeout clock of the job it names (or of the count). A job, or without ids
 * the count, with no job event for job_timeout counts as ended at its last job event
 * (NOTE_JOB_TIMEOUT). offline, private_on and end-cover clear all jobs; accepts while
 * offline or private are ignored (NOTE_JOB_IGNORED). Every app event, duplicates
 * included, is a sign of life.
 *
 * Movement. A fix is accepted when its mode is 2D/3D and its horizontal error is known
 * and at most max_eph; other fixes are counted by reason and otherwise ignored [decided:
 * an unknown error counts under "eph"]. It is moving when its speed (the receiver's, or
 * derived from the previous accepted fix at most max_fix_gap before and not a position
 * jump) is at least move_speed. The segment from the previous accepted fix counts for
 * distance and moving time when it is at most max_fix_gap long and the fix ending it is
 * moving [decided]. An implied speed above max_jump_speed flags a position jump; that fix
 * is not moving.
 *
 * Start. Trigger JOB: job_accepted while online, not private, with a policy. ONLINE: online
 * with a policy. MOTION: a moving fix with ignition on and a policy. Under every trigger,
 * whenever a job is in progress while online, not private, holding a policy and no session
 * is open, a session opens at that moment (RULE_START_JOB_IN_PROGRESS), except while the
 * app is silent after a silence ended cover (it reopens on the app's return).
 *
 * End, at the time the ending condition began:
 *  - gap_end (JOB trigger, no job in progress): time passes grace_from + gap_end; end =
 *    grace_from, normally the last job end.
 *  - job_timeout (the last job in progress timed out, JOB trigger, grace over): end = the
 *    last job end, which now includes the timed-out job's last event.
 *  - app silence (JOB and ONLINE triggers [decided: a MOTION unit has no app to fall
 *    silent]): time passes both last_app + app_silence and still_since + gap_end (idle_end
 *    while a job is in progress); end = max(last_app, still_since), still_since being the
 *    last moving fix of the session, or its start before the first one.
 *  - idle_end (ONLINE and MOTION, no job in progress): time passes base + idle_end, base =
 *    max(start, last moving fix, last job end); end = base.
 *  - max_session: end = start + max_session.
 *  - offline, private_on, end-cover, revoke of the policy the session runs under (or a
 *    revoke naming no policy): end = the event's time, or grace_from when the event comes
 *    inside the grace (JOB trigger, no job in progress, t <= grace_from + gap_end), keeping
 *    its own end reason. A revoke naming neither the held policy nor the session's is
 *    rejected (REJECT_POLICY_MISMATCH) and changes nothing. A revoke of the held policy
 *    that is not the session's [decided] drops it and leaves the session running.
 *  - An assign during a session changes only the held policy, for the next session.
 * The grace is judged only while the app is alive: when the app falls silent before the
 * grace is over, the grace is suspended. When the app returns (an app event later than
 * last_app + app_silence), grace_from moves to the return only if the grace ran out
 * (grace_from + gap_end < return) during the silence while the session stayed open.
 * A session of zero length with no job accepted in it bills nothing: activation 0 voided.
 *
 * Activations: activation k covers [start + k*unit, min(start + (k+1)*unit, end)). It is
 * opened (revision 1) when its hour begins and closed (next revision) when the hour or the
 * session ends. When a backdated end falls at or before the start of activation k > 0, it
 * is voided by a new revision; when it falls inside an already closed activation, that is
 * closed again with the new end. Jobs, anomalies and time quality go to the activation
 * whose interval holds the event's time (an event exactly at a boundary to the next hour,
 * one exactly at the session end to the last activation); what happened after a backdated
 * end is taken back from the activation (struct engine_snap), like distance and moving time.
 *
 * Deadlines due at the same instant are judged in this order: job_timeout, gap_end,
 * app silence, idle_end, max_session, then the hour boundary.
 *
 * Events older than the last accepted one are rejected (REJECT_OUT_OF_ORDER) and counted.
 */
#ifndef COVERD_ENGINE_H
#define COVERD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_ID_MAX 48      /* device, policy, driver, vehicle ids, incl. NUL */
#define ENGINE_SESSION_ID_MAX 96
#define ENGINE_ACT_ID_MAX 104
#define ENGINE_MAX_ACTS 48    /* activations per session: max_session / unit <= this */
#define ENGINE_MAX_ACTIONS 256  /* worst case: 2 per hour boundary + 1 per activation on close + 8 */
#define ENGINE_JOB_ID_MAX 64  /* a job_id, incl. NUL: 1 to 63 printable ASCII characters */
#define ENGINE_MAX_JOBS 16    /* jobs in progress at once (with and without ids together) */

enum engine_trigger { TRIGGER_JOB = 0, TRIGGER_ONLINE, TRIGGER_MOTION };

struct engine_config {
	char device_id[ENGINE_ID_MAX];
	enum engine_trigger trigger;
	int64_t gap_end_ms;       /* default 10 min */
	int64_t idle_end_ms;      /* default 30 min */
	int64_t app_silence_ms;   /* default 5 min */
	int64_t max_session_ms;   /* default 16 h */
	int64_t min_cover_ms;     /* default 60 min; must be <= unit_ms */
	int64_t unit_ms;          /* activation length, default 1 h */
	double move_speed_mps;    /* a fix at or above this speed is movement; default 2.0 */
	double max_eph_m;         /* fixes with a worse horizontal error are ignored; 50 */
	double max_jump_mps;      /* implied speed above this flags a position jump; 90 */
	int64_t max_fix_gap_ms;   /* moving time and distance are not bridged over longer gaps; 30 s */
	int64_t job_timeout_ms;   /* a job with no event of its own this long has ended; 3 h */
};

/* Fills cfg with the documented defaults (device_id "coverd-dev"). */
void engine_config_defaults(struct engine_config *cfg);
/* Returns 0, or -EINVAL and a static reason in *why when a parameter is out of range. */
int engine_config_check(const struct engine_config *cfg, const char **why);

enum engine_event_type {
	COV_EV_TICK = 0,   /* advance time only */
	COV_EV_APP,
	COV_EV_FIX,
	COV_EV_POLICY,
	COV_EV_IGNITION,
	COV_EV_POWER,
	COV_EV_CMD,
};

enum engine_app_event {
	APP_ONLINE = 0, APP_OFFLINE, APP_JOB_ACCEPTED, APP_JOB_PICKED_UP, APP_JOB_DELIVERED,
	APP_JOB_CANCELLED, APP_HEARTBEAT, APP_PRIVATE_ON, APP_PRIVATE_OFF,
};

enum engine_power_event { POWER_LOW = 0, POWER_SHUTDOWN, POWER_RESTORED };
enum engine_cmd { CMD_END_COVER = 0 };

enum engine_time_quality { TQ_GNSS = 0, TQ_NTP, TQ_RTC, TQ_UNSYNCED };

/* Anomaly flags, carried by events and accumulated on activations. */
#define ANOM_POSITION_JUMP 0x1u
#define ANOM_MOCK_LOCATION 0x2u
#define ANOM_CLOCK_STEP    0x4u

struct engine_fix {
	double lat, lon;        /* degrees, WGS84 */
	double speed_mps;       /* NaN when unknown */
	double course_deg;      /* NaN when unknown */
	double eph_m;           /* horizontal error estimate, NaN when unknown */
	int mode;               /* gpsd fix mode: 1 none, 2 2D, 3 3D */
};

struct engine_policy {
	bool assign;            /* false: revoke */
	char policy_id[ENGINE_ID_MAX];
	char driver_id[ENGINE_ID_MAX];
	char vehicle_id[ENGINE_ID_MAX];
};

struct engine_event {
	int64_t t_ms;
	enum engine_event_type type;
	enum engine_time_quality tq;
	uint32_t anomalies;     /* ANOM_* observed by the source (mock location, clock step) */
	char job_id[ENGINE_JOB_ID_MAX];  /* COV_EV_APP job events: "" when the app gave none */
	union {
		enum engine_app_event app;
		struct engine_fix fix;
		struct engine_policy policy;
		bool ignition_on;
		enum engine_power_event power;
		enum engine_cmd cmd;
	} u;
};

enum engine_end_reason {
	END_NONE = 0, END_OFFLINE, END_GAP, END_IDLE, END_APP_SILENCE, END_MAX_SESSION,
	END_POLICY_REVOKED, END_COMMAND, END_PRIVATE,
	END_HOUR,               /* an activation closed because its hour ended */
	END_VOID,               /* an activation voided by a backdated end ("voided") */
	END_JOB_TIMEOUT,        /* the last job in progress had no event for job_timeout */
};

enum engine_act_status { ACT_EMPTY = 0, ACT_OPEN, ACT_CLOSED, ACT_VOID };

struct engine_pos { double lat, lon; bool valid; };

/* One activation as the engine knows it. Times are t_ms. */
struct engine_activation {
	int index;
	enum engine_act_status status;
	int revision;           /* 1 on open, +1 on every later change */
	int64_t start_ms, end_ms;   /* end_ms is 0 while open */
	enum engine_end_reason end_reason;
	double distance_m;
	int64_t moving_ms;
	int jobs;               /* jobs accepted during this activation */
	/* What kept cover alive when this activation began (for explain): ALIVE_* and the
	 * time it refers to (the job's accept, the job end the grace runs from, the last
	 * movement, the session start). */
	int alive;
	int64_t alive_since_ms;
	struct engine_pos start_pos, end_pos;
	enum engine_time_quality tq;  /* worst time quality seen */
	uint32_t anomalies;
};

struct engine_session {
	bool open;
	char id[ENGINE_SESSION_ID_MAX];
	uint64_t ordinal;       /* per-device session number, 1-based */
	enum engine_trigger trigger;
	int64_t start_ms, end_ms;
	enum engine_end_reason end_reason;
	char policy_id[ENGINE_ID_MAX], driver_id[ENGINE_ID_MAX], vehicle_id[ENGINE_ID_MAX];
	int jobs_accepted;      /* jobs accepted in this session (a zero-length one without any is void) */
	int n_acts;
	struct engine_activation acts[ENGINE_MAX_ACTS];
};

/* What kept cover alive when an activation began. */
enum engine_alive {
	ALIVE_START = 0,        /* activation 0: the session's start */
	ALIVE_JOB,              /* a job in progress, accepted at alive_since_ms */
	ALIVE_GRACE,            /* the gap_end grace after the job end at alive_since_ms */
	ALIVE_MOVEMENT,         /* the app silent, movement (last at alive_since_ms) */
	ALIVE_ONLINE,           /* online/motion trigger: movement or activity since alive_since_ms */
};

struct engine_job {
	char id[ENGINE_JOB_ID_MAX];
	int64_t accepted_ms;
	int64_t last_ms;        /* its last event (accept, pickup), for job_timeout */
};

/*
 * What the open activation had accumulated at a moment that may later become the session's
 * backdated end (the last job end, the last app event, the last movement). When the end
 * is backdated to that moment, the activation's distance, moving time and end position
 * are restored from here, so travel after cover ended is never billed as cover.
 */
struct engine_snap {
	bool valid;
	int64_t t_ms;           /* the moment it was taken */
	int index;              /* activation index the snapshot belongs to */
	double distance_m;
	int64_t moving_ms;
	struct engine_pos pos;
	uint32_t anomalies;     /* the activation's anomalies and time quality at that moment */
	enum engine_time_quality tq;
};

/* Jobs, anomalies and time quality of events stamped exactly at the next hour boundary:
 * they belong to the activation that boundary opens (or to the last one, when the session
 * ends there). */
struct engine_pending {
	int64_t at_ms;          /* INT64_MIN when empty */
	int jobs;
	uint32_t anomalies;
	enum engine_time_quality tq;
};

/* GNSS accounting, for status. */
struct engine_gnss_stats {
	uint64_t accepted, no_fix, eph, bad_value, out_of_order;
	int64_t moving_ms;      /* total moving time on this device */
};

struct engine_state {
	int version;            /* ENGINE_STATE_VERSION, for persisted state */
	bool started;           /* any event accepted yet */
	int64_t last_t_ms;
	bool online, private_mode, ignition_on;
	bool has_policy;
	struct engine_policy policy;
	int jobs_active;            /* jobs in progress: n_jobs + anon_jobs */
	int n_jobs;                 /* jobs with an id, in jobs[0..n_jobs) */
	struct engine_job jobs[ENGINE_MAX_JOBS];
	int anon_jobs;              /* jobs without an id */
	int64_t anon_first_ms;      /* accept of the oldest anonymous job in progress */
	int64_t anon_last_ms;       /* last job event without id (job_timeout of anon_jobs) */
	int64_t last_job_end_ms;    /* last job end (delivery, cancel, timeout), INT64_MIN if none */
	int64_t grace_from_ms;      /* the gap_end grace counts from here: the last job end, or
	                             * the app's return after a silence that outlived it */
	bool silence_ended;         /* a silence ended cover; no reopening until the app returns */
	int64_t last_app_ms;        /* last app event of any kind, INT64_MIN if none */
	int64_t last_move_ms;       /* last moving fix, INT64_MIN if none */
	bool have_fix;
	int64_t last_fix_ms;
	struct engine_fix last_fix;
	bool last_fix_moving;
	uint64_t sessions_total;    /* sessions ever opened on this device */
	uint64_t rejected_total;    /* events rejected, all reasons */
	uint64_t jobs_duplicate_total;  /* duplicate job events (NOTE_DUPLICATE) */
	uint64_t jobs_ignored_total;    /* accepts while offline or private */
	uint64_t jobs_timeout_total;    /* jobs ended by job_timeout */
	struct engine_gnss_stats gnss;
	struct engine_pending pend;
	struct engine_session s;    /* current or most recently closed session */
	/* At the last effective job event, the grace's restart, the last app event, the last
	 * moving fix. */
	struct engine_snap snap_job, snap_grace, snap_app, snap_move;
};
#define ENGINE_STATE_VERSION 2

enum engine_action_type {
	ACTION_SESSION_OPEN = 1,
	ACTION_SESSION_CLOSE,
	ACTION_ACT_OPEN,        /* act holds revision 1 */
	ACTION_ACT_CLOSE,       /* act holds the closed record (revision >= 2) */
	ACTION_ACT_VOID,        /* act holds the voided record */
	ACTION_TRACK,           /* a usable fix while on cover: store it as a track point */
	ACTION_REJECT,          /* the event was rejected; reason says why */
	ACTION_NOTE,            /* the event was applied with a remark (note says which) */
};

enum engine_note {
	NOTE_NONE = 0,
	NOTE_DUPLICATE,         /* a duplicate job event: counted, without effect */
	NOTE_JOB_IGNORED,       /* job_accepted while offline or private */
	NOTE_JOB_TIMEOUT,       /* jobs ended by job_timeout */
};

enum engine_reject {
	REJECT_NONE = 0, REJECT_OUT_OF_ORDER, REJECT_BAD_FIX, REJECT_BAD_EVENT,
	REJECT_POLICY_MISMATCH, /* a revoke naming a policy neither held nor covering */
	REJECT_TOO_MANY_JOBS,   /* an accept beyond ENGINE_MAX_JOBS jobs in progress */
};

/* The rule that produced an action, for `coverctl explain`. */
enum engine_rule {
	RULE_NONE = 0, RULE_START_JOB, RULE_START_ONLINE, RULE_START_MOTION, RULE_HOUR_BOUNDARY,
	RULE_OFFLINE, RULE_GAP_END, RULE_IDLE_END, RULE_APP_SILENCE, RULE_MAX_SESSION,
	RULE_POLICY_REVOKED, RULE_END_COMMAND, RULE_PRIVATE, RULE_BACKDATED_END,
	RULE_JOB_TIMEOUT, RULE_START_JOB_IN_PROGRESS, RULE_ZERO_LENGTH,
};

/*
 * The session an action belongs to, as it stood when the action was made. One step can
 * close one session and open the next (a deadline fires, then the event starts a new
 * session), so the store must take session fields from here, not from the state.
 */
struct engine_session_ref {
	char id[ENGINE_SESSION_ID_MAX];
	uint64_t ordinal;
	enum engine_trigger trigger;
	int64_t start_ms, end_ms;          /* end_ms 0 while open */
	enum engine_end_reason end_reason;
	char policy_id[ENGINE_ID_MAX], driver_id[ENGINE_ID_MAX], vehicle_id[ENGINE_ID_MAX];
};

struct engine_action {
	enum engine_action_type type;
	struct engine_session_ref sess;   /* all but ACTION_REJECT, and TRACK without a session */
	enum engine_rule rule;
	int64_t at_ms;          /* the time the rule fired (a deadline or the event's time) */
	enum engine_reject reject;
	enum engine_note note;          /* ACTION_NOTE */
	struct engine_activation act;   /* ACT_* actions: a copy of the record */
	struct engine_fix fix;          /* ACTION_TRACK */
};

struct engine_actions {
	size_t n;
	struct engine_action a[ENGINE_MAX_ACTIONS];
};

/* Sets st to the initial state (no session, offline, no policy). */
void engine_state_init(struct engine_state *st);

/*
 * Applies one event. out is cleared first and then lists what happened, in order.
 * Returns 0 when the event was applied, or a positive enum engine_reject when it was
 * rejected: out then ends with one ACTION_REJECT and the event itself changed nothing
 * but rejected_total. A revoke is judged at its instant (policy_mismatch), so the
 * deadlines due before it fire first and their actions precede the ACTION_REJECT; every
 * other rejection comes before any deadline fires. Never fails otherwise.
 */
int engine_step(const struct engine_config *cfg, struct engine_state *st,
                const struct engine_event *ev, struct engine_actions *out);

/* The earliest pending deadline d, or INT64_MAX when none is pending. It fires at the
 * first event or tick later than d: the daemon ticks at d + 1. */
int64_t engine_next_deadline(const struct engine_config *cfg, const struct engine_state *st);

/* Deterministic ids: "<device>-<UTC start, YYYYMMDDTHHMMSSZ>-<ordinal>" and "<session>-<index>". */
void engine_session_id(char *buf, size_t len, const char *device, int64_t start_ms, uint64_t ordinal);
void engine_activation_id(char *buf, size_t len, const char *session_id, int index);

/* Names used in records, logs and the CLI; never NULL. */
const char *engine_end_reason_name(enum engine_end_reason r);
const char *engine_rule_name(enum engine_rule r);
const char *engine_reject_name(enum engine_reject r);
const char *engine_note_name(enum engine_note n);
const char *engine_trigger_name(enum engine_trigger t);
const char *engine_app_event_name(enum engine_app_event e);
const char *engine_tq_name(enum engine_time_quality q);
/* Parses a name back; returns 0 or -EINVAL. */
int engine_app_event_parse(const char *name, enum engine_app_event *out);
int engine_trigger_parse(const char *name, enum engine_trigger *out);
int engine_tq_parse(const char *name, enum engine_time_quality *out);

/* Great-circle distance in metres (haversine, mean Earth radius). */
double engine_distance_m(double lat1, double lon1, double lat2, double lon2);

#endif
