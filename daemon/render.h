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

cJSON *render_session(const struct store_session_row *r);
/* Fields: id, session_id, index, revision, status, policy_id, driver_id, vehicle_id,
 * start, end, end_reason, distance_m, moving_s, jobs, start_pos, end_pos, time_quality,
 * anomalies (array of names), open_rule, close_rule, open_event_id, close_event_id. */
cJSON *render_activation(const struct store_activation_row *r);
cJSON *render_event(const struct store_event_row *r);
/* Names of ANOM_* bits as a JSON array. */
cJSON *render_anomalies(uint32_t anomalies);

#endif
