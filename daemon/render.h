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
 * An open activation's store row holds the figures of its opening revision; the running
 * ones (distance, moving time, jobs, end position, anomalies, time quality) live in the
 * engine state until the activation closes. When r is the open activation of st's
 * session, copies them into r (time_quality then points to a static name) and returns 1;
 * otherwise leaves r alone and returns 0. Used before rendering, so a reader of an open
 * activation sees the figures so far, not zeros.
 */
int render_overlay_live(struct store_activation_row *r, const struct engine_state *st);

/*
 * Adds to a status object (docs/ipc.md) the engine's GNSS and job accounting, from st:
 * "gnss_fixes": {"accepted": n, "rejected": {"no_fix": n, "eph": n, "bad_value": n,
 * "out_of_order": n}, "moving_s": s} and "job_events": {"duplicate": n, "ignored": n,
 * "timed_out": n}. eph counts fixes whose horizontal error is unknown or above max_eph.
 * ("gnss" is the daemon's receiver link: source, connected, fixes delivered, dropped.)
 * The socket's status and coverctl's read-only status both use it. 0, or -1 when out of
 * memory (status may then hold part of it; the caller drops the object).
 */
int render_status_counts(cJSON *status, const struct engine_state *st);

/* The explanation of an activation's bill is daemon/explain.h. */

#endif
