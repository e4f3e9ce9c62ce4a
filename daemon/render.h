/*
 * render.h - sessions, activations and journal events as JSON objects, shared by the
 * socket server, coverctl's read-only mode and the outbox, so one record looks the same
 * everywhere. Times are RFC 3339 UTC strings; an open activation has "end": null.
 * The caller owns and frees (cJSON_Delete) what these return; NULL on allocation failure.
 */
#ifndef COVERD_RENDER_H
#define COVERD_RENDER_H

#include <cjson/cJSON.h>

#include "store.h"

/* Fields: id, open, policy_id, driver_id, vehicle_id, trigger, start, end (null while
 * open), end_reason (null while open), duration_s (null while open), activations. */
cJSON *render_session(const struct store_session_row *r);
/* Fields: id, session_id, index, revision, status, policy_id, driver_id, vehicle_id,
 * start, end, end_reason, distance_m, moving_s, jobs, start_pos, end_pos, time_quality,
 * anomalies (array of names), open_rule, close_rule, open_event_id, close_event_id. */
cJSON *render_activation(const struct store_activation_row *r);
/* Fields: id, t, source, type, status, reason (null when none), payload (the journaled
 * event JSON, parsed; a string when the journal text is not JSON). */
cJSON *render_event(const struct store_event_row *r);
/* Names of ANOM_* bits as a JSON array. */
cJSON *render_anomalies(uint32_t anomalies);

/*
 * Added for `coverctl explain` and the socket's explain command, so both give the same
 * words. render_rule_text writes into buf (always NUL-terminated) what a rule, named as
 * engine_rule_name() names it, means for a driver, worded as the clause after "because":
 * why cover started or ended, or why an activation opened, closed or was voided. closing
 * selects the closing wording (hour_boundary); index is the activation's index;
 * end_reason (engine_end_reason_name, may be NULL) is the activation's end reason, which
 * lets a backdated_end close name the rule that really ended the session ("void" or NULL
 * gives the voided wording); cfg (may be NULL: defaults) supplies the durations named.
 */
void render_rule_text(char *buf, size_t len, const char *rule, int closing, int index,
                      const char *end_reason, const struct engine_config *cfg);
/*
 * An open activation's store row holds the figures of its opening revision; the running
 * ones (distance, moving time, jobs, end position, anomalies, time quality) live in the
 * engine state until the activation closes. When r is the open activation of st's
 * session, copies them into r (time_quality then points to a static name) and returns 1;
 * otherwise leaves r alone and returns 0. Used before rendering, so a reader of an open
 * activation sees the figures so far, not zeros.
 */
int render_overlay_live(struct store_activation_row *r, const struct engine_state *st);

/*
 * The explain object of docs/ipc.md: {"activation":{...},"open_event":{...}|null,
 * "close_event":{...}|null,"statement":"..."}. open_ev and close_ev may be NULL (no
 * journal row). The statement is a paragraph a driver disputing a bill can read: the
 * interval, the rule that opened and closed the activation in words, how it is billed,
 * the distance, moving time and jobs, the time quality and the anomalies.
 */
cJSON *render_explain(const struct store_activation_row *a, const struct store_event_row *open_ev,
                      const struct store_event_row *close_ev, const struct engine_config *cfg);

#endif
