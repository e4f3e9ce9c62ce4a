/*
 * render.c - store rows as cJSON objects (see render.h for the fields).
 *
 * Every builder returns NULL on any allocation failure and frees what it had built, so
 * a caller never receives half an object. cJSON_Add*ToObject return NULL when they fail,
 * which is what the checks below rely on.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evjson.h"
#include "render.h"

/* Adds a string member, or JSON null when s is NULL or empty (an unset id or reason). */
static int add_str_or_null(cJSON *obj, const char *name, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return cJSON_AddNullToObject(obj, name) != NULL ? 0 : -1;
	return cJSON_AddStringToObject(obj, name, s) != NULL ? 0 : -1;
}

/* Adds an RFC 3339 UTC time, or null when open is set (an end that has not happened). */
static int add_time(cJSON *obj, const char *name, int64_t ms, int is_null)
{
	char buf[EVJSON_TIME_MAX];

	if (is_null)
		return cJSON_AddNullToObject(obj, name) != NULL ? 0 : -1;
	evjson_format_time(ms, buf, sizeof(buf));
	return cJSON_AddStringToObject(obj, name, buf) != NULL ? 0 : -1;
}

/*
 * Rounds to a fixed number of decimals so that the JSON shows what the measurement can
 * carry (0.1 m for distances, 1e-7 degrees, about 1 cm, for positions) instead of the
 * binary noise that %.17g would print.
 */
static double round_to(double v, double scale)
{
	if (!isfinite(v))
		return v;
	return round(v * scale) / scale;
}

static int add_number(cJSON *obj, const char *name, double v)
{
	/* JSON has no NaN or infinity; an unknown value is null. */
	if (!isfinite(v))
		return cJSON_AddNullToObject(obj, name) != NULL ? 0 : -1;
	return cJSON_AddNumberToObject(obj, name, v) != NULL ? 0 : -1;
}

static int add_pos(cJSON *obj, const char *name, const struct engine_pos *p)
{
	cJSON *o;

	if (!p->valid || !isfinite(p->lat) || !isfinite(p->lon))
		return cJSON_AddNullToObject(obj, name) != NULL ? 0 : -1;
	o = cJSON_AddObjectToObject(obj, name);
	if (o == NULL)
		return -1;
	if (add_number(o, "lat", round_to(p->lat, 1e7)) < 0 ||
	    add_number(o, "lon", round_to(p->lon, 1e7)) < 0)
		return -1;
	return 0;
}

/* A journal id of 0 means "no such event" in the store rows. */
static int add_event_id(cJSON *obj, const char *name, int64_t id)
{
	if (id <= 0)
		return cJSON_AddNullToObject(obj, name) != NULL ? 0 : -1;
	return cJSON_AddNumberToObject(obj, name, (double)id) != NULL ? 0 : -1;
}

cJSON *render_anomalies(uint32_t anomalies)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ ANOM_POSITION_JUMP, "position_jump" },
		{ ANOM_MOCK_LOCATION, "mock_location" },
		{ ANOM_CLOCK_STEP, "clock_step" },
	};
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cJSON *s;

		if ((anomalies & names[i].bit) == 0)
			continue;
		s = cJSON_CreateString(names[i].name);
		if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

cJSON *render_session(const struct store_session_row *r)
{
	cJSON *o = cJSON_CreateObject();
	int closed;

	if (o == NULL)
		return NULL;
	closed = !r->open && r->end_ms != 0;
	if (add_str_or_null(o, "id", r->id) < 0 ||
	    cJSON_AddBoolToObject(o, "open", r->open) == NULL ||
	    add_str_or_null(o, "policy_id", r->policy_id) < 0 ||
	    add_str_or_null(o, "driver_id", r->driver_id) < 0 ||
	    add_str_or_null(o, "vehicle_id", r->vehicle_id) < 0 ||
	    add_str_or_null(o, "trigger", r->trigger) < 0 ||
	    add_time(o, "start", r->start_ms, 0) < 0 ||
	    add_time(o, "end", r->end_ms, !closed) < 0 ||
	    add_str_or_null(o, "end_reason", closed ? r->end_reason : NULL) < 0 ||
	    (closed ? add_number(o, "duration_s", (double)(r->end_ms - r->start_ms) / 1000.0)
	            : (cJSON_AddNullToObject(o, "duration_s") != NULL ? 0 : -1)) < 0 ||
	    cJSON_AddNumberToObject(o, "activations", r->n_activations) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *render_activation(const struct store_activation_row *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *anom;
	int is_open;

	if (o == NULL)
		return NULL;
	/* The store keeps end_ms 0 while the activation's hour is still running. */
	is_open = r->end_ms == 0;
	if (add_str_or_null(o, "id", r->id) < 0 ||
	    add_str_or_null(o, "session_id", r->session_id) < 0 ||
	    cJSON_AddNumberToObject(o, "index", r->index) == NULL ||
	    cJSON_AddNumberToObject(o, "revision", r->revision) == NULL ||
	    add_str_or_null(o, "status", r->status) < 0 ||
	    add_str_or_null(o, "policy_id", r->policy_id) < 0 ||
	    add_str_or_null(o, "driver_id", r->driver_id) < 0 ||
	    add_str_or_null(o, "vehicle_id", r->vehicle_id) < 0 ||
	    add_time(o, "start", r->start_ms, 0) < 0 ||
	    add_time(o, "end", r->end_ms, is_open) < 0 ||
	    add_str_or_null(o, "end_reason", is_open ? NULL : r->end_reason) < 0 ||
	    add_number(o, "distance_m", round_to(r->distance_m, 10.0)) < 0 ||
	    add_number(o, "moving_s", (double)r->moving_ms / 1000.0) < 0 ||
	    cJSON_AddNumberToObject(o, "jobs", r->jobs) == NULL ||
	    add_pos(o, "start_pos", &r->start_pos) < 0 ||
	    add_pos(o, "end_pos", &r->end_pos) < 0 ||
	    add_str_or_null(o, "time_quality", r->time_quality) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	anom = render_anomalies(r->anomalies);
	if (anom == NULL || !cJSON_AddItemToObject(o, "anomalies", anom)) {
		cJSON_Delete(anom);
		cJSON_Delete(o);
		return NULL;
	}
	if (add_str_or_null(o, "open_rule", r->open_rule) < 0 ||
	    add_str_or_null(o, "close_rule", is_open ? NULL : r->close_rule) < 0 ||
	    add_event_id(o, "open_event_id", r->open_event_id) < 0 ||
	    add_event_id(o, "close_event_id", r->close_event_id) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *render_event(const struct store_event_row *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *payload = NULL;

	if (o == NULL)
		return NULL;
	if (cJSON_AddNumberToObject(o, "id", (double)r->id) == NULL ||
	    add_time(o, "t", r->t_ms, 0) < 0 ||
	    add_str_or_null(o, "source", r->source) < 0 ||
	    add_str_or_null(o, "type", r->type) < 0 ||
	    add_str_or_null(o, "status", r->status) < 0 ||
	    add_str_or_null(o, "reason", r->reason) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	/*
	 * The journal keeps the event as received, so the payload is shown parsed (the reader
	 * sees the driver's app event as it arrived). A journal text that does not parse, which
	 * a rejected malformed line may be, is shown verbatim as a string.
	 */
	if (r->json != NULL && r->json[0] != '\0') {
		payload = cJSON_Parse(r->json);
		if (payload == NULL)
			payload = cJSON_CreateString(r->json);
	} else {
		payload = cJSON_CreateNull();
	}
	if (payload == NULL || !cJSON_AddItemToObject(o, "payload", payload)) {
		cJSON_Delete(payload);
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int render_overlay_live(struct store_activation_row *r, const struct engine_state *st)
{
	int i;

	if (r == NULL || st == NULL || !st->s.open || r->end_ms != 0 || r->session_id == NULL ||
	    strcmp(r->session_id, st->s.id) != 0)
		return 0;
	for (i = 0; i < st->s.n_acts && i < ENGINE_MAX_ACTS; i++) {
		const struct engine_activation *a = &st->s.acts[i];

		if (a->index != r->index || a->status != ACT_OPEN)
			continue;
		r->distance_m = a->distance_m;
		r->moving_ms = a->moving_ms;
		r->jobs = a->jobs;
		r->end_pos = a->end_pos;
		if (!r->start_pos.valid)
			r->start_pos = a->start_pos;
		r->anomalies |= a->anomalies;
		r->time_quality = engine_tq_name(a->tq);
		return 1;
	}
	return 0;
}

/* A count as a JSON number: counts stay far below 2^53, where doubles stop being exact. */
static int add_count(cJSON *o, const char *name, uint64_t v)
{
	return cJSON_AddNumberToObject(o, name, (double)v) != NULL ? 0 : -1;
}

int render_status_counts(cJSON *status, const struct engine_state *st)
{
	cJSON *g, *rej, *j;

	if (status == NULL || st == NULL)
		return -1;
	g = cJSON_AddObjectToObject(status, "gnss_fixes");
	if (g == NULL || add_count(g, "accepted", st->gnss.accepted) < 0)
		return -1;
	rej = cJSON_AddObjectToObject(g, "rejected");
	if (rej == NULL || add_count(rej, "no_fix", st->gnss.no_fix) < 0 ||
	    add_count(rej, "eph", st->gnss.eph) < 0 ||
	    add_count(rej, "bad_value", st->gnss.bad_value) < 0 ||
	    add_count(rej, "out_of_order", st->gnss.out_of_order) < 0 ||
	    add_number(g, "moving_s", (double)st->gnss.moving_ms / 1000.0) < 0)
		return -1;
	j = cJSON_AddObjectToObject(status, "job_events");
	if (j == NULL || add_count(j, "duplicate", st->jobs_duplicate_total) < 0 ||
	    add_count(j, "ignored", st->jobs_ignored_total) < 0 ||
	    add_count(j, "timed_out", st->jobs_timeout_total) < 0)
		return -1;
	return 0;
}
