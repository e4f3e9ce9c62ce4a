/*
 * engine_harness.h - shared helpers for the session engine's tests.
 *
 * The tests judge the engine only by what engine.h promises: they feed events, tick at
 * engine_next_deadline() as the daemon does, and rebuild the sessions and activations
 * from the actions the engine emits (a small model keyed by session and activation
 * index that keeps the latest revision of each activation). The model also checks the
 * rules every action must obey whatever the case (revisions go up by one, an activation
 * is opened before it changes, every action names the session it belongs to, a rejected
 * event gives exactly one ACTION_REJECT), and
 * records each violation as a message instead of stopping, so one run reports them all.
 */
#ifndef COVERD_TEST_ENGINE_HARNESS_H
#define COVERD_TEST_ENGINE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define HOUR_MS 3600000LL
#define MIN_MS 60000LL
#define SEC_MS 1000LL
#define DAY_MS (24 * HOUR_MS)

#define MODEL_MAX_SESSIONS 4
#define ERRBUF_MAX 8192

struct errbuf {
	int n;               /* messages added, even those that no longer fit */
	size_t len;
	char s[ERRBUF_MAX];
};

void errbuf_init(struct errbuf *eb);
void errbuf_add(struct errbuf *eb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct model_act {
	bool seen;
	int changes;                 /* ACT_* actions seen for this activation */
	int64_t open_at_ms;
	enum engine_rule open_rule, last_rule;
	struct engine_activation a;  /* the latest revision */
};

struct model_session {
	char id[ENGINE_SESSION_ID_MAX];
	uint64_t ordinal;
	enum engine_trigger trigger;
	int64_t start_ms, end_ms;
	enum engine_end_reason end_reason;
	bool closed;
	/* The end comes from SESSION_CLOSE's session reference (one step can close a session
	 * and open the next, so the state may no longer hold it); when st->s is still that
	 * session after the step, the two must agree. */
	int64_t open_at_ms, close_at_ms;
	enum engine_rule open_rule, close_rule;
	int max_index;
	struct model_act acts[ENGINE_MAX_ACTS];
};

struct model {
	int n;                       /* sessions seen */
	int cur;                     /* session that ACT_* actions belong to, -1 none */
	struct model_session s[MODEL_MAX_SESSIONS];
	size_t steps, ticks, actions, tracks, rejects;
	enum engine_reject last_reject;
	uint64_t hash;               /* FNV-1a over every action, in order */
	/* When set, every accepted step also probes that engine_next_deadline() is not late:
	 * a TICK one millisecond before it, on a copy of the state, must fire nothing (and
	 * with INT64_MAX, nothing may fire within the next 20 days). */
	bool check_deadlines;
	struct errbuf err;
};

void model_init(struct model *m);
/* The number of activations seen for session si (any status). */
int model_act_count(const struct model *m, int si);

/* Event builders: every field not named is zero, time quality GNSS. */
struct engine_event ev_tick(int64_t t);
struct engine_event ev_app(int64_t t, enum engine_app_event e);
struct engine_event ev_fix(int64_t t, double lat, double lon, double speed, double eph);
struct engine_event ev_assign(int64_t t, const char *policy, const char *driver,
                              const char *vehicle);
struct engine_event ev_revoke(int64_t t, const char *policy);
struct engine_event ev_ignition(int64_t t, bool on);
struct engine_event ev_cmd(int64_t t, enum engine_cmd c);

/*
 * One engine_step() plus the model update and the checks that hold after every step:
 * the return value matches the actions, and after an accepted event last_t_ms is the
 * event's time and the next deadline lies strictly after it. Returns engine_step's value.
 */
int harness_step(const struct engine_config *cfg, struct engine_state *st,
                 const struct engine_event *ev, struct engine_actions *out, struct model *m);
/* Feeds one event; in tick mode first sends a TICK at every deadline before its time. */
int harness_feed(const struct engine_config *cfg, struct engine_state *st,
                 const struct engine_event *ev, struct engine_actions *out, struct model *m,
                 bool tick);
/* Ticks at every deadline until none is pending (at most max_ticks). */
void harness_drain(const struct engine_config *cfg, struct engine_state *st,
                   struct engine_actions *out, struct model *m, int max_ticks);
/* Advances to until: tick mode ticks every deadline up to it; both modes end with the
 * state's time at until. */
void harness_run_until(const struct engine_config *cfg, struct engine_state *st,
                       struct engine_actions *out, struct model *m, int64_t until, bool tick);

/* Field-by-field comparisons (doubles bitwise, so NaN equals NaN); on a difference they
 * return false and describe the first one in why. */
bool harness_session_equal(const struct engine_session *a, const struct engine_session *b,
                           char *why, size_t len);
bool harness_state_equal(const struct engine_state *a, const struct engine_state *b,
                         char *why, size_t len);
bool harness_model_equal(const struct model *a, const struct model *b, char *why, size_t len);

/* The close rule the spec pairs with an end reason (RULE_NONE when none). */
enum engine_rule harness_rule_for_end(enum engine_end_reason r);
/* "2026-11-28T09:00:00.000Z". */
void harness_fmt_time(char *buf, size_t len, int64_t t_ms);

#endif
