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
 * Deadlines. Rules that fire without input (an hour boundary, gap_end, idle_end,
 * app_silence, max_session) are deadlines computed from the state. engine_step() first
 * fires every deadline strictly before the event's time, in time order, then applies the
 * event, then fires every deadline at or before the event's time. So an event exactly at
 * a deadline is applied before the deadline is judged: a job accepted exactly at
 * gap_end keeps the session. A COV_EV_TICK event only advances time; the daemon sends one
 * at engine_next_deadline(). At equal times, session-ending rules fire before an hour
 * boundary, so an hour is never opened by a session that has already ended.
 *
 * Rules (design.md section 2; parameters in struct engine_config):
 *  - Start: trigger JOB (default) opens a session on job_accepted while online, not in
 *    private mode, and holding a policy. Trigger ONLINE opens on online with a policy.
 *    Trigger MOTION opens on a moving fix while the ignition is on, with a policy.
 *  - End, at the time the ending condition began (END_* reasons):
 *    offline (t of the event); gap_end (JOB trigger, no job in progress, gap_end after the
 *    last delivery or cancellation; end = that delivery); idle_end (ONLINE and MOTION
 *    triggers, no job and no movement for idle_end; end = the later of the last movement,
 *    the last job end and the session start); app silence (JOB and ONLINE triggers: the
 *    app silent for app_silence and the vehicle stationary for gap_end; end = the later of
 *    the last app event and the last movement); max_session (end = start + max_session);
 *    policy revoked, end-cover command, private_on (t of the event).
 *    While the app is silent the gap_end rule is suspended: telematics decides. When the
 *    app comes back after a silence with no job in progress, the gap_end grace counts
 *    from its return (hours that motion kept covered are not taken back). With no moving
 *    fix ever seen, "stationary" has no beginning: the silence rule then ends the session
 *    at the last app event, app_silence after it.
 *    A backdated end restores the ending activation's distance, moving time and end
 *    position to what they were at that moment (struct engine_snap): travel after cover
 *    ended is not recorded as cover.
 *  - Activations: activation k covers [start + k*unit, min(start + (k+1)*unit, end)).
 *    It is opened (revision 1) when its hour begins and closed (next revision) when the
 *    hour or the session ends. When a backdated end falls at or before the start of an
 *    activation with k > 0, that activation is voided by a new revision; when it falls
 *    inside an already closed activation, that activation is closed again with the new
 *    end. Activation 0 is never voided: it carries min_cover and is billed whole.
 *  - Events older than the last accepted one are rejected (REJECT_OUT_OF_ORDER) and
 *    counted; two events with the same time are both applied, in arrival order.
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
#define ENGINE_MAX_ACTIONS 256  /* worst case: 2 per hour boundary + 1 per activation on close + 4 */

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
	END_VOID,               /* an activation voided by a backdated session end */
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
	int n_acts;
	struct engine_activation acts[ENGINE_MAX_ACTS];
};

/*
 * What the open activation had accumulated at a moment that may later become the session's
 * backdated end (the last job end, the last app event, the last movement). When the end
 * is backdated to that moment, the activation's distance, moving time and end position
 * are restored from here, so travel after cover ended is never billed as cover.
 */
struct engine_snap {
	bool valid;
	int index;              /* activation index the snapshot belongs to */
	double distance_m;
	int64_t moving_ms;
	struct engine_pos pos;
};

struct engine_state {
	int version;            /* ENGINE_STATE_VERSION, for persisted state */
	bool started;           /* any event accepted yet */
	int64_t last_t_ms;
	bool online, private_mode, ignition_on;
	bool has_policy;
	struct engine_policy policy;
	int jobs_active;
	int64_t last_job_end_ms;    /* last delivery or cancellation, INT64_MIN if none */
	int64_t last_app_ms;        /* last app event of any kind, INT64_MIN if none */
	int64_t last_move_ms;       /* last moving fix, INT64_MIN if none */
	bool have_fix;
	int64_t last_fix_ms;
	struct engine_fix last_fix;
	bool last_fix_moving;
	uint64_t sessions_total;    /* sessions ever opened on this device */
	uint64_t rejected_total;    /* events rejected, all reasons */
	struct engine_session s;    /* current or most recently closed session */
	struct engine_snap snap_job, snap_app, snap_move;
};
#define ENGINE_STATE_VERSION 1

enum engine_action_type {
	ACTION_SESSION_OPEN = 1,
	ACTION_SESSION_CLOSE,
	ACTION_ACT_OPEN,        /* act holds revision 1 */
	ACTION_ACT_CLOSE,       /* act holds the closed record (revision >= 2) */
	ACTION_ACT_VOID,        /* act holds the voided record */
	ACTION_TRACK,           /* a usable fix while on cover: store it as a track point */
	ACTION_REJECT,          /* the event was rejected; reason says why */
};

enum engine_reject {
	REJECT_NONE = 0, REJECT_OUT_OF_ORDER, REJECT_BAD_FIX, REJECT_BAD_EVENT,
};

/* The rule that produced an action, for `coverctl explain`. */
enum engine_rule {
	RULE_NONE = 0, RULE_START_JOB, RULE_START_ONLINE, RULE_START_MOTION, RULE_HOUR_BOUNDARY,
	RULE_OFFLINE, RULE_GAP_END, RULE_IDLE_END, RULE_APP_SILENCE, RULE_MAX_SESSION,
	RULE_POLICY_REVOKED, RULE_END_COMMAND, RULE_PRIVATE, RULE_BACKDATED_END,
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
 * rejected (the state then changes only in rejected_total, and out holds one
 * ACTION_REJECT). Never fails otherwise.
 */
int engine_step(const struct engine_config *cfg, struct engine_state *st,
                const struct engine_event *ev, struct engine_actions *out);

/* The next time at which a deadline fires, or INT64_MAX when none is pending. */
int64_t engine_next_deadline(const struct engine_config *cfg, const struct engine_state *st);

/* Deterministic ids: "<device>-<UTC start, YYYYMMDDTHHMMSSZ>-<ordinal>" and "<session>-<index>". */
void engine_session_id(char *buf, size_t len, const char *device, int64_t start_ms, uint64_t ordinal);
void engine_activation_id(char *buf, size_t len, const char *session_id, int index);

/* Names used in records, logs and the CLI; never NULL. */
const char *engine_end_reason_name(enum engine_end_reason r);
const char *engine_rule_name(enum engine_rule r);
const char *engine_reject_name(enum engine_reject r);
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
