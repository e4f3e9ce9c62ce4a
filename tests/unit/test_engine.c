/*
 * test_engine.c - the session engine against its specification (engine.h's header and
 * design.md section 2), not against its implementation.
 *
 * Most cases are rows of one table: a config tweak, a list of events as offsets from
 * T0 = 2026-11-28T09:00:00Z, and the sessions and activations the spec says must come
 * out. Every row runs twice on fresh states: once ticking at engine_next_deadline()
 * before each event (as the daemon does) and once with no ticks but a final one (as after
 * a power cut), and both must give the expected result and the identical action stream.
 * The remaining tests cover what a table row cannot say: rejections, ids, distances,
 * anomalies, deadlines and the state itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "engine_harness.h"

#define T0 1795856400000LL /* 2026-11-28T09:00:00Z */
#define H(x) ((int64_t)(x) * HOUR_MS)
#define M(x) ((int64_t)(x) * MIN_MS)
#define S(x) ((int64_t)(x) * SEC_MS)
#define NC INT64_MIN /* "do not check" for a time */

#define LAT0 51.5
#define LON0 (-0.12)
#define DEG_PER_M (1.0 / 111195.0)
#define NORTH_DEG_PER_S (10.0 * DEG_PER_M) /* 10 m/s due north */

/* Every test runs one case at a time, so the big structs live here, not on the stack. */
static struct engine_config g_cfg;
static struct engine_state g_st[2];
static struct engine_actions g_out;
static struct model g_m[2];

/* ---- the table ---------------------------------------------------------------------- */

enum kind { K_APP, K_ASSIGN, K_REVOKE, K_FIX, K_IGN, K_CMD };

struct ev_spec {
	int64_t t;            /* offset from T0 */
	enum kind kind;
	int arg;              /* app event, ignition on, command */
	double lat, speed, eph;  /* K_FIX; eph 0 means a good 5 m */
	int64_t until, every; /* repeat from t to until inclusive when every > 0 */
	bool track_north;     /* repeated fixes: lat follows t at 10 m/s north */
	const char *job;      /* K_APP job events: the job_id (NULL: none) */
};

#define APP(t_, e_) { .t = (t_), .kind = K_APP, .arg = (e_) }
#define ACC(t_) APP(t_, APP_JOB_ACCEPTED)
#define DELIV(t_) APP(t_, APP_JOB_DELIVERED)
#define OFFL(t_) APP(t_, APP_OFFLINE)
#define ONL(t_) APP(t_, APP_ONLINE)
/* Heartbeats every minute from a to b inclusive, keeping the app from falling silent. */
#define HB(a, b) { .t = (a), .kind = K_APP, .arg = APP_HEARTBEAT, .until = (b), .every = M(1) }
/* Heartbeats every exactly app_silence (5 min) from a to b: never a silence (rev 2). */
#define HB5(a, b) { .t = (a), .kind = K_APP, .arg = APP_HEARTBEAT, .until = (b), .every = M(5) }
#define PICKUP(t_) APP(t_, APP_JOB_PICKED_UP)
/* Pickups every `ev` from a to b: job events that keep a long job from job_timeout. */
#define PICKUPS(a, b, ev) { .t = (a), .kind = K_APP, .arg = APP_JOB_PICKED_UP, .until = (b), \
                            .every = (ev) }
/* A job event naming job id j. */
#define JOB(t_, e_, j) { .t = (t_), .kind = K_APP, .arg = (e_), .job = (j) }
#define ASSIGN(t_) { .t = (t_), .kind = K_ASSIGN }
#define REVOKE(t_) { .t = (t_), .kind = K_REVOKE }
#define IGN(t_, on) { .t = (t_), .kind = K_IGN, .arg = (on) }
#define CMD(t_) { .t = (t_), .kind = K_CMD, .arg = CMD_END_COVER }
#define FIX(t_, lat_, spd_) { .t = (t_), .kind = K_FIX, .lat = (lat_), .speed = (spd_) }
/* Where a vehicle driving north at 10 m/s since T0 is at offset t. */
#define LAT_AT(t_) (LAT0 + NORTH_DEG_PER_S * (double)(t_) / 1000.0)
/* Moving fixes every 10 s from a to b at 10 m/s north. */
#define MOVE(a, b) { .t = (a), .kind = K_FIX, .speed = 10.0, .until = (b), .every = S(10), \
                     .track_north = true }
/* Stationary fixes every minute from a to b where the drive stopped at offset at. */
#define STILL(a, b, at) { .t = (a), .kind = K_FIX, .lat = LAT_AT(at), .speed = 0.0, \
                          .until = (b), .every = M(1) }
/* The usual preamble: a policy and the app online before T0. */
#define PRE ASSIGN(-M(2)), ONL(-M(1))

struct exp_sess {
	int64_t start, end;
	enum engine_end_reason reason;
	int64_t close_at;     /* when the ending rule fired (SESSION_CLOSE at_ms) */
};

struct exp_act {
	int sess, index;
	int64_t start, end;   /* end NC: not checked (a voided record) */
	enum engine_act_status status;
	int revision;
	enum engine_end_reason reason;
};

struct ecase {
	const char *name;
	enum engine_trigger trigger;
	int64_t gap_end_ms;   /* 0: the default, as for the next three */
	int64_t unit_ms, min_cover_ms, app_silence_ms;
	const struct ev_spec *ev;
	size_t n_ev;
	int64_t until;        /* run (and tick) up to T0 + until */
	/* Bit i set: session i opens by RULE_START_JOB_IN_PROGRESS (a job in progress when
	 * the other conditions came true), not by the trigger's own rule. */
	unsigned in_progress_opens;
	const struct exp_sess *sess;
	size_t n_sess;
	const struct exp_act *act;
	size_t n_act;
};

#define EVENTS(...) .ev = (const struct ev_spec[]){ __VA_ARGS__ }, \
	.n_ev = sizeof((const struct ev_spec[]){ __VA_ARGS__ }) / sizeof(struct ev_spec)
#define SESSIONS(...) .sess = (const struct exp_sess[]){ __VA_ARGS__ }, \
	.n_sess = sizeof((const struct exp_sess[]){ __VA_ARGS__ }) / sizeof(struct exp_sess)
#define NO_SESSIONS .sess = NULL, .n_sess = 0
#define ACTS(...) .act = (const struct exp_act[]){ __VA_ARGS__ }, \
	.n_act = sizeof((const struct exp_act[]){ __VA_ARGS__ }) / sizeof(struct exp_act)
#define NO_ACTS .act = NULL, .n_act = 0
#define HOUR_ACT(k) { 0, (k), H(k), H((k) + 1), ACT_CLOSED, 2, END_HOUR }

static const struct ecase cases[] = {
	{
		/* Start needs job_accepted while online and holding a policy (JOB trigger): the
		 * accept while offline is no job at all, the one without a policy starts nothing.
		 * Rev 2 "policy assigned mid-job opens a session": that job is in progress, so
		 * the assign at 4 min opens cover (was: the accept at 5 min). */
		.name = "job_trigger_needs_online_and_policy",
		EVENTS(ASSIGN(-M(10)), ACC(0), ONL(M(1)), REVOKE(M(2)), ACC(M(3)), ASSIGN(M(4)),
		       ACC(M(5)), HB(M(5) + S(30), M(29) + S(30)), OFFL(M(30))),
		.until = H(2),
		.in_progress_opens = 1u << 0,
		SESSIONS({ M(4), M(30), END_OFFLINE, M(30) }),
		ACTS({ 0, 0, M(4), M(30), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* A job accepted exactly at gap_end after the last delivery keeps the session. */
		.name = "gap_end_exact_keeps_session",
		EVENTS(PRE, ACC(0), HB(S(30), M(19) + S(30)), DELIV(M(20)),
		       HB(M(20) + S(30), M(29) + S(30)), ACC(M(30)),
		       HB(M(30) + S(30), M(49) + S(30)), DELIV(M(50)),
		       HB(M(50) + S(30), M(54) + S(30)), OFFL(M(55))),
		.until = H(2),
		/* Rev 2 "ending event inside the grace": the offline at 55 ends cover at the
		 * delivery at 50, reason offline (was: at 55). */
		SESSIONS({ 0, M(50), END_OFFLINE, M(55) }),
		ACTS({ 0, 0, 0, M(50), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* One millisecond later the gap has ended at the delivery; the job opens anew. */
		.name = "gap_end_plus_1ms_new_session",
		EVENTS(PRE, ACC(0), HB(S(30), M(19) + S(30)), DELIV(M(20)),
		       HB(M(20) + S(30), M(29) + S(30)), ACC(M(30) + 1),
		       HB(M(30) + S(30), M(49) + S(30)), DELIV(M(50)),
		       HB(M(50) + S(30), M(54) + S(30)), OFFL(M(55))),
		.until = H(2),
		/* Rev 2 "ending event inside the grace": the second session ends at its delivery
		 * at 50, reason offline (was: at the offline at 55). */
		SESSIONS({ 0, M(20), END_GAP, M(30) }, { M(30) + 1, M(50), END_OFFLINE, M(55) }),
		ACTS({ 0, 0, 0, M(20), ACT_CLOSED, 2, END_GAP },
		     { 1, 0, M(30) + 1, M(50), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* A cancelled job counts as finished when cancelled. */
		.name = "cancelled_job_finishes_at_cancel",
		EVENTS(PRE, ACC(0), HB(S(30), M(9) + S(30)), APP(M(10), APP_JOB_CANCELLED),
		       HB(M(10) + S(30), M(30) + S(30))),
		.until = H(1),
		SESSIONS({ 0, M(10), END_GAP, M(20) }),
		ACTS({ 0, 0, 0, M(10), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* With a second job still in progress, a cancellation does not start the gap. */
		.name = "cancel_one_of_two_jobs",
		EVENTS(PRE, ACC(0), ACC(M(1)), HB(S(30), M(40) + S(30)),
		       APP(M(10), APP_JOB_CANCELLED), DELIV(M(30))),
		.until = H(1),
		SESSIONS({ 0, M(30), END_GAP, M(40) }),
		ACTS({ 0, 0, 0, M(30), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Offline mid-job ends at the offline event; a job while offline starts nothing. */
		.name = "offline_mid_job",
		EVENTS(PRE, ACC(0), APP(M(5), APP_JOB_PICKED_UP), HB(S(30), M(16) + S(30)),
		       OFFL(M(17) + 123), ACC(M(20))),
		.until = H(1),
		SESSIONS({ 0, M(17) + 123, END_OFFLINE, M(17) + 123 }),
		ACTS({ 0, 0, 0, M(17) + 123, ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* The app falls silent after the delivery at 5 min while the vehicle drives on
		 * to 70 min: motion keeps the session past gap_end (15 min); it ends at the last
		 * movement once stationary for gap_end (detected at 80 min). */
		.name = "app_silent_while_moving",
		EVENTS(PRE, ACC(0), DELIV(M(5)), MOVE(0, M(70)), STILL(M(71), M(100), M(70))),
		.until = H(2),
		SESSIONS({ 0, M(70), END_APP_SILENCE, M(80) }),
		ACTS({ 0, 0, 0, H(1), ACT_CLOSED, 2, END_HOUR },
		     { 0, 1, H(1), M(70), ACT_CLOSED, 2, END_APP_SILENCE }),
	},
	{
		/* Silent (last app event 30 min) and stationary since 5 min, job in progress:
		 * ends once app_silence passed and the vehicle stood still for idle_end (rev 2:
		 * idle_end, not gap_end, while a job is in progress; both fall at 35 min), at the
		 * later of the last app event and the last movement (30 min). */
		.name = "app_silent_while_stationary",
		EVENTS(PRE, ACC(0), APP(M(2), APP_JOB_PICKED_UP), HB(M(3), M(30)), MOVE(0, M(5)),
		       STILL(M(6), M(60), M(5))),
		.until = H(2),
		SESSIONS({ 0, M(30), END_APP_SILENCE, M(35) }),
		ACTS({ 0, 0, 0, M(30), ACT_CLOSED, 2, END_APP_SILENCE }),
	},
	{
		/* Silent from 30 min (silence passes at 35) but moving until 38, a job in
		 * progress: rev 2 "for idle_end while a job is in progress" - stationary for
		 * idle_end at 68 (was: gap_end, 48), end at the last movement; the hour opened at
		 * 60 is voided. */
		.name = "app_silent_then_vehicle_stops",
		EVENTS(PRE, ACC(0), HB(M(1), M(30)), MOVE(0, M(38)), STILL(M(39), M(70), M(38))),
		.until = H(2),
		SESSIONS({ 0, M(38), END_APP_SILENCE, M(68) }),
		ACTS({ 0, 0, 0, M(38), ACT_CLOSED, 3, END_APP_SILENCE },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* max_session: a 16-hour job, the app alive for 17 h. The last hour closes with
		 * the session (ending rules before the hour boundary); no 17th. Rev 2 job_timeout:
		 * pickups every 2 h keep the job in progress (it would count as ended at 0 after
		 * 3 h); rev 2 "max_session mid-job opens the next session": it is delivered at
		 * exactly 16 h, applied before max_session is judged, so no second session. */
		.name = "max_session_16h",
		EVENTS(PRE, ACC(0), PICKUPS(H(2), H(14), H(2)), HB(S(30), H(17)), DELIV(H(16))),
		.until = H(18),
		SESSIONS({ 0, H(16), END_MAX_SESSION, H(16) }),
		ACTS(HOUR_ACT(0), HOUR_ACT(1), HOUR_ACT(2), HOUR_ACT(3), HOUR_ACT(4), HOUR_ACT(5),
		     HOUR_ACT(6), HOUR_ACT(7), HOUR_ACT(8), HOUR_ACT(9), HOUR_ACT(10),
		     HOUR_ACT(11), HOUR_ACT(12), HOUR_ACT(13), HOUR_ACT(14),
		     { 0, 15, H(15), H(16), ACT_CLOSED, 2, END_MAX_SESSION }),
	},
	{
		/* A 5-minute session: one activation (billed whole as min_cover) whose recorded
		 * end is the real end of cover. */
		.name = "min_cover_short_session",
		EVENTS(PRE, ACC(0), DELIV(M(2)), HB(M(2) + S(30), M(4) + S(30)), OFFL(M(5))),
		.until = H(2),
		/* Rev 2 "ending event inside the grace": cover ends at the delivery (2 min), not
		 * at the offline (5 min). */
		SESSIONS({ 0, M(2), END_OFFLINE, M(5) }),
		ACTS({ 0, 0, 0, M(2), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* private_on ends cover; no start while private; private_off allows it again. */
		.name = "private_mode",
		EVENTS(PRE, ACC(0), HB(S(30), M(19) + S(30)), APP(M(10), APP_PRIVATE_ON),
		       ACC(M(12)), APP(M(15), APP_PRIVATE_OFF), ACC(M(16)), OFFL(M(20))),
		.until = H(1),
		SESSIONS({ 0, M(10), END_PRIVATE, M(10) }, { M(16), M(20), END_OFFLINE, M(20) }),
		ACTS({ 0, 0, 0, M(10), ACT_CLOSED, 2, END_PRIVATE },
		     { 1, 0, M(16), M(20), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* Policy revoked in the second hour; a later job starts nothing. */
		.name = "policy_revoked_mid_session",
		EVENTS(PRE, ACC(0), HB(S(30), M(90) + S(30)), REVOKE(M(75)), ACC(M(80))),
		.until = H(2),
		SESSIONS({ 0, M(75), END_POLICY_REVOKED, M(75) }),
		ACTS(HOUR_ACT(0), { 0, 1, H(1), M(75), ACT_CLOSED, 2, END_POLICY_REVOKED }),
	},
	{
		.name = "end_cover_command",
		EVENTS(PRE, ACC(0), HB(S(30), M(50) + S(30)), CMD(M(42))),
		.until = H(1),
		SESSIONS({ 0, M(42), END_COMMAND, M(42) }),
		ACTS({ 0, 0, 0, M(42), ACT_CLOSED, 2, END_COMMAND }),
	},
	{
		/* A delivery and an accept in the same millisecond: both applied, in order, so
		 * one job is always in progress and the session goes on. */
		.name = "same_time_delivery_and_accept",
		EVENTS(PRE, ACC(0), HB(S(30), M(44) + S(30)), DELIV(M(20)), ACC(M(20)),
		       DELIV(M(40)), OFFL(M(45))),
		.until = H(1),
		/* Rev 2 "ending event inside the grace": ends at the last delivery (40). */
		SESSIONS({ 0, M(40), END_OFFLINE, M(45) }),
		ACTS({ 0, 0, 0, M(40), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* The hour boundary passes during the gap_end grace (delivery at 55 min, gap
		 * ends at 65): activation 1 is opened at 60 and voided by a new revision when
		 * the end is backdated to 55; activation 0 is closed again at 55. */
		.name = "grace_hour_voided",
		EVENTS(PRE, ACC(0), DELIV(M(55)), HB(S(30), M(70) + S(30))),
		.until = H(2),
		SESSIONS({ 0, M(55), END_GAP, M(65) }),
		ACTS({ 0, 0, 0, M(55), ACT_CLOSED, 3, END_GAP },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* gap_end 90 min: two hours open in the grace; both voided, the first after it
		 * was closed by its hour (revision 3). */
		.name = "grace_two_hours_voided",
		.gap_end_ms = M(90),
		EVENTS(PRE, ACC(0), DELIV(M(50)), HB(S(30), M(150) + S(30))),
		.until = H(3),
		SESSIONS({ 0, M(50), END_GAP, M(140) }),
		ACTS({ 0, 0, 0, M(50), ACT_CLOSED, 3, END_GAP },
		     { 0, 1, H(1), NC, ACT_VOID, 3, END_VOID },
		     { 0, 2, H(2), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* The backdated end falls exactly on the hour: activation 1 (starting there) is
		 * voided; activation 0 already ends there and is not inside, so it stays as its
		 * hour closed it. */
		.name = "grace_end_on_hour_boundary",
		EVENTS(PRE, ACC(0), DELIV(H(1)), HB(S(30), M(75) + S(30))),
		.until = H(2),
		SESSIONS({ 0, H(1), END_GAP, M(70) }),
		ACTS({ 0, 0, 0, H(1), ACT_CLOSED, 2, END_HOUR },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* ONLINE trigger: opens on online; idle_end 30 min after the last movement. */
		.name = "online_trigger_idle_end",
		.trigger = TRIGGER_ONLINE,
		EVENTS(ASSIGN(-M(2)), ONL(0), HB(S(30), M(100) + S(30)), MOVE(0, M(20)),
		       STILL(M(21), M(100), M(20))),
		.until = H(2),
		SESSIONS({ 0, M(20), END_IDLE, M(50) }),
		ACTS({ 0, 0, 0, M(20), ACT_CLOSED, 2, END_IDLE }),
	},
	{
		/* ONLINE trigger with a job ending at 40 min, after the last movement (20):
		 * idle from 40, detected at 70, so the hour opened at 60 is voided. */
		.name = "online_trigger_idle_after_job",
		.trigger = TRIGGER_ONLINE,
		EVENTS(ASSIGN(-M(2)), ONL(0), HB(S(30), M(100) + S(30)), MOVE(0, M(20)),
		       STILL(M(21), M(100), M(20)), ACC(M(5)), DELIV(M(40))),
		.until = H(2),
		SESSIONS({ 0, M(40), END_IDLE, M(70) }),
		ACTS({ 0, 0, 0, M(40), ACT_CLOSED, 3, END_IDLE },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* ONLINE trigger needs a policy; no session for online without one. */
		.name = "online_trigger_needs_policy",
		.trigger = TRIGGER_ONLINE,
		EVENTS(ONL(0), OFFL(M(1)), ASSIGN(M(2)), ONL(M(3)), HB(M(3) + S(30), M(9) + S(30)),
		       OFFL(M(10))),
		.until = H(1),
		SESSIONS({ M(3), M(10), END_OFFLINE, M(10) }),
		ACTS({ 0, 0, M(3), M(10), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* MOTION trigger: a moving fix with the ignition off, or a stationary one with it
		 * on, starts nothing; a moving fix with it on does; idle_end after movement. */
		.name = "motion_trigger_idle_end",
		.trigger = TRIGGER_MOTION,
		EVENTS(ASSIGN(-M(10)), FIX(-M(5), LAT_AT(M(1)), 10.0), IGN(0, 1),
		       FIX(S(30), LAT_AT(M(1)), 0.0), MOVE(M(1), M(30)),
		       STILL(M(31), M(90), M(30))),
		.until = H(2),
		SESSIONS({ M(1), M(30), END_IDLE, M(60) }),
		ACTS({ 0, 0, M(1), M(30), ACT_CLOSED, 2, END_IDLE }),
	},
	{
		/* MOTION trigger: a fix worse than max_eph is ignored, so it starts nothing. */
		.name = "motion_trigger_ignores_inaccurate_fix",
		.trigger = TRIGGER_MOTION,
		EVENTS(ASSIGN(-M(10)), IGN(0, 1),
		       { .t = M(1), .kind = K_FIX, .lat = LAT_AT(M(2)), .speed = 10.0, .eph = 80.0 },
		       MOVE(M(2), M(10)), STILL(M(11), M(60), M(10))),
		.until = H(2),
		SESSIONS({ M(2), M(10), END_IDLE, M(40) }),
		ACTS({ 0, 0, M(2), M(10), ACT_CLOSED, 2, END_IDLE }),
	},
	{
		/* Offline exactly at start + 1 h: one activation. */
		.name = "offline_exactly_at_hour",
		EVENTS(PRE, ACC(0), HB(S(30), H(1) - S(30)), OFFL(H(1))),
		.until = H(2),
		SESSIONS({ 0, H(1), END_OFFLINE, H(1) }),
		ACTS({ 0, 0, 0, H(1), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* Offline at start + 1 h + 1 ms: two activations. */
		.name = "offline_1ms_after_hour",
		EVENTS(PRE, ACC(0), HB(S(30), H(1) - S(30)), OFFL(H(1) + 1)),
		.until = H(2),
		SESSIONS({ 0, H(1) + 1, END_OFFLINE, H(1) + 1 }),
		ACTS(HOUR_ACT(0), { 0, 1, H(1), H(1) + 1, ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* A power cut at 56 min: the next event is a job 5 h later. The first session
		 * ends by app silence (silent from 61, stationary since 50) at the last app
		 * event (56), voiding the hour opened at 60; the job then opens a new session.
		 * The no-tick run must give exactly what ticking every deadline gives. */
		.name = "power_cut_5h_jump",
		EVENTS(PRE, ACC(0), MOVE(0, M(50)), STILL(M(51), M(51), M(50)),
		       HB(S(30), M(54) + S(30)), DELIV(M(55)),
		       APP(M(56), APP_HEARTBEAT), ACC(H(5) + M(56)),
		       HB(H(5) + M(56) + S(30), H(6) + M(9) + S(30)), OFFL(H(6) + M(10))),
		.until = H(7),
		SESSIONS({ 0, M(56), END_APP_SILENCE, M(61) },
		         { H(5) + M(56), H(6) + M(10), END_OFFLINE, H(6) + M(10) }),
		ACTS({ 0, 0, 0, M(56), ACT_CLOSED, 3, END_APP_SILENCE },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID },
		     { 1, 0, H(5) + M(56), H(6) + M(10), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* The app comes back after a silence in which motion kept the session alive:
		 * the hours telematics vouched for are not taken back. With no job, the gap
		 * counts from the app's return (30 min), not from the delivery before the
		 * silence (5 min); the app alive again, movement no longer matters. */
		.name = "app_returns_after_silence",
		EVENTS(PRE, ACC(0), DELIV(M(5)), MOVE(0, M(45)), STILL(M(46), M(60), M(45)),
		       HB(M(30), M(50))),
		.until = H(2),
		SESSIONS({ 0, M(30), END_GAP, M(40) }),
		ACTS({ 0, 0, 0, M(30), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* The app falls silent (9.5 + 5 = 14.5 min) just before the gap would end (15):
		 * the gap rule is suspended and motion keeps the session to the last movement. */
		.name = "app_silent_just_before_gap_end",
		EVENTS(PRE, ACC(0), HB(S(30), M(4) + S(30)), DELIV(M(5)), HB(M(9) + S(30), M(9) + S(30)),
		       MOVE(0, M(30)), STILL(M(31), M(60), M(30))),
		.until = H(2),
		SESSIONS({ 0, M(30), END_APP_SILENCE, M(40) }),
		ACTS({ 0, 0, 0, M(30), ACT_CLOSED, 2, END_APP_SILENCE }),
	},
	{
		/* Heartbeats at 9 and 10 min: the silence rule falls due exactly when the gap
		 * ends (10 + 5 = 15 min). Rev 2 "when gap_end and the app-silence rule fall due
		 * at the same instant, gap_end decides": ends at the delivery, moving or not
		 * (was: suspended, app_silence at the last movement). */
		.name = "app_silent_exactly_at_gap_end",
		EVENTS(PRE, ACC(0), HB(S(30), M(4) + S(30)), DELIV(M(5)), HB(M(9), M(10)),
		       MOVE(0, M(30)), STILL(M(31), M(60), M(30))),
		.until = H(2),
		SESSIONS({ 0, M(5), END_GAP, M(15) }),
		ACTS({ 0, 0, 0, M(5), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Heartbeats at 9 and 10 min + 1 ms: silent 1 ms after the gap ends, so the gap
		 * rule ends it at the delivery, moving or not. */
		.name = "gap_end_just_before_app_silent",
		EVENTS(PRE, ACC(0), HB(S(30), M(4) + S(30)), DELIV(M(5)), HB(M(9), M(9)), HB(M(10) + 1, M(10) + 1),
		       MOVE(0, M(30)), STILL(M(31), M(60), M(30))),
		.until = H(2),
		SESSIONS({ 0, M(5), END_GAP, M(15) }),
		ACTS({ 0, 0, 0, M(5), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* A zero-length session (accepted and delivered in the same millisecond) with
		 * a 90-minute grace: activation 0 is an empty interval and is never voided; the
		 * hour opened in the grace is. */
		.name = "zero_length_session_keeps_activation_0",
		.gap_end_ms = M(90),
		EVENTS(PRE, ACC(0), DELIV(0), HB(S(30), M(100) + S(30))),
		.until = H(3),
		SESSIONS({ 0, 0, END_GAP, M(90) }),
		ACTS({ 0, 0, 0, 0, ACT_CLOSED, 3, END_GAP },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* "A fix at or above this speed is movement": exactly move_speed_mps starts a
		 * MOTION session; just below does not. */
		.name = "motion_at_exact_move_speed",
		.trigger = TRIGGER_MOTION,
		EVENTS(ASSIGN(-M(10)), IGN(0, 1), FIX(S(30), LAT0, 1.99), FIX(M(1), LAT0, 2.0),
		       STILL(M(2), M(40), 0)),
		.until = H(2),
		/* Rev 2 "a session of zero length in which no job was accepted bills nothing":
		 * activation 0 is voided (was: closed and billed). */
		SESSIONS({ M(1), M(1), END_IDLE, M(31) }),
		ACTS({ 0, 0, M(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* A 30-minute unit: activation k covers [start + k*unit, ...). */
		.name = "unit_30_minutes",
		.unit_ms = M(30),
		.min_cover_ms = M(30),
		EVENTS(PRE, ACC(0), HB(S(30), M(64) + S(30)), OFFL(M(65))),
		.until = H(2),
		SESSIONS({ 0, M(65), END_OFFLINE, M(65) }),
		ACTS({ 0, 0, 0, M(30), ACT_CLOSED, 2, END_HOUR },
		     { 0, 1, M(30), M(60), ACT_CLOSED, 2, END_HOUR },
		     { 0, 2, M(60), M(65), ACT_CLOSED, 2, END_OFFLINE }),
	},
	{
		/* With the app never silent, the gap rule alone: no heartbeats needed, and the
		 * daemon's ticks at engine_next_deadline() find the gap end exactly. */
		.name = "gap_end_without_heartbeats",
		.app_silence_ms = H(3),
		EVENTS(PRE, ACC(0), DELIV(M(20))),
		.until = H(2),
		SESSIONS({ 0, M(20), END_GAP, M(30) }),
		ACTS({ 0, 0, 0, M(20), ACT_CLOSED, 2, END_GAP }),
	},
	/* ---- revision 2: each row below fails on the revision-1 engine ---- */
	{
		/* Item 1: the audit's 40-minute job. Heartbeats every exactly app_silence (5 min)
		 * are never a silence, so the idle app online until 18:00 bills 1 unit: gap_end
		 * at the delivery. */
		.name = "heartbeat_every_5min_after_40min_job",
		EVENTS(PRE, ACC(0), HB5(M(5), H(9)), DELIV(M(40))),
		.until = H(10),
		SESSIONS({ 0, M(40), END_GAP, M(50) }),
		ACTS({ 0, 0, 0, M(40), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Item 2: a fix and a heartbeat at the same millisecond as a job accepted exactly
		 * at gap_end are all applied before gap_end is judged: one session. The gap then
		 * ends at 60 together with the hour boundary, which it beats: no second hour. */
		.name = "accept_at_gap_end_after_fix_and_heartbeat_same_ms",
		EVENTS(PRE, ACC(0), HB(S(30), M(19) + S(30)), DELIV(M(20)),
		       HB(M(20) + S(30), M(29) + S(30)), FIX(M(30), LAT0, 0.0),
		       APP(M(30), APP_HEARTBEAT), ACC(M(30)), HB(M(30) + S(30), M(80) + S(30)),
		       DELIV(M(50))),
		.until = H(2),
		SESSIONS({ 0, M(50), END_GAP, M(60) }),
		ACTS({ 0, 0, 0, M(50), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Item 4: job_picked_up never creates a job: a stray one after the last delivery
		 * bills nothing more (1 unit, not until the offline at 2 h). */
		.name = "stray_pickup_after_last_delivery",
		EVENTS(PRE, ACC(0), HB(S(30), H(2) - S(30)), DELIV(M(40)), PICKUP(M(45)),
		       OFFL(H(2))),
		.until = H(3),
		SESSIONS({ 0, M(40), END_GAP, M(50) }),
		ACTS({ 0, 0, 0, M(40), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Item 5: a re-sent delivery with nothing in progress neither ends nor extends
		 * anything: the grace runs from the first (55), so the hour opened at 60 is
		 * voided; no extra hour. */
		.name = "resent_delivery_no_extra_hour",
		EVENTS(PRE, ACC(0), HB(S(30), M(90) + S(30)), DELIV(M(55)), DELIV(M(64))),
		.until = H(2),
		SESSIONS({ 0, M(55), END_GAP, M(65) }),
		ACTS({ 0, 0, 0, M(55), ACT_CLOSED, 3, END_GAP },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* Item 5 with job ids: the second delivery names a job no longer in progress. */
		.name = "resent_delivery_with_id_no_extra_hour",
		EVENTS(PRE, JOB(0, APP_JOB_ACCEPTED, "A"), HB(S(30), M(90) + S(30)),
		       JOB(M(55), APP_JOB_DELIVERED, "A"), JOB(M(64), APP_JOB_DELIVERED, "A")),
		.until = H(2),
		SESSIONS({ 0, M(55), END_GAP, M(65) }),
		ACTS({ 0, 0, 0, M(55), ACT_CLOSED, 3, END_GAP },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* Item 6: heartbeats stop at 56, a minute after the delivery, and resume at 62
		 * (a 6-minute gap, silent from 61) while the driver drives home. The grace did not
		 * run out during the silence, so it goes on from the delivery: gap_end at 65,
		 * end 55, 1 unit (the hour opened at 60 voided). */
		.name = "heartbeat_gap_6min_inside_grace",
		EVENTS(PRE, ACC(0), HB(M(1), M(56)), DELIV(M(55)), HB(M(62), M(90)),
		       MOVE(M(50), M(63)), STILL(M(64), M(90), M(63))),
		.until = H(2),
		SESSIONS({ 0, M(55), END_GAP, M(65) }),
		ACTS({ 0, 0, 0, M(55), ACT_CLOSED, 3, END_GAP },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* Item 6, parked: silent and stationary (no movement since the start) once
		 * app_silence has passed at 61, so the silence rule ends cover at the last app
		 * event (56) before the app is back: still 1 unit. */
		.name = "heartbeat_gap_6min_inside_grace_parked",
		EVENTS(PRE, ACC(0), HB(M(1), M(56)), DELIV(M(55)), HB(M(62), M(90))),
		.until = H(2),
		SESSIONS({ 0, M(56), END_APP_SILENCE, M(61) }),
		ACTS({ 0, 0, 0, M(56), ACT_CLOSED, 3, END_APP_SILENCE },
		     { 0, 1, H(1), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* Item 12, job_timeout: the job's last event is the pickup at 50; with no event
		 * for 3 h it counts as ended there, the grace long over: cover ends at 50, found
		 * at 3 h 50; the hours opened meanwhile are voided. */
		.name = "job_timeout_ends_at_last_job_event",
		EVENTS(PRE, ACC(0), PICKUP(M(50)), HB(S(30), H(5))),
		.until = H(6),
		SESSIONS({ 0, M(50), END_JOB_TIMEOUT, H(3) + M(50) }),
		ACTS({ 0, 0, 0, M(50), ACT_CLOSED, 3, END_JOB_TIMEOUT },
		     { 0, 1, H(1), NC, ACT_VOID, 3, END_VOID },
		     { 0, 2, H(2), NC, ACT_VOID, 3, END_VOID },
		     { 0, 3, H(3), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* Item 12, job_timeout with ids: B's pickups do not refresh A. B is delivered at
		 * 2 h 30; A, silent since its accept, times out at 3 h, which ends cover at the
		 * last job end (2 h 30) before the hour boundary at 3 h opens anything. */
		.name = "job_timeout_per_job_id",
		EVENTS(PRE, JOB(0, APP_JOB_ACCEPTED, "A"), JOB(M(5), APP_JOB_ACCEPTED, "B"),
		       JOB(H(1), APP_JOB_PICKED_UP, "B"), JOB(H(2), APP_JOB_PICKED_UP, "B"),
		       JOB(H(2) + M(30), APP_JOB_DELIVERED, "B"), HB(S(30), H(4))),
		.until = H(5),
		SESSIONS({ 0, H(2) + M(30), END_JOB_TIMEOUT, H(3) }),
		ACTS(HOUR_ACT(0), HOUR_ACT(1),
		     { 0, 2, H(2), H(2) + M(30), ACT_CLOSED, 2, END_JOB_TIMEOUT }),
	},
	{
		/* Item 12: the re-sent accept at 5 is a duplicate (no second job), but an accept
		 * of an id already delivered (25) is a new job: the session runs to its delivery
		 * at 40, and no phantom job keeps it open after. */
		.name = "accept_of_delivered_id_is_new_job",
		EVENTS(PRE, JOB(0, APP_JOB_ACCEPTED, "A"), HB(S(30), M(60) + S(30)),
		       JOB(M(5), APP_JOB_ACCEPTED, "A"), JOB(M(20), APP_JOB_DELIVERED, "A"),
		       JOB(M(25), APP_JOB_ACCEPTED, "A"), JOB(M(40), APP_JOB_DELIVERED, "A")),
		.until = H(2),
		SESSIONS({ 0, M(40), END_GAP, M(50) }),
		ACTS({ 0, 0, 0, M(40), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Item 12: an online-trigger session with no movement and no job before
		 * idle_end is of zero length: activation 0 is voided, nothing billed. */
		.name = "online_trigger_zero_length_no_job_voided",
		.trigger = TRIGGER_ONLINE,
		EVENTS(ASSIGN(-M(2)), ONL(0), HB(S(30), H(1))),
		.until = H(2),
		SESSIONS({ 0, 0, END_IDLE, M(30) }),
		ACTS({ 0, 0, 0, NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* Item 12: a policy assigned mid-job (the job accepted online without one)
		 * opens a session at the assign, under the job trigger. */
		.name = "policy_assigned_mid_job_opens_session",
		EVENTS(ONL(-M(1)), ACC(0), HB(S(30), M(40) + S(30)), ASSIGN(M(5)), DELIV(M(20))),
		.until = H(1),
		.in_progress_opens = 1u << 0,
		SESSIONS({ M(5), M(20), END_GAP, M(30) }),
		ACTS({ 0, 0, M(5), M(20), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Item 12: max_session ends a session mid-job; the next opens at once, at 16 h,
		 * and runs to the delivery's grace. */
		.name = "max_session_mid_job_opens_next_session",
		EVENTS(PRE, ACC(0), PICKUPS(H(2), H(16), H(2)), HB(S(30), H(17)),
		       DELIV(H(16) + M(30))),
		.until = H(18),
		.in_progress_opens = 1u << 1,
		SESSIONS({ 0, H(16), END_MAX_SESSION, H(16) },
		         { H(16), H(16) + M(30), END_GAP, H(16) + M(40) }),
		ACTS(HOUR_ACT(0), HOUR_ACT(1), HOUR_ACT(2), HOUR_ACT(3), HOUR_ACT(4), HOUR_ACT(5),
		     HOUR_ACT(6), HOUR_ACT(7), HOUR_ACT(8), HOUR_ACT(9), HOUR_ACT(10),
		     HOUR_ACT(11), HOUR_ACT(12), HOUR_ACT(13), HOUR_ACT(14),
		     { 0, 15, H(15), H(16), ACT_CLOSED, 2, END_MAX_SESSION },
		     { 1, 0, H(16), H(16) + M(30), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* Item 12: silent from 10 min and parked, a job in progress: the silence rule
		 * ends cover at 10 (found at 0 + idle_end = 30). The app's return at 45, the job
		 * still in progress, reopens cover at once. */
		.name = "app_return_after_silence_reopens_mid_job",
		EVENTS(PRE, ACC(0), HB(M(1), M(10)), HB(M(45), M(80)), DELIV(M(60))),
		.until = H(2),
		.in_progress_opens = 1u << 1,
		SESSIONS({ 0, M(10), END_APP_SILENCE, M(30) }, { M(45), M(60), END_GAP, M(70) }),
		ACTS({ 0, 0, 0, M(10), ACT_CLOSED, 2, END_APP_SILENCE },
		     { 1, 0, M(45), M(60), ACT_CLOSED, 2, END_GAP }),
	},
	{
		/* ONLINE trigger, the job's "delivered" lost: it times out at 3 h 05 m 10 s,
		 * counting as ended at its accept; idle since the last movement (20 min), so
		 * cover ends there [engine.h: idle_end, job_timeout being a JOB-trigger ending],
		 * found when the job timed out (not before: the job was in progress until then). */
		.name = "online_trigger_job_timeout",
		.trigger = TRIGGER_ONLINE,
		EVENTS(ASSIGN(-M(2)), ONL(0), ACC(M(5) + S(10)), MOVE(0, M(20)),
		       STILL(M(21), H(5), M(20)), HB(S(30), H(5))),
		.until = H(6),
		SESSIONS({ 0, M(20), END_IDLE, H(3) + M(5) + S(10) }),
		ACTS({ 0, 0, 0, M(20), ACT_CLOSED, 3, END_IDLE },
		     { 0, 1, H(1), NC, ACT_VOID, 3, END_VOID },
		     { 0, 2, H(2), NC, ACT_VOID, 3, END_VOID },
		     { 0, 3, H(3), NC, ACT_VOID, 2, END_VOID }),
	},
	{
		/* The app silent since the accept, the driver moving until 2 h 40 and parked
		 * since: the job in progress needs idle_end of standing (3 h 10). At 3 h it times
		 * out (no job event since 0), and with no job gap_end of standing is enough: cover
		 * ends at the last movement, found at 3 h, when the job timed out, not before. */
		.name = "job_timeout_then_app_silence_parked",
		EVENTS(PRE, ACC(0), MOVE(0, H(2) + M(40)),
		       STILL(H(2) + M(40) + S(30), H(4), H(2) + M(40))),
		.until = H(5),
		SESSIONS({ 0, H(2) + M(40), END_APP_SILENCE, H(3) }),
		ACTS(HOUR_ACT(0), HOUR_ACT(1),
		     { 0, 2, H(2), H(2) + M(40), ACT_CLOSED, 2, END_APP_SILENCE }),
	},
	{
		/* No policy at all: a whole shift of jobs gives no cover. */
		.name = "no_policy_no_cover",
		EVENTS(ONL(0), ACC(M(1)), HB(M(1) + S(30), M(30) + S(30)), DELIV(M(20)),
		       OFFL(M(40))),
		.until = H(1),
		NO_SESSIONS,
		NO_ACTS,
	},
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

struct gen_ev {
	int64_t t;
	size_t seq;
	struct engine_event ev;
};

#define MAX_GEN 8192
static struct gen_ev g_gen[MAX_GEN];

static int gen_cmp(const void *a, const void *b)
{
	const struct gen_ev *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static struct engine_event spec_event(const struct ev_spec *sp, int64_t t)
{
	switch (sp->kind) {
	case K_APP: {
		struct engine_event e = ev_app(T0 + t, (enum engine_app_event)sp->arg);
		if (sp->job)
			snprintf(e.job_id, sizeof(e.job_id), "%s", sp->job);
		return e;
	}
	case K_ASSIGN:
		return ev_assign(T0 + t, "P-1", "D-1", "V-1");
	case K_REVOKE:
		return ev_revoke(T0 + t, "P-1");
	case K_FIX: {
		double lat = sp->track_north ? LAT_AT(t) : sp->lat;
		return ev_fix(T0 + t, lat, LON0, sp->speed, sp->eph > 0 ? sp->eph : 5.0);
	}
	case K_IGN:
		return ev_ignition(T0 + t, sp->arg != 0);
	case K_CMD:
		return ev_cmd(T0 + t, (enum engine_cmd)sp->arg);
	}
	return ev_tick(T0 + t);
}

/* Expands the repeats and orders the events by time, keeping table order at equal times. */
static size_t expand(const struct ecase *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n_ev; i++) {
		const struct ev_spec *sp = &c->ev[i];
		int64_t last = sp->every > 0 ? sp->until : sp->t;
		for (int64_t t = sp->t; t <= last; t += sp->every > 0 ? sp->every : 1) {
			assert_true(n < MAX_GEN);
			g_gen[n].t = t;
			g_gen[n].seq = n;
			g_gen[n].ev = spec_event(sp, t);
			n++;
		}
	}
	qsort(g_gen, n, sizeof(g_gen[0]), gen_cmp);
	return n;
}

static void case_config(const struct ecase *c, struct engine_config *cfg)
{
	engine_config_defaults(cfg);
	cfg->trigger = c->trigger;
	if (c->gap_end_ms > 0)
		cfg->gap_end_ms = c->gap_end_ms;
	if (c->unit_ms > 0)
		cfg->unit_ms = c->unit_ms;
	if (c->min_cover_ms > 0)
		cfg->min_cover_ms = c->min_cover_ms;
	if (c->app_silence_ms > 0)
		cfg->app_silence_ms = c->app_silence_ms;
	const char *why = NULL;
	int rc = engine_config_check(cfg, &why);
	if (rc != 0)
		fail_msg("case %s: config rejected: %s", c->name, why ? why : "(no reason)");
}

static void fmt_off(char *buf, size_t len, int64_t t)
{
	if (t == NC || t == INT64_MIN) {
		snprintf(buf, len, "(none)");
		return;
	}
	int64_t off = t - T0;
	const char *sign = off < 0 ? "-" : "+";
	if (off < 0)
		off = -off;
	snprintf(buf, len, "T0%s%" PRId64 "h%02" PRId64 "m%02" PRId64 "s%03" PRId64, sign,
	         (int64_t)(off / HOUR_MS), (int64_t)(off / MIN_MS % 60),
	         (int64_t)(off / SEC_MS % 60), (int64_t)(off % 1000));
}

static const char *status_name(enum engine_act_status s)
{
	switch (s) {
	case ACT_EMPTY: return "EMPTY";
	case ACT_OPEN: return "OPEN";
	case ACT_CLOSED: return "CLOSED";
	case ACT_VOID: return "VOID";
	}
	return "?";
}

/* Compares one run's model with the row's expectations; every mismatch is recorded. */
static void check_expect(const struct ecase *c, const struct engine_config *cfg,
                         const struct model *m, const char *mode, struct errbuf *eb)
{
	char a[48], b[48], x[48], y[48];
	if (m->err.n > 0)
		errbuf_add(eb, "[%s] action stream broke %d rule(s):\n%s", mode, m->err.n, m->err.s);
	if (m->rejects != 0)
		errbuf_add(eb, "[%s] %zu event(s) rejected, last reason %s", mode, m->rejects,
		           engine_reject_name(m->last_reject));
	if ((size_t)m->n != c->n_sess)
		errbuf_add(eb, "[%s] %d sessions, want %zu", mode, m->n, c->n_sess);
	for (size_t i = 0; i < c->n_sess && (int)i < m->n; i++) {
		const struct exp_sess *e = &c->sess[i];
		const struct model_session *s = &m->s[i];
		if (s->start_ms != T0 + e->start || s->end_ms != T0 + e->end ||
		    s->end_reason != e->reason || !s->closed || s->close_at_ms != T0 + e->close_at) {
			fmt_off(a, sizeof(a), s->start_ms);
			fmt_off(b, sizeof(b), s->closed ? s->end_ms : NC);
			fmt_off(x, sizeof(x), T0 + e->start);
			fmt_off(y, sizeof(y), T0 + e->end);
			char ca[48], cb[48];
			fmt_off(ca, sizeof(ca), s->closed ? s->close_at_ms : NC);
			fmt_off(cb, sizeof(cb), T0 + e->close_at);
			errbuf_add(eb, "[%s] session %zu: got [%s, %s) %s closed at %s%s; want [%s, %s) "
			           "%s closed at %s", mode, i, a, b,
			           s->closed ? engine_end_reason_name(s->end_reason) : "(open)", ca,
			           "", x, y,
			           engine_end_reason_name(e->reason), cb);
		}
		if (s->closed && s->close_rule != harness_rule_for_end(e->reason))
			errbuf_add(eb, "[%s] session %zu closed by rule %s, want %s", mode, i,
			           engine_rule_name(s->close_rule),
			           engine_rule_name(harness_rule_for_end(e->reason)));
		enum engine_rule want_open = (c->in_progress_opens >> i & 1u) ?
		                             RULE_START_JOB_IN_PROGRESS :
		                             cfg->trigger == TRIGGER_JOB ? RULE_START_JOB :
		                             cfg->trigger == TRIGGER_ONLINE ? RULE_START_ONLINE :
		                             RULE_START_MOTION;
		if (s->open_rule != want_open)
			errbuf_add(eb, "[%s] session %zu opened by rule %s, want %s", mode, i,
			           engine_rule_name(s->open_rule), engine_rule_name(want_open));
	}
	size_t seen = 0;
	for (int i = 0; i < m->n; i++)
		seen += (size_t)model_act_count(m, i);
	if (seen != c->n_act)
		errbuf_add(eb, "[%s] %zu activations seen, want %zu", mode, seen, c->n_act);
	for (size_t j = 0; j < c->n_act; j++) {
		const struct exp_act *e = &c->act[j];
		if (e->sess >= m->n) {
			errbuf_add(eb, "[%s] no session %d for activation %d", mode, e->sess, e->index);
			continue;
		}
		const struct model_act *ma = &m->s[e->sess].acts[e->index];
		if (!ma->seen) {
			errbuf_add(eb, "[%s] session %d activation %d never emitted", mode, e->sess,
			           e->index);
			continue;
		}
		const struct engine_activation *r = &ma->a;
		bool ok = r->start_ms == T0 + e->start && (e->end == NC || r->end_ms == T0 + e->end) &&
		          r->status == e->status && r->revision == e->revision &&
		          r->end_reason == e->reason;
		if (!ok) {
			fmt_off(a, sizeof(a), r->start_ms);
			fmt_off(b, sizeof(b), r->end_ms == 0 ? NC : r->end_ms);
			fmt_off(x, sizeof(x), T0 + e->start);
			fmt_off(y, sizeof(y), e->end == NC ? NC : T0 + e->end);
			errbuf_add(eb, "[%s] session %d activation %d: got [%s, %s) %s rev %d %s; want "
			           "[%s, %s) %s rev %d %s", mode, e->sess, e->index, a, b,
			           status_name(r->status), r->revision,
			           engine_end_reason_name(r->end_reason), x,
			           e->end == NC ? "any" : y, status_name(e->status), e->revision,
			           engine_end_reason_name(e->reason));
		}
	}
}

static void run_one(const struct ecase *c, const struct engine_config *cfg, size_t n,
                    struct engine_state *st, struct model *m, bool tick)
{
	engine_state_init(st);
	model_init(m);
	m->check_deadlines = true;
	for (size_t i = 0; i < n; i++)
		harness_feed(cfg, st, &g_gen[i].ev, &g_out, m, tick);
	harness_run_until(cfg, st, &g_out, m, T0 + c->until, tick);
}

static void test_table_case(void **state)
{
	const struct ecase *c = *state;
	static struct errbuf eb;
	errbuf_init(&eb);
	case_config(c, &g_cfg);
	size_t n = expand(c);
	run_one(c, &g_cfg, n, &g_st[0], &g_m[0], true);
	run_one(c, &g_cfg, n, &g_st[1], &g_m[1], false);
	check_expect(c, &g_cfg, &g_m[0], "ticking", &eb);
	check_expect(c, &g_cfg, &g_m[1], "no ticks", &eb);
	char why[256];
	if (!harness_model_equal(&g_m[0], &g_m[1], why, sizeof(why)))
		errbuf_add(&eb, "ticking and no-tick runs differ: %s", why);
	if (!harness_session_equal(&g_st[0].s, &g_st[1].s, why, sizeof(why)))
		errbuf_add(&eb, "ticking and no-tick runs end in different sessions: %s", why);
	if (eb.n > 0) {
		print_error("case %s: %d problem(s)\n%s", c->name, eb.n, eb.s);
		fail_msg("case %s failed", c->name);
	}
}

/* ---- tests outside the table ---------------------------------------------------------- */

/* Runs a list of absolute events in tick mode on a fresh state. */
static void run_events(const struct engine_config *cfg, struct engine_state *st,
                       struct model *m, const struct engine_event *ev, size_t n)
{
	engine_state_init(st);
	model_init(m);
	m->check_deadlines = true;
	for (size_t i = 0; i < n; i++)
		harness_feed(cfg, st, &ev[i], &g_out, m, true);
}

static void assert_model_clean(const struct model *m)
{
	if (m->err.n > 0) {
		print_error("%s", m->err.s);
		fail_msg("%d action rule violation(s)", m->err.n);
	}
}

/* The preamble and a job at T0: a session opened at T0. */
static size_t base_session(struct engine_event *ev)
{
	ev[0] = ev_assign(T0 - M(2), "P-1", "D-1", "V-1");
	ev[1] = ev_app(T0 - M(1), APP_ONLINE);
	ev[2] = ev_app(T0, APP_JOB_ACCEPTED);
	return 3;
}

static void test_config_defaults(void **state)
{
	(void)state;
	struct engine_config c;
	const char *why = NULL;
	engine_config_defaults(&c);
	assert_string_equal(c.device_id, "coverd-dev");
	assert_int_equal(c.trigger, TRIGGER_JOB);
	assert_int_equal(c.gap_end_ms, M(10));
	assert_int_equal(c.idle_end_ms, M(30));
	assert_int_equal(c.app_silence_ms, M(5));
	assert_int_equal(c.max_session_ms, H(16));
	assert_int_equal(c.min_cover_ms, M(60));
	assert_int_equal(c.unit_ms, H(1));
	assert_true(c.move_speed_mps == 2.0);
	assert_true(c.max_eph_m == 50.0);
	assert_true(c.max_jump_mps == 90.0);
	assert_int_equal(c.max_fix_gap_ms, S(30));
	assert_int_equal(engine_config_check(&c, &why), 0);

	struct engine_config bad = c;
	bad.min_cover_ms = bad.unit_ms + 1; /* "must be <= unit_ms" */
	why = NULL;
	assert_int_equal(engine_config_check(&bad, &why), -EINVAL);
	assert_non_null(why);
	bad = c;
	bad.unit_ms = 0;
	why = NULL;
	assert_int_equal(engine_config_check(&bad, &why), -EINVAL);
	assert_non_null(why);
	bad = c;
	bad.max_session_ms = bad.unit_ms * (ENGINE_MAX_ACTS + 1); /* "max_session / unit <= this" */
	why = NULL;
	assert_int_equal(engine_config_check(&bad, &why), -EINVAL);
	assert_non_null(why);
	bad = c;
	bad.gap_end_ms = -1;
	why = NULL;
	assert_int_equal(engine_config_check(&bad, &why), -EINVAL);
	assert_non_null(why);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const app[] = { "online", "offline", "job_accepted",
		"job_picked_up", "job_delivered", "job_cancelled", "heartbeat", "private_on",
		"private_off" };
	for (int i = 0; i < (int)(sizeof(app) / sizeof(app[0])); i++) {
		enum engine_app_event e;
		assert_string_equal(engine_app_event_name((enum engine_app_event)i), app[i]);
		assert_int_equal(engine_app_event_parse(app[i], &e), 0);
		assert_int_equal(e, i);
	}
	enum engine_app_event e;
	assert_int_equal(engine_app_event_parse("job_teleported", &e), -EINVAL);
	assert_non_null(engine_app_event_name((enum engine_app_event)99));

	static const char *const trig[] = { "job", "online", "motion" };
	for (int i = 0; i < 3; i++) {
		enum engine_trigger t;
		assert_string_equal(engine_trigger_name((enum engine_trigger)i), trig[i]);
		assert_int_equal(engine_trigger_parse(trig[i], &t), 0);
		assert_int_equal(t, i);
	}
	enum engine_trigger t;
	assert_int_equal(engine_trigger_parse("telepathy", &t), -EINVAL);

	for (int i = TQ_GNSS; i <= TQ_UNSYNCED; i++) {
		enum engine_time_quality q;
		const char *nm = engine_tq_name((enum engine_time_quality)i);
		assert_non_null(nm);
		assert_int_equal(engine_tq_parse(nm, &q), 0);
		assert_int_equal(q, i);
	}
	enum engine_time_quality q;
	assert_int_equal(engine_tq_parse("sundial", &q), -EINVAL);

	/* Names go into records and the CLI: never NULL, never empty, distinct. */
	for (int i = END_NONE; i <= END_VOID + 1; i++) {
		const char *nm = engine_end_reason_name((enum engine_end_reason)i);
		assert_non_null(nm);
		assert_true(nm[0] != '\0');
		for (int j = END_NONE; j < i && i <= END_VOID; j++)
			assert_string_not_equal(nm, engine_end_reason_name((enum engine_end_reason)j));
	}
	for (int i = RULE_NONE; i <= RULE_BACKDATED_END + 1; i++) {
		const char *nm = engine_rule_name((enum engine_rule)i);
		assert_non_null(nm);
		for (int j = RULE_NONE; j < i && i <= RULE_BACKDATED_END; j++)
			assert_string_not_equal(nm, engine_rule_name((enum engine_rule)j));
	}
	for (int i = REJECT_NONE; i <= REJECT_BAD_EVENT + 1; i++)
		assert_non_null(engine_reject_name((enum engine_reject)i));
}

static void test_out_of_order_rejected(void **state)
{
	(void)state;
	struct engine_event ev[3];
	size_t n = base_session(ev);
	engine_config_defaults(&g_cfg);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	assert_true(g_st[0].s.open);

	/* One millisecond older than the last accepted event. */
	g_st[1] = g_st[0];
	struct engine_event old = ev_app(T0 - 1, APP_HEARTBEAT);
	int rc = engine_step(&g_cfg, &g_st[0], &old, &g_out);
	assert_int_equal(rc, REJECT_OUT_OF_ORDER);
	assert_int_equal(g_out.n, 1);
	assert_int_equal(g_out.a[0].type, ACTION_REJECT);
	assert_int_equal(g_out.a[0].reject, REJECT_OUT_OF_ORDER);
	assert_int_equal(g_st[0].rejected_total, g_st[1].rejected_total + 1);
	/* Apart from the counter nothing changed. */
	g_st[1].rejected_total++;
	char why[256];
	if (!harness_state_equal(&g_st[0], &g_st[1], why, sizeof(why)))
		fail_msg("state changed by a rejected event: %s", why);

	/* An older event that would end the session must not end it. */
	struct engine_event off = ev_app(T0 - M(1), APP_OFFLINE);
	rc = engine_step(&g_cfg, &g_st[0], &off, &g_out);
	assert_int_equal(rc, REJECT_OUT_OF_ORDER);
	assert_int_equal(g_st[0].rejected_total, g_st[1].rejected_total + 1);
	assert_true(g_st[0].s.open);

	/* A tick advances time too: after it, an event before it is out of order. */
	struct engine_event tk = ev_tick(T0 + M(3));
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &tk, &g_out), 0);
	struct engine_event hb = ev_app(T0 + M(2), APP_HEARTBEAT);
	g_st[1] = g_st[0];
	rc = engine_step(&g_cfg, &g_st[0], &hb, &g_out);
	assert_int_equal(rc, REJECT_OUT_OF_ORDER);
	g_st[1].rejected_total++;
	if (!harness_state_equal(&g_st[0], &g_st[1], why, sizeof(why)))
		fail_msg("state changed by a rejected event after a tick: %s", why);

	/* The same time as the last one is not older: applied. */
	struct engine_event same = ev_app(T0 + M(3), APP_HEARTBEAT);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &same, &g_out), 0);
	assert_int_equal(g_st[0].last_app_ms, T0 + M(3));
}

static void test_same_time_both_applied(void **state)
{
	(void)state;
	struct engine_event ev[3];
	base_session(ev);
	engine_config_defaults(&g_cfg);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, 3);
	/* Heartbeats keep the app from falling silent before the pair. */
	for (int k = 1; k < 20; k++) {
		struct engine_event hb = ev_app(T0 + M(k), APP_HEARTBEAT);
		harness_feed(&g_cfg, &g_st[0], &hb, &g_out, &g_m[0], true);
	}
	assert_model_clean(&g_m[0]);
	struct engine_event d = ev_app(T0 + M(20), APP_JOB_DELIVERED);
	struct engine_event a = ev_app(T0 + M(20), APP_JOB_ACCEPTED);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &d, &g_out), 0);
	assert_int_equal(g_st[0].jobs_active, 0);
	assert_int_equal(g_st[0].last_job_end_ms, T0 + M(20));
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &a, &g_out), 0);
	assert_int_equal(g_st[0].jobs_active, 1);
	assert_int_equal(g_st[0].rejected_total, 0);
	assert_true(g_st[0].s.open);
	assert_int_equal(g_st[0].sessions_total, 1);
}

static void test_bad_fix_rejected(void **state)
{
	(void)state;
	struct engine_event ev[3];
	base_session(ev);
	engine_config_defaults(&g_cfg);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, 3);
	const struct engine_event bad[] = {
		ev_fix(T0 + M(1), NAN, LON0, 5.0, 5.0),
		ev_fix(T0 + M(1), LAT0, NAN, 5.0, 5.0),
		ev_fix(T0 + M(1), 91.0, LON0, 5.0, 5.0),
		ev_fix(T0 + M(1), -90.5, LON0, 5.0, 5.0),
		ev_fix(T0 + M(1), LAT0, 180.5, 5.0, 5.0),
		ev_fix(T0 + M(1), LAT0, -181.0, 5.0, 5.0),
		ev_fix(T0 + M(1), INFINITY, LON0, 5.0, 5.0),
	};
	char why[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		g_st[1] = g_st[0];
		int rc = engine_step(&g_cfg, &g_st[0], &bad[i], &g_out);
		if (rc != REJECT_BAD_FIX)
			fail_msg("bad fix %zu (lat %f lon %f): returned %d, want REJECT_BAD_FIX", i,
			         bad[i].u.fix.lat, bad[i].u.fix.lon, rc);
		assert_int_equal(g_out.n, 1);
		assert_int_equal(g_out.a[0].type, ACTION_REJECT);
		assert_int_equal(g_out.a[0].reject, REJECT_BAD_FIX);
		g_st[1].rejected_total++;
		if (!harness_state_equal(&g_st[0], &g_st[1], why, sizeof(why)))
			fail_msg("bad fix %zu changed the state: %s", i, why);
	}
	assert_int_equal(g_st[0].rejected_total, sizeof(bad) / sizeof(bad[0]));
	/* The same time with a good fix is still accepted: the bad ones advanced nothing. */
	struct engine_event good = ev_fix(T0 + M(1), LAT0, LON0, 5.0, 5.0);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &good, &g_out), 0);
}

static void test_rejected_event_fires_no_deadline(void **state)
{
	(void)state;
	/* "The state then changes only in rejected_total": a bad fix two hours on does not
	 * fire the hour boundary or anything else on the way. */
	struct engine_event ev[3];
	base_session(ev);
	engine_config_defaults(&g_cfg);
	g_cfg.app_silence_ms = H(3);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, 3);
	g_st[1] = g_st[0];
	struct engine_event bad = ev_fix(T0 + H(2), NAN, LON0, 5.0, 5.0);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &bad, &g_out), REJECT_BAD_FIX);
	assert_int_equal(g_out.n, 1);
	g_st[1].rejected_total++;
	char why[256];
	if (!harness_state_equal(&g_st[0], &g_st[1], why, sizeof(why)))
		fail_msg("a rejected event changed the state: %s", why);
}

static void test_jobs_per_activation(void **state)
{
	(void)state;
	/* "jobs: jobs accepted during this activation". */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[100];
	size_t n = base_session(ev);
	for (int k = 1; k <= 80; k++) {
		if (k == 10 || k == 62 || k == 70)
			ev[n++] = ev_app(T0 + M(k), APP_JOB_ACCEPTED);
		ev[n++] = ev_app(T0 + M(k) + S(30), APP_HEARTBEAT);
	}
	ev[n++] = ev_app(T0 + M(81), APP_OFFLINE);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	assert_model_clean(&g_m[0]);
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(g_m[0].s[0].acts[0].a.jobs, 2);
	assert_int_equal(g_m[0].s[0].acts[1].a.jobs, 2);
	assert_string_equal(g_st[0].s.policy_id, "P-1");
	assert_string_equal(g_st[0].s.driver_id, "D-1");
	assert_string_equal(g_st[0].s.vehicle_id, "V-1");
}

static void test_widest_step_fits(void **state)
{
	(void)state;
	/* The most actions one step can need: the smallest unit the config allows with the
	 * most activations a session may have, a grace that opens all of them, then a job
	 * hours later, so one step closes, voids and reopens everything. */
	engine_config_defaults(&g_cfg);
	g_cfg.unit_ms = M(1);
	g_cfg.min_cover_ms = M(1);
	g_cfg.max_session_ms = M(ENGINE_MAX_ACTS);
	g_cfg.gap_end_ms = M(ENGINE_MAX_ACTS - 1);
	g_cfg.app_silence_ms = H(6);
	const char *why = NULL;
	if (engine_config_check(&g_cfg, &why) != 0)
		fail_msg("config rejected: %s", why ? why : "?");
	struct engine_event ev[6];
	size_t n = base_session(ev);
	ev[n++] = ev_app(T0 + 1, APP_JOB_DELIVERED);
	ev[n++] = ev_app(T0 + H(5), APP_JOB_ACCEPTED);
	engine_state_init(&g_st[0]);
	model_init(&g_m[0]);
	for (size_t i = 0; i < n; i++)
		harness_feed(&g_cfg, &g_st[0], &ev[i], &g_out, &g_m[0], false);
	size_t last_n = g_out.n;
	assert_model_clean(&g_m[0]);
	assert_int_equal(g_m[0].n, 2);
	const struct model_session *s = &g_m[0].s[0];
	assert_int_equal(s->end_ms, T0 + 1);
	assert_int_equal(s->end_reason, END_GAP);
	assert_int_equal(s->close_at_ms, T0 + M(ENGINE_MAX_ACTS - 1) + 1);
	assert_int_equal(model_act_count(&g_m[0], 0), ENGINE_MAX_ACTS);
	assert_int_equal(s->acts[0].a.status, ACT_CLOSED);
	assert_int_equal(s->acts[0].a.end_ms, T0 + 1);
	assert_int_equal(s->acts[0].a.revision, 3);
	for (int k = 1; k < ENGINE_MAX_ACTS; k++) {
		assert_int_equal(s->acts[k].a.status, ACT_VOID);
		assert_int_equal(s->acts[k].a.revision, k < ENGINE_MAX_ACTS - 1 ? 3 : 2);
	}
	assert_true(g_m[0].s[1].acts[0].seen);
	assert_int_equal(g_m[0].s[1].start_ms, T0 + H(5));
	/* Every action of the first session and the opening of the second in one step. */
	assert_true(last_n >= 2 * (ENGINE_MAX_ACTS - 1) + (ENGINE_MAX_ACTS - 1) + 4);
}

static void test_bad_event_rejected(void **state)
{
	(void)state;
	struct engine_event ev[3];
	base_session(ev);
	engine_config_defaults(&g_cfg);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, 3);
	struct engine_event bad_app = ev_app(T0 + M(1), (enum engine_app_event)99);
	struct engine_event bad_type = ev_tick(T0 + M(1));
	bad_type.type = (enum engine_event_type)77;
	const struct engine_event *bad[] = { &bad_app, &bad_type };
	char why[256];
	for (size_t i = 0; i < 2; i++) {
		g_st[1] = g_st[0];
		int rc = engine_step(&g_cfg, &g_st[0], bad[i], &g_out);
		assert_int_equal(rc, REJECT_BAD_EVENT);
		assert_int_equal(g_out.n, 1);
		assert_int_equal(g_out.a[0].reject, REJECT_BAD_EVENT);
		g_st[1].rejected_total++;
		if (!harness_state_equal(&g_st[0], &g_st[1], why, sizeof(why)))
			fail_msg("bad event %zu changed the state: %s", i, why);
	}
}

static void test_ids(void **state)
{
	(void)state;
	char sid[ENGINE_SESSION_ID_MAX], aid[ENGINE_ACT_ID_MAX];
	engine_session_id(sid, sizeof(sid), "coverd-dev", T0, 1);
	assert_string_equal(sid, "coverd-dev-20261128T090000Z-1");
	engine_activation_id(aid, sizeof(aid), sid, 0);
	assert_string_equal(aid, "coverd-dev-20261128T090000Z-1-0");
	engine_activation_id(aid, sizeof(aid), sid, 15);
	assert_string_equal(aid, "coverd-dev-20261128T090000Z-1-15");
	/* Milliseconds do not round the second up; midnight rolls the date. */
	engine_session_id(sid, sizeof(sid), "dev-A", T0 + 999, 42);
	assert_string_equal(sid, "dev-A-20261128T090000Z-42");
	engine_session_id(sid, sizeof(sid), "dev-A", T0 + H(15) - 1, 7);
	assert_string_equal(sid, "dev-A-20261128T235959Z-7");
	engine_session_id(sid, sizeof(sid), "dev-A", T0 + H(15), 8);
	assert_string_equal(sid, "dev-A-20261129T000000Z-8");
	engine_session_id(sid, sizeof(sid), "dev-A", 0, 18446744073709551615ULL);
	assert_string_equal(sid, "dev-A-19700101T000000Z-18446744073709551615");

	/* The ids the engine gives its sessions: the device, the start, the ordinal. */
	struct engine_event ev[8];
	base_session(ev);
	ev[3] = ev_app(T0 + M(5) + 250, APP_OFFLINE);
	ev[4] = ev_app(T0 + M(6), APP_ONLINE);
	ev[5] = ev_app(T0 + M(7) + 500, APP_JOB_ACCEPTED);
	ev[6] = ev_app(T0 + M(8), APP_OFFLINE);
	engine_config_defaults(&g_cfg);
	snprintf(g_cfg.device_id, sizeof(g_cfg.device_id), "%s", "van-07");
	for (int r = 0; r < 2; r++) {
		run_events(&g_cfg, &g_st[r], &g_m[r], ev, 7);
		assert_model_clean(&g_m[r]);
		assert_int_equal(g_m[r].n, 2);
		assert_string_equal(g_m[r].s[0].id, "van-07-20261128T090000Z-1");
		assert_int_equal(g_m[r].s[0].ordinal, 1);
		assert_string_equal(g_m[r].s[1].id, "van-07-20261128T090700Z-2");
		assert_int_equal(g_m[r].s[1].ordinal, 2);
		assert_int_equal(g_st[r].sessions_total, 2);
	}
	/* Replayed into a fresh state, the same input gives the same ids and records. */
	char why[256];
	if (!harness_model_equal(&g_m[0], &g_m[1], why, sizeof(why)))
		fail_msg("replay differs: %s", why);
}

/* Runs a session with the given extra events (absolute times) and an offline at
 * T0 + 2 min, and returns activation 0 as last emitted. */
static const struct engine_activation *one_act_session(const struct engine_event *extra,
                                                       size_t n)
{
	static struct engine_event ev[32];
	size_t k = base_session(ev);
	for (size_t i = 0; i < n; i++)
		ev[k++] = extra[i];
	ev[k++] = ev_app(T0 + M(2), APP_OFFLINE);
	engine_config_defaults(&g_cfg);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, k);
	assert_model_clean(&g_m[0]);
	assert_int_equal(g_m[0].n, 1);
	assert_true(g_m[0].s[0].acts[0].seen);
	assert_int_equal(g_m[0].s[0].acts[0].a.status, ACT_CLOSED);
	return &g_m[0].s[0].acts[0].a;
}

static void test_distance(void **state)
{
	(void)state;
	double one = engine_distance_m(LAT0, LON0, LAT0 + 0.001, LON0);
	assert_true(one > 111.0 && one < 111.4);
	double lp = engine_distance_m(51.5074, -0.1278, 48.8566, 2.3522); /* London-Paris */
	assert_true(lp > 342500.0 && lp < 344500.0);
	assert_true(engine_distance_m(LAT0, LON0, LAT0, LON0) == 0.0);

	/* Two moving fixes 10 s and ~111 m apart; a third one 45 s later is beyond
	 * max_fix_gap and must not be bridged. */
	const struct engine_event fx[] = {
		ev_fix(T0 + M(1), LAT0, LON0, 11.1, 5.0),
		ev_fix(T0 + M(1) + S(10), LAT0 + 0.001, LON0, 11.1, 5.0),
		ev_fix(T0 + M(1) + S(55), LAT0 + 0.002, LON0, 11.1, 5.0),
	};
	const struct engine_activation *a = one_act_session(fx, 3);
	if (!(a->distance_m > 110.7 && a->distance_m < 111.7))
		fail_msg("distance %.3f m, want ~111.2 m", a->distance_m);
	assert_int_equal(a->moving_ms, S(10));
	assert_int_equal(a->anomalies, 0);
	assert_true(a->end_pos.valid);
	assert_true(fabs(a->end_pos.lat - (LAT0 + 0.002)) < 1e-9);
	assert_int_equal(a->jobs, 1);
}

static void test_position_jump(void **state)
{
	(void)state;
	/* 1.1 km in one second is far above max_jump_mps. */
	const struct engine_event fx[] = {
		ev_fix(T0 + M(1), LAT0, LON0, 5.0, 5.0),
		ev_fix(T0 + M(1) + S(1), LAT0 + 0.01, LON0, 5.0, 5.0),
	};
	const struct engine_activation *a = one_act_session(fx, 2);
	assert_true(a->anomalies & ANOM_POSITION_JUMP);
	assert_false(a->anomalies & ANOM_MOCK_LOCATION);
}

static void test_mock_location_and_time_quality(void **state)
{
	(void)state;
	struct engine_event fx[3];
	fx[0] = ev_fix(T0 + M(1), LAT0, LON0, 3.0, 5.0);
	fx[0].anomalies = ANOM_MOCK_LOCATION;
	fx[1] = ev_app(T0 + M(1) + S(10), APP_HEARTBEAT);
	fx[1].tq = TQ_RTC;
	fx[2] = ev_app(T0 + M(1) + S(20), APP_HEARTBEAT);
	fx[2].tq = TQ_NTP;
	const struct engine_activation *a = one_act_session(fx, 3);
	assert_true(a->anomalies & ANOM_MOCK_LOCATION);
	assert_false(a->anomalies & ANOM_POSITION_JUMP);
	assert_int_equal(a->tq, TQ_RTC); /* the worst seen, not the latest */
}

static void test_track_only_on_cover(void **state)
{
	(void)state;
	engine_config_defaults(&g_cfg);
	engine_state_init(&g_st[0]);
	struct engine_event e = ev_fix(T0 - M(5), LAT0, LON0, 5.0, 5.0);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &e, &g_out), 0);
	for (size_t i = 0; i < g_out.n; i++)
		assert_int_not_equal(g_out.a[i].type, ACTION_TRACK);
	struct engine_event ev[3];
	base_session(ev);
	for (int i = 0; i < 3; i++)
		assert_int_equal(engine_step(&g_cfg, &g_st[0], &ev[i], &g_out), 0);
	e = ev_fix(T0 + M(1), LAT0 + 0.0001, LON0, 5.0, 5.0);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &e, &g_out), 0);
	size_t tracks = 0;
	for (size_t i = 0; i < g_out.n; i++)
		if (g_out.a[i].type == ACTION_TRACK) {
			tracks++;
			assert_true(g_out.a[i].fix.lat == LAT0 + 0.0001);
		}
	assert_int_equal(tracks, 1);
}

static void test_next_deadline_none_pending(void **state)
{
	(void)state;
	for (int trig = TRIGGER_JOB; trig <= TRIGGER_MOTION; trig++) {
		engine_config_defaults(&g_cfg);
		g_cfg.trigger = (enum engine_trigger)trig;
		engine_state_init(&g_st[0]);
		assert_int_equal(engine_next_deadline(&g_cfg, &g_st[0]), INT64_MAX);
	}
	engine_config_defaults(&g_cfg);
	engine_state_init(&g_st[0]);
	struct engine_event ev[3];
	base_session(ev);
	/* Online with a policy but no session: nothing can fire. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(engine_step(&g_cfg, &g_st[0], &ev[i], &g_out), 0);
	assert_int_equal(engine_next_deadline(&g_cfg, &g_st[0]), INT64_MAX);
	/* On cover something is always pending: at the latest the hour boundary. */
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &ev[2], &g_out), 0);
	int64_t d = engine_next_deadline(&g_cfg, &g_st[0]);
	assert_true(d > T0 && d <= T0 + H(1));
	/* Ended by offline: nothing pending again. */
	struct engine_event off = ev_app(T0 + M(3), APP_OFFLINE);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &off, &g_out), 0);
	assert_false(g_st[0].s.open);
	assert_int_equal(engine_next_deadline(&g_cfg, &g_st[0]), INT64_MAX);
	/* Ended by gap_end while the app keeps sending heartbeats: still nothing. */
	engine_state_init(&g_st[0]);
	model_init(&g_m[0]);
	for (int i = 0; i < 3; i++)
		harness_feed(&g_cfg, &g_st[0], &ev[i], &g_out, &g_m[0], true);
	struct engine_event dl = ev_app(T0 + M(1), APP_JOB_DELIVERED);
	harness_feed(&g_cfg, &g_st[0], &dl, &g_out, &g_m[0], true);
	for (int k = 2; k <= 15; k++) {
		struct engine_event hb = ev_app(T0 + M(k), APP_HEARTBEAT);
		harness_feed(&g_cfg, &g_st[0], &hb, &g_out, &g_m[0], true);
	}
	assert_model_clean(&g_m[0]);
	assert_false(g_st[0].s.open);
	assert_int_equal(g_st[0].s.end_reason, END_GAP);
	assert_int_equal(engine_next_deadline(&g_cfg, &g_st[0]), INT64_MAX);
}

/* The power-cut step in one piece: every deadline of the first session fires, in time
 * order, before the event that opens the next one. */
static void test_power_cut_single_step(void **state)
{
	(void)state;
	engine_config_defaults(&g_cfg);
	struct engine_event ev[40];
	size_t n = base_session(ev);
	for (int k = 1; k <= 30; k++)
		ev[n++] = ev_app(T0 + M(k), APP_HEARTBEAT);
	ev[n++] = ev_fix(T0 + M(30), LAT0, LON0, 5.0, 5.0);
	ev[n++] = ev_fix(T0 + M(30) + S(1), LAT0, LON0, 0.0, 5.0);
	engine_state_init(&g_st[0]);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(engine_step(&g_cfg, &g_st[0], &ev[i], &g_out), 0);
	/* Nothing heard for 5 h: silent from 35 min, stationary from 30, job in progress.
	 * Rev 2 "for idle_end while a job is in progress": the silence rule falls due at
	 * 30 + 30 = 60 min (was: 30 + gap_end = 40), together with the hour boundary, which
	 * it beats; the job's timeout (3 h) comes later. */
	struct engine_event late = ev_app(T0 + H(5) + M(30), APP_JOB_ACCEPTED);
	assert_int_equal(engine_step(&g_cfg, &g_st[0], &late, &g_out), 0);
	int close_i = -1, open_i = -1;
	int64_t prev_at = INT64_MIN;
	for (size_t i = 0; i < g_out.n; i++) {
		const struct engine_action *a = &g_out.a[i];
		if (a->at_ms < prev_at)
			fail_msg("action %zu fired at %" PRId64 " after one at %" PRId64, i, a->at_ms,
			         prev_at);
		prev_at = a->at_ms;
		if (a->type == ACTION_SESSION_CLOSE)
			close_i = (int)i;
		if (a->type == ACTION_SESSION_OPEN)
			open_i = (int)i;
		if (a->type == ACTION_ACT_OPEN && a->act.index > 0)
			fail_msg("activation %d opened: the session ended before its hour",
			         a->act.index);
	}
	assert_true(close_i >= 0 && open_i > close_i);
	assert_int_equal(g_out.a[close_i].at_ms, T0 + M(60));
	assert_int_equal(g_out.a[close_i].sess.end_ms, T0 + M(30));
	assert_int_equal(g_out.a[close_i].sess.end_reason, END_APP_SILENCE);
	assert_int_equal(g_out.a[open_i].at_ms, T0 + H(5) + M(30));
	assert_true(g_st[0].s.open);
	assert_int_equal(g_st[0].s.start_ms, T0 + H(5) + M(30));
	assert_int_equal(g_st[0].s.ordinal, 2);
}

static void test_voided_activation_kept(void **state)
{
	(void)state;
	/* The grace case again, looking at the state: the void record stays in the session. */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[100];
	size_t n = base_session(ev);
	for (int k = 0; k <= 70; k++) {
		if (k == 55)
			ev[n++] = ev_app(T0 + M(55), APP_JOB_DELIVERED);
		ev[n++] = ev_app(T0 + M(k) + S(30), APP_HEARTBEAT);
	}
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	assert_model_clean(&g_m[0]);
	const struct engine_session *s = &g_st[0].s;
	assert_false(s->open);
	assert_int_equal(s->end_ms, T0 + M(55));
	assert_int_equal(s->n_acts, 2);
	assert_int_equal(s->acts[0].status, ACT_CLOSED);
	assert_int_equal(s->acts[0].end_ms, T0 + M(55));
	assert_int_equal(s->acts[1].status, ACT_VOID);
	assert_int_equal(s->acts[1].index, 1);
	assert_true(s->acts[1].revision >= 2);
	/* And the void went out as an ACT_VOID action with a new revision. */
	assert_int_equal(g_m[0].s[0].acts[1].a.status, ACT_VOID);
	assert_int_equal(g_m[0].s[0].acts[1].changes, 2);
}

static void test_restore_mid_session(void **state)
{
	(void)state;
	/* A copy of the state taken mid-session and reloaded continues identically. */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[128];
	size_t n = base_session(ev);
	for (int k = 1; k <= 50; k++) {
		ev[n++] = ev_fix(T0 + M(k), LAT0 + 0.001 * k, LON0, 5.0, 5.0);
		ev[n++] = ev_app(T0 + M(k) + S(30), APP_HEARTBEAT);
	}
	ev[n++] = ev_app(T0 + M(52), APP_JOB_DELIVERED);
	ev[n++] = ev_app(T0 + M(55), APP_HEARTBEAT);
	ev[n++] = ev_app(T0 + M(58), APP_JOB_ACCEPTED);
	ev[n++] = ev_app(T0 + M(61), APP_HEARTBEAT);
	ev[n++] = ev_app(T0 + M(63), APP_HEARTBEAT);
	ev[n++] = ev_app(T0 + M(65), APP_OFFLINE);
	size_t cut = 61;
	engine_state_init(&g_st[0]);
	model_init(&g_m[0]);
	for (size_t i = 0; i < cut; i++)
		harness_feed(&g_cfg, &g_st[0], &ev[i], &g_out, &g_m[0], true);
	g_st[1] = g_st[0];
	g_m[1] = g_m[0];
	for (size_t i = cut; i < n; i++)
		harness_feed(&g_cfg, &g_st[0], &ev[i], &g_out, &g_m[0], true);
	for (size_t i = cut; i < n; i++)
		harness_feed(&g_cfg, &g_st[1], &ev[i], &g_out, &g_m[1], true);
	assert_model_clean(&g_m[0]);
	char why[256];
	if (!harness_model_equal(&g_m[0], &g_m[1], why, sizeof(why)))
		fail_msg("restored run differs: %s", why);
	if (!harness_state_equal(&g_st[0], &g_st[1], why, sizeof(why)))
		fail_msg("restored state differs: %s", why);
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(g_m[0].s[0].end_ms, T0 + M(65));
}

/* ---- revision 2, outside the table ------------------------------------------------ */

/* A job event naming job id (NULL: none). */
static struct engine_event ev_job(int64_t t, enum engine_app_event e, const char *id)
{
	struct engine_event ev = ev_app(t, e);
	if (id)
		snprintf(ev.job_id, sizeof(ev.job_id), "%s", id);
	return ev;
}

/* Feeds one event in tick mode to run 0 and checks the model stayed clean. */
static void feed0(const struct engine_event *ev)
{
	harness_feed(&g_cfg, &g_st[0], ev, &g_out, &g_m[0], true);
	assert_model_clean(&g_m[0]);
}

static void feed_heartbeats(int64_t from, int64_t to, int64_t every)
{
	for (int64_t t = from; t <= to; t += every) {
		struct engine_event hb = ev_app(t, APP_HEARTBEAT);
		feed0(&hb);
	}
}

/* The number of ACTION_NOTE actions in the last step with note n. */
static size_t notes_in_out(enum engine_note n)
{
	size_t k = 0;
	for (size_t i = 0; i < g_out.n; i++)
		if (g_out.a[i].type == ACTION_NOTE && g_out.a[i].note == n)
			k++;
	return k;
}

/* The action of type t in the last step, or NULL. */
static const struct engine_action *action_in_out(enum engine_action_type t)
{
	for (size_t i = 0; i < g_out.n; i++)
		if (g_out.a[i].type == t)
			return &g_out.a[i];
	return NULL;
}

/* Steps an event that must be rejected with `why`, changing nothing but rejected_total. */
static void expect_rejected(const struct engine_event *ev, enum engine_reject why)
{
	char buf[256];
	g_st[1] = g_st[0];
	int rc = engine_step(&g_cfg, &g_st[0], ev, &g_out);
	if (rc != (int)why)
		fail_msg("returned %d (%s), want %s", rc, engine_reject_name((enum engine_reject)rc),
		         engine_reject_name(why));
	assert_int_equal(g_out.n, 1);
	assert_int_equal(g_out.a[0].type, ACTION_REJECT);
	assert_int_equal(g_out.a[0].reject, why);
	g_st[1].rejected_total++;
	if (!harness_state_equal(&g_st[0], &g_st[1], buf, sizeof(buf)))
		fail_msg("a rejected event changed the state: %s", buf);
	assert_int_equal(g_st[0].n_jobs, g_st[1].n_jobs);
	assert_int_equal(g_st[0].anon_jobs, g_st[1].anon_jobs);
	assert_int_equal(g_st[0].jobs_duplicate_total, g_st[1].jobs_duplicate_total);
}

static void test_revoke_other_policy_rejected(void **state)
{
	(void)state;
	/* Item 3: a revoke naming another policy is refused (policy_mismatch), counted, and
	 * changes nothing: the session goes on, the policy is kept. */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[4];
	size_t n = base_session(ev);
	ev[n++] = ev_app(T0 + M(1), APP_HEARTBEAT);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	assert_model_clean(&g_m[0]);
	assert_true(g_st[0].s.open);
	struct engine_event rv = ev_revoke(T0 + M(2), "P-2");
	expect_rejected(&rv, REJECT_POLICY_MISMATCH);
	assert_true(g_st[0].s.open);
	assert_true(g_st[0].has_policy);
	assert_string_equal(g_st[0].policy.policy_id, "P-1");
	assert_int_equal(g_st[0].rejected_total, 1);
	/* The session is unchanged: the offline ends it at its own time, mid-job. */
	struct engine_event off = ev_app(T0 + M(3), APP_OFFLINE);
	feed0(&off);
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(g_m[0].s[0].end_ms, T0 + M(3));
	assert_int_equal(g_m[0].s[0].end_reason, END_OFFLINE);
	/* With no session open it is refused just the same. */
	rv = ev_revoke(T0 + M(4), "P-2");
	expect_rejected(&rv, REJECT_POLICY_MISMATCH);
	/* And the kept policy covers the next job. */
	struct engine_event on = ev_app(T0 + M(5), APP_ONLINE);
	struct engine_event acc = ev_app(T0 + M(6), APP_JOB_ACCEPTED);
	feed0(&on);
	feed0(&acc);
	assert_true(g_st[0].s.open);
	assert_int_equal(g_st[0].s.ordinal, 2);
	assert_string_equal(g_st[0].s.policy_id, "P-1");
}

static void test_assign_mid_session_applies_next(void **state)
{
	(void)state;
	/* Item 12: an assignment while a session is open does not change that session; the
	 * new policy applies from the next one. */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[3];
	size_t n = base_session(ev);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	feed_heartbeats(T0 + M(1), T0 + M(9), M(1));
	struct engine_event as = ev_assign(T0 + M(10), "P-2", "D-2", "V-2");
	feed0(&as);
	assert_true(g_st[0].s.open);
	assert_string_equal(g_st[0].s.policy_id, "P-1");
	assert_string_equal(g_st[0].s.driver_id, "D-1");
	assert_string_equal(g_st[0].policy.policy_id, "P-2");
	feed_heartbeats(T0 + M(11), T0 + M(19), M(1));
	struct engine_event off = ev_app(T0 + M(20), APP_OFFLINE);
	feed0(&off);
	const struct engine_action *cl = action_in_out(ACTION_SESSION_CLOSE);
	assert_non_null(cl);
	assert_string_equal(cl->sess.policy_id, "P-1");
	assert_string_equal(cl->sess.vehicle_id, "V-1");
	struct engine_event on = ev_app(T0 + M(21), APP_ONLINE);
	struct engine_event acc = ev_app(T0 + M(22), APP_JOB_ACCEPTED);
	feed0(&on);
	feed0(&acc);
	const struct engine_action *op = action_in_out(ACTION_SESSION_OPEN);
	assert_non_null(op);
	assert_string_equal(op->sess.policy_id, "P-2");
	assert_string_equal(op->sess.driver_id, "D-2");
	assert_string_equal(g_st[0].s.policy_id, "P-2");

	/* [decided] A revoke of the held policy that is not the session's drops it and
	 * leaves the session running. */
	struct engine_event as3 = ev_assign(T0 + M(23), "P-3", "D-3", "V-3");
	struct engine_event rv3 = ev_revoke(T0 + M(24), "P-3");
	feed0(&as3);
	feed0(&rv3);
	assert_true(g_st[0].s.open);
	assert_false(g_st[0].has_policy);
	assert_string_equal(g_st[0].s.policy_id, "P-2");
	/* A revoke of the policy the session runs under ends it even though another is held
	 * by then; the job accepted at 22 is still in progress, so cover reopens at once
	 * under the held policy. */
	struct engine_event as4 = ev_assign(T0 + M(25), "P-4", "D-4", "V-4");
	struct engine_event rv2 = ev_revoke(T0 + M(26), "P-2");
	feed0(&as4);
	feed0(&rv2);
	assert_int_equal(g_m[0].n, 3);
	assert_int_equal(g_m[0].s[1].end_ms, T0 + M(26));
	assert_int_equal(g_m[0].s[1].end_reason, END_POLICY_REVOKED);
	assert_true(g_st[0].s.open);
	assert_int_equal(g_st[0].s.start_ms, T0 + M(26));
	assert_string_equal(g_st[0].s.policy_id, "P-4");
	assert_int_equal(g_m[0].s[2].open_rule, RULE_START_JOB_IN_PROGRESS);
}

static void test_job_at_hour_boundary_counts_in_new_hour(void **state)
{
	(void)state;
	/* Item 8: a job accepted exactly at the hour boundary, its anomaly and its time
	 * quality belong to the hour it begins, not to the one that ends there. */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[3];
	size_t n = base_session(ev);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	feed_heartbeats(T0 + S(30), T0 + M(59) + S(30), M(1));
	struct engine_event acc = ev_app(T0 + H(1), APP_JOB_ACCEPTED);
	acc.anomalies = ANOM_MOCK_LOCATION;
	acc.tq = TQ_NTP;
	feed0(&acc);
	feed_heartbeats(T0 + H(1) + S(30), T0 + H(1) + M(4) + S(30), M(1));
	struct engine_event off = ev_app(T0 + H(1) + M(5), APP_OFFLINE);
	feed0(&off);
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(model_act_count(&g_m[0], 0), 2);
	const struct engine_activation *a0 = &g_m[0].s[0].acts[0].a, *a1 = &g_m[0].s[0].acts[1].a;
	assert_int_equal(a0->jobs, 1);
	assert_int_equal(a1->jobs, 1);
	assert_int_equal(a0->anomalies, 0);
	assert_int_equal(a1->anomalies, ANOM_MOCK_LOCATION);
	assert_int_equal(a0->tq, TQ_GNSS);
	assert_int_equal(a1->tq, TQ_NTP);
}

static void test_anomaly_after_backdated_end(void **state)
{
	(void)state;
	/* Item 8: what happens after a backdated end belongs to no billed activation: the
	 * clock step, the worse time quality and the position jump after the delivery at 20
	 * are taken back when gap_end ends cover there; the mock location before it stays. */
	engine_config_defaults(&g_cfg);
	struct engine_event ev[3];
	size_t n = base_session(ev);
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, n);
	for (int k = 1; k <= 40; k++) {
		struct engine_event e;
		if (k == 10) {
			e = ev_app(T0 + M(10), APP_HEARTBEAT);
			e.anomalies = ANOM_MOCK_LOCATION;
			e.tq = TQ_RTC;
			feed0(&e);
		}
		if (k == 20) {
			e = ev_app(T0 + M(20), APP_JOB_DELIVERED);
			feed0(&e);
		}
		if (k == 25) {
			e = ev_app(T0 + M(25), APP_HEARTBEAT);
			e.anomalies = ANOM_CLOCK_STEP;
			e.tq = TQ_UNSYNCED;
			feed0(&e);
			e = ev_fix(T0 + M(26), LAT0, LON0, 5.0, 5.0);
			feed0(&e);
			e = ev_fix(T0 + M(26) + S(1), LAT0 + 0.01, LON0, 5.0, 5.0);
			feed0(&e);
		}
		e = ev_app(T0 + M(k) + S(30), APP_HEARTBEAT);
		feed0(&e);
	}
	assert_int_equal(g_m[0].n, 1);
	assert_true(g_m[0].s[0].closed);
	assert_int_equal(g_m[0].s[0].end_ms, T0 + M(20));
	const struct engine_activation *a = &g_m[0].s[0].acts[0].a;
	assert_int_equal(a->status, ACT_CLOSED);
	if (a->anomalies != ANOM_MOCK_LOCATION)
		fail_msg("activation anomalies %#x, want only the mock location (%#x)", a->anomalies,
		         ANOM_MOCK_LOCATION);
	assert_int_equal(a->tq, TQ_RTC);
	assert_true(a->distance_m == 0.0);
}

static void test_parked_jitter_adds_no_distance(void **state)
{
	(void)state;
	/* Item 9: a parked receiver wandering 5 m, at 0.3 m/s by its own account and then
	 * with no speed (1.7 m/s derived): never movement, so no distance, no moving time. */
	struct engine_event fx[20];
	for (int k = 0; k < 20; k++) {
		double lat = LAT0 + ((k & 1) ? 5.0 * DEG_PER_M : 0.0);
		fx[k] = ev_fix(T0 + M(1) + S(3) * k, lat, LON0, k < 10 ? 0.3 : NAN, 5.0);
	}
	const struct engine_activation *a = one_act_session(fx, 20);
	if (a->distance_m != 0.0)
		fail_msg("parked jitter added %.3f m", a->distance_m);
	assert_int_equal(a->moving_ms, 0);
	assert_int_equal(g_st[0].gnss.moving_ms, 0);
	assert_int_equal(g_st[0].gnss.accepted, 20);
	assert_false(g_st[0].last_fix_moving);
}

static void test_speed_derived_from_positions(void **state)
{
	(void)state;
	/* Item 9: with no speed from the receiver, speed is derived from the previous
	 * accepted fix at most max_fix_gap before: 100 m in 10 s is movement and starts a
	 * MOTION session; a fix 40 s after the last one gets no derived speed. */
	engine_config_defaults(&g_cfg);
	g_cfg.trigger = TRIGGER_MOTION;
	const double d100 = 100.0 * DEG_PER_M;
	const struct engine_event ev[] = {
		ev_assign(T0 - M(2), "P-1", "D-1", "V-1"),
		ev_ignition(T0 - M(1), true),
		ev_fix(T0, LAT0, LON0, NAN, 5.0),
		ev_fix(T0 + S(10), LAT0 + d100, LON0, NAN, 5.0),
		ev_fix(T0 + S(20), LAT0 + 2 * d100, LON0, NAN, 5.0),
		ev_fix(T0 + S(60), LAT0 + 6 * d100, LON0, NAN, 5.0),
	};
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, sizeof(ev) / sizeof(ev[0]));
	assert_model_clean(&g_m[0]);
	assert_false(g_st[0].last_fix_moving);
	assert_int_equal(g_st[0].last_move_ms, T0 + S(20));
	struct engine_event cmd = ev_cmd(T0 + S(70), CMD_END_COVER);
	feed0(&cmd);
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(g_m[0].s[0].start_ms, T0 + S(10));
	assert_int_equal(g_m[0].s[0].open_rule, RULE_START_MOTION);
	const struct engine_activation *a = &g_m[0].s[0].acts[0].a;
	if (!(a->distance_m > 99.5 && a->distance_m < 100.5))
		fail_msg("distance %.3f m, want ~100 m (the segment 10 s - 20 s)", a->distance_m);
	assert_int_equal(a->moving_ms, S(10));
}

static void test_fix_unknown_eph_not_accepted(void **state)
{
	(void)state;
	/* Item 9: a fix whose horizontal error is unknown is not accepted (counted under
	 * "eph"): it starts no MOTION session; the same fix with a known error does. */
	engine_config_defaults(&g_cfg);
	g_cfg.trigger = TRIGGER_MOTION;
	const struct engine_event ev[] = {
		ev_assign(T0 - M(2), "P-1", "D-1", "V-1"),
		ev_ignition(T0 - M(1), true),
		ev_fix(T0, LAT0, LON0, 10.0, NAN),
	};
	run_events(&g_cfg, &g_st[0], &g_m[0], ev, sizeof(ev) / sizeof(ev[0]));
	assert_model_clean(&g_m[0]);
	assert_int_equal(g_m[0].n, 0);
	assert_false(g_st[0].have_fix);
	assert_int_equal(g_st[0].gnss.eph, 1);
	assert_int_equal(g_st[0].gnss.accepted, 0);
	assert_int_equal(g_st[0].rejected_total, 0);
	struct engine_event good = ev_fix(T0 + S(1), LAT0, LON0, 10.0, 5.0);
	feed0(&good);
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(g_m[0].s[0].start_ms, T0 + S(1));
	assert_int_equal(g_st[0].gnss.accepted, 1);
}

static void test_duplicate_accept_same_id(void **state)
{
	(void)state;
	/* Item 12: a re-sent accept for a job in progress is a duplicate: counted
	 * (NOTE_DUPLICATE, jobs_duplicate_total), no second job, no refresh of its timeout
	 * clock; so is a re-sent delivery. One job, cover to its delivery. */
	engine_config_defaults(&g_cfg);
	const struct engine_event pre[] = {
		ev_assign(T0 - M(2), "P-1", "D-1", "V-1"),
		ev_app(T0 - M(1), APP_ONLINE),
		ev_job(T0, APP_JOB_ACCEPTED, "order-17"),
	};
	run_events(&g_cfg, &g_st[0], &g_m[0], pre, 3);
	feed_heartbeats(T0 + M(1), T0 + M(9), M(1));
	struct engine_event dup = ev_job(T0 + M(10), APP_JOB_ACCEPTED, "order-17");
	feed0(&dup);
	assert_int_equal(notes_in_out(NOTE_DUPLICATE), 1);
	assert_int_equal(g_st[0].jobs_duplicate_total, 1);
	assert_int_equal(g_st[0].jobs_active, 1);
	assert_int_equal(g_st[0].n_jobs, 1);
	assert_int_equal(g_st[0].jobs[0].last_ms, T0);
	assert_int_equal(g_st[0].rejected_total, 0);
	feed_heartbeats(T0 + M(11), T0 + M(19), M(1));
	struct engine_event dl = ev_job(T0 + M(20), APP_JOB_DELIVERED, "order-17");
	feed0(&dl);
	assert_int_equal(g_st[0].jobs_active, 0);
	assert_int_equal(notes_in_out(NOTE_DUPLICATE), 0);
	struct engine_event dl2 = ev_job(T0 + M(25), APP_JOB_DELIVERED, "order-17");
	feed0(&dl2);
	assert_int_equal(notes_in_out(NOTE_DUPLICATE), 1);
	assert_int_equal(g_st[0].jobs_duplicate_total, 2);
	assert_int_equal(g_st[0].last_job_end_ms, T0 + M(20));
	feed_heartbeats(T0 + M(26), T0 + M(40), M(1));
	assert_int_equal(g_m[0].n, 1);
	assert_int_equal(g_m[0].s[0].end_ms, T0 + M(20));
	assert_int_equal(g_m[0].s[0].end_reason, END_GAP);
	assert_int_equal(g_m[0].s[0].close_at_ms, T0 + M(30));
	assert_int_equal(g_m[0].s[0].acts[0].a.jobs, 1);
}

static void test_too_many_jobs(void **state)
{
	(void)state;
	/* Item 12: 16 jobs in progress at once are kept; a 17th accept, with or without an
	 * id, is rejected (too_many_jobs) with the state unchanged. A duplicate is not one
	 * more job, and after a delivery there is room again. */
	engine_config_defaults(&g_cfg);
	const struct engine_event pre[] = {
		ev_assign(T0 - M(2), "P-1", "D-1", "V-1"),
		ev_app(T0 - M(1), APP_ONLINE),
	};
	run_events(&g_cfg, &g_st[0], &g_m[0], pre, 2);
	char id[16];
	for (int k = 1; k <= ENGINE_MAX_JOBS; k++) {
		snprintf(id, sizeof(id), "J%d", k);
		struct engine_event acc = ev_job(T0 + k, APP_JOB_ACCEPTED, id);
		feed0(&acc);
	}
	assert_int_equal(g_st[0].jobs_active, ENGINE_MAX_JOBS);
	assert_int_equal(g_st[0].n_jobs, ENGINE_MAX_JOBS);
	struct engine_event j17 = ev_job(T0 + S(1), APP_JOB_ACCEPTED, "J17");
	expect_rejected(&j17, REJECT_TOO_MANY_JOBS);
	struct engine_event anon = ev_app(T0 + S(1), APP_JOB_ACCEPTED);
	expect_rejected(&anon, REJECT_TOO_MANY_JOBS);
	assert_int_equal(g_st[0].rejected_total, 2);
	struct engine_event dup = ev_job(T0 + S(2), APP_JOB_ACCEPTED, "J5");
	feed0(&dup);
	assert_int_equal(notes_in_out(NOTE_DUPLICATE), 1);
	assert_int_equal(g_st[0].jobs_active, ENGINE_MAX_JOBS);
	struct engine_event dl = ev_job(T0 + S(3), APP_JOB_DELIVERED, "J1");
	feed0(&dl);
	j17.t_ms = T0 + S(4);
	feed0(&j17);
	assert_int_equal(g_st[0].jobs_active, ENGINE_MAX_JOBS);
	assert_int_equal(g_st[0].rejected_total, 2);
	assert_int_equal(g_st[0].s.acts[0].jobs, ENGINE_MAX_JOBS + 1);
	assert_int_equal(g_m[0].n, 1);
}

int main(void)
{
	static struct CMUnitTest tests[N_CASES + 40];
	size_t n = 0;
	for (size_t i = 0; i < N_CASES; i++) {
		tests[n].name = cases[i].name;
		tests[n].test_func = test_table_case;
		tests[n].setup_func = NULL;
		tests[n].teardown_func = NULL;
		tests[n].initial_state = (void *)&cases[i];
		n++;
	}
	const struct CMUnitTest more[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_out_of_order_rejected),
		cmocka_unit_test(test_same_time_both_applied),
		cmocka_unit_test(test_bad_fix_rejected),
		cmocka_unit_test(test_bad_event_rejected),
		cmocka_unit_test(test_rejected_event_fires_no_deadline),
		cmocka_unit_test(test_jobs_per_activation),
		cmocka_unit_test(test_widest_step_fits),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_distance),
		cmocka_unit_test(test_position_jump),
		cmocka_unit_test(test_mock_location_and_time_quality),
		cmocka_unit_test(test_track_only_on_cover),
		cmocka_unit_test(test_next_deadline_none_pending),
		cmocka_unit_test(test_power_cut_single_step),
		cmocka_unit_test(test_voided_activation_kept),
		cmocka_unit_test(test_restore_mid_session),
		cmocka_unit_test(test_revoke_other_policy_rejected),
		cmocka_unit_test(test_assign_mid_session_applies_next),
		cmocka_unit_test(test_job_at_hour_boundary_counts_in_new_hour),
		cmocka_unit_test(test_anomaly_after_backdated_end),
		cmocka_unit_test(test_parked_jitter_adds_no_distance),
		cmocka_unit_test(test_speed_derived_from_positions),
		cmocka_unit_test(test_fix_unknown_eph_not_accepted),
		cmocka_unit_test(test_duplicate_accept_same_id),
		cmocka_unit_test(test_too_many_jobs),
	};
	if (N_CASES + sizeof(more) / sizeof(more[0]) > sizeof(tests) / sizeof(tests[0])) {
		fprintf(stderr, "test bug: raise the size of tests[]\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		tests[n++] = more[i];
	return _cmocka_run_group_tests("engine", tests, n, NULL, NULL);
}
