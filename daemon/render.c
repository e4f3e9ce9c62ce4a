/*
 * render.c - store rows as cJSON objects (see render.h for the fields).
 *
 * Every builder returns NULL on any allocation failure and frees what it had built, so
 * a caller never receives half an object. cJSON_Add*ToObject return NULL when they fail,
 * which is what the checks below rely on.
 */
#include <math.h>
#include <stdarg.h>
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

/* Formats a rule parameter for a reader: "10 min", "16 h", "90 s", "250 ms". */
static void human_param(char *buf, size_t len, int64_t ms)
{
	if (ms > 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lld h", (long long)(ms / 3600000));
	else if (ms > 0 && ms % 60000 == 0)
		snprintf(buf, len, "%lld min", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%lld s", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lld ms", (long long)ms);
}

/* Formats an elapsed time as "1 h 02 min 05 s" (hours omitted when zero). */
static void human_elapsed(char *buf, size_t len, int64_t ms)
{
	int64_t s = ms / 1000;

	if (s < 0)
		s = 0;
	if (s >= 3600)
		snprintf(buf, len, "%lld h %02lld min %02lld s", (long long)(s / 3600),
		         (long long)(s % 3600 / 60), (long long)(s % 60));
	else
		snprintf(buf, len, "%lld min %02lld s", (long long)(s / 60), (long long)(s % 60));
}

/*
 * Maps a rule name back to the engine's enum by asking the engine for each name, so the
 * words below follow whatever names engine_rule_name() gives.
 */
static enum engine_rule rule_from_name(const char *name)
{
	int r;

	if (name == NULL)
		return RULE_NONE;
	for (r = RULE_NONE; r <= RULE_BACKDATED_END; r++)
		if (strcmp(engine_rule_name((enum engine_rule)r), name) == 0)
			return (enum engine_rule)r;
	return RULE_NONE;
}

/* The rule behind a session end reason (engine_end_reason_name), RULE_NONE for others. */
static enum engine_rule rule_from_end_reason(const char *name)
{
	static const struct {
		enum engine_end_reason reason;
		enum engine_rule rule;
	} map[] = {
		{ END_OFFLINE, RULE_OFFLINE },         { END_GAP, RULE_GAP_END },
		{ END_IDLE, RULE_IDLE_END },           { END_APP_SILENCE, RULE_APP_SILENCE },
		{ END_MAX_SESSION, RULE_MAX_SESSION }, { END_POLICY_REVOKED, RULE_POLICY_REVOKED },
		{ END_COMMAND, RULE_END_COMMAND },     { END_PRIVATE, RULE_PRIVATE },
		{ END_HOUR, RULE_HOUR_BOUNDARY },
	};
	size_t i;

	if (name == NULL)
		return RULE_NONE;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(engine_end_reason_name(map[i].reason), name) == 0)
			return map[i].rule;
	return RULE_NONE;
}

/* The words of one rule; each reads as the clause after "because". */
static void rule_words(char *buf, size_t len, enum engine_rule rule, const char *name,
                       int closing, int index, const struct engine_config *cfg)
{
	char p1[32], p2[32];

	switch (rule) {
	case RULE_START_JOB:
		snprintf(buf, len, "a job was accepted while the driver was online, not in private "
		         "mode and holding a valid policy, which starts cover");
		break;
	case RULE_START_ONLINE:
		snprintf(buf, len, "the driver went online in the courier app while holding a "
		         "valid policy, which starts cover");
		break;
	case RULE_START_MOTION:
		snprintf(buf, len, "the vehicle moved with the ignition on while a valid policy "
		         "was held, which starts cover");
		break;
	case RULE_HOUR_BOUNDARY:
		if (closing)
			snprintf(buf, len, "its hour ended while cover continued, so the next hour "
			         "opened as a new activation");
		else
			snprintf(buf, len, "hour %d of the session began while cover continued, and "
			         "each started hour of cover is one billable unit", index + 1);
		break;
	case RULE_OFFLINE:
		snprintf(buf, len, "the driver went offline in the courier app, which ends cover "
		         "at that moment");
		break;
	case RULE_GAP_END:
		human_param(p1, sizeof(p1), cfg->gap_end_ms);
		snprintf(buf, len, "no new job was accepted within %s (gap_end) of the last "
		         "delivery or cancellation, so cover ended at that last delivery or "
		         "cancellation, not when the wait ran out", p1);
		break;
	case RULE_IDLE_END:
		human_param(p1, sizeof(p1), cfg->idle_end_ms);
		snprintf(buf, len, "there was no movement and no job for %s (idle_end), so cover "
		         "ended at the last movement or job", p1);
		break;
	case RULE_APP_SILENCE:
		human_param(p1, sizeof(p1), cfg->app_silence_ms);
		human_param(p2, sizeof(p2), cfg->gap_end_ms);
		snprintf(buf, len, "the courier app was silent for %s (app_silence) and the "
		         "vehicle stood still for %s (gap_end), so cover ended at the later of the "
		         "last app event and the last movement", p1, p2);
		break;
	case RULE_MAX_SESSION:
		human_param(p1, sizeof(p1), cfg->max_session_ms);
		snprintf(buf, len, "the session reached its maximum length of %s (max_session)",
		         p1);
		break;
	case RULE_POLICY_REVOKED:
		snprintf(buf, len, "the insurance policy was revoked, which ends cover at that "
		         "moment");
		break;
	case RULE_END_COMMAND:
		snprintf(buf, len, "the insurer's backend sent an end-cover command, which ends "
		         "cover when it arrives");
		break;
	case RULE_PRIVATE:
		snprintf(buf, len, "the driver switched the app to private mode, which ends cover "
		         "at that moment");
		break;
	case RULE_BACKDATED_END:
		snprintf(buf, len, "the session's end was backdated to before this hour began (to "
		         "when its ending condition started), so the hour never had cover");
		break;
	case RULE_NONE:
	default:
		snprintf(buf, len, "of rule %s", name != NULL && name[0] != '\0' ? name : "unknown");
		break;
	}
}

void render_rule_text(char *buf, size_t len, const char *rule, int closing, int index,
                      const char *end_reason, const struct engine_config *cfg)
{
	struct engine_config defaults;
	enum engine_rule r = rule_from_name(rule), why;
	size_t used;

	if (buf == NULL || len == 0)
		return;
	if (cfg == NULL) {
		engine_config_defaults(&defaults);
		cfg = &defaults;
	}
	why = rule_from_end_reason(end_reason);
	if (r == RULE_BACKDATED_END && closing && why != RULE_NONE && why != RULE_HOUR_BOUNDARY) {
		/*
		 * The activation was not voided but closed again: the session's end, backdated
		 * to when its condition began, fell inside an hour that had already closed at
		 * its boundary. The rule a reader needs is the one that ended the session.
		 */
		rule_words(buf, len, why, end_reason, 1, index, cfg);
		used = strlen(buf);
		if (used < len)
			snprintf(buf + used, len - used, "; that end fell inside this hour after it "
			         "had closed at its hour boundary, so the activation was closed again "
			         "with the earlier end");
		return;
	}
	rule_words(buf, len, r, rule, closing, index, cfg);
}

/* Appends printf output to a fixed buffer; the text is cut, never overrun, when long. */
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

/* "app job_accepted", "policy assign", "fix", "tick": what a journal event was. */
static void event_desc(char *buf, size_t len, const struct store_event_row *e)
{
	cJSON *j = e->json != NULL ? cJSON_Parse(e->json) : NULL;
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *type = e->type != NULL && e->type[0] != '\0' ? e->type : "event";

	if (cJSON_IsString(ev) && ev->valuestring != NULL)
		snprintf(buf, len, "%s %s", type, ev->valuestring);
	else
		snprintf(buf, len, "%s", type);
	cJSON_Delete(j);
}

static const char *tq_words(const char *tq)
{
	if (tq == NULL)
		return "an unknown source";
	if (strcmp(tq, "gnss") == 0)
		return "GNSS satellite time";
	if (strcmp(tq, "ntp") == 0)
		return "network time (NTP)";
	if (strcmp(tq, "rtc") == 0)
		return "the device's real-time clock only";
	if (strcmp(tq, "unsynced") == 0)
		return "an unsynchronised clock, so the wall-clock labels may be off (durations "
		       "are still measured on a clock that cannot jump)";
	return tq;
}

static int status_is_void(const char *status)
{
	return status != NULL && (strcmp(status, "void") == 0 || strcmp(status, "voided") == 0);
}

#define STATEMENT_MAX 4096

static void build_statement(char *buf, size_t len, const struct store_activation_row *a,
                            const struct store_event_row *open_ev,
                            const struct store_event_row *close_ev,
                            const struct engine_config *cfg)
{
	char t0[EVJSON_TIME_MAX], t1[EVJSON_TIME_MAX], te[EVJSON_TIME_MAX];
	char rule[768], desc[96], dur[48], mov[48], minc[32];
	size_t used = 0;
	int is_open = a->end_ms == 0;
	int is_void = status_is_void(a->status);
	struct engine_config defaults;
	static const char *anames[] = { "a position jump", "a mock location reported by the app",
	                                "a clock step" };
	static const uint32_t abits[] = { ANOM_POSITION_JUMP, ANOM_MOCK_LOCATION,
	                                  ANOM_CLOCK_STEP };
	int nanom = 0;
	size_t i;

	if (cfg == NULL) {
		engine_config_defaults(&defaults);
		cfg = &defaults;
	}
	buf[0] = '\0';
	evjson_format_time(a->start_ms, t0, sizeof(t0));
	append(buf, len, &used, "Activation %s is hour %d of cover session %s (policy %s, "
	       "driver %s, vehicle %s). ", a->id ? a->id : "?", a->index + 1,
	       a->session_id ? a->session_id : "?", a->policy_id ? a->policy_id : "none",
	       a->driver_id ? a->driver_id : "none", a->vehicle_id ? a->vehicle_id : "none");
	if (is_open) {
		append(buf, len, &used, "It began at %s and is still open. ", t0);
	} else if (is_void) {
		/* A voided activation's end equals its start: there is no interval to state. */
		evjson_format_time(a->end_ms, t1, sizeof(t1));
	} else {
		evjson_format_time(a->end_ms, t1, sizeof(t1));
		human_elapsed(dur, sizeof(dur), a->end_ms - a->start_ms);
		append(buf, len, &used, "It covers %s to %s (%s). ", t0, t1, dur);
	}

	render_rule_text(rule, sizeof(rule), a->open_rule, 0, a->index, NULL, cfg);
	append(buf, len, &used, "It opened at %s because %s", t0, rule);
	if (open_ev != NULL) {
		event_desc(desc, sizeof(desc), open_ev);
		evjson_format_time(open_ev->t_ms, te, sizeof(te));
		append(buf, len, &used, "; this was recorded while processing journal event #%lld "
		       "(%s at %s, from %s)", (long long)open_ev->id, desc, te,
		       open_ev->source ? open_ev->source : "unknown source");
	}
	append(buf, len, &used, ". ");

	if (!is_open) {
		render_rule_text(rule, sizeof(rule), a->close_rule, 1, a->index, a->end_reason, cfg);
		if (is_void)
			append(buf, len, &used, "It was voided because %s", rule);
		else
			append(buf, len, &used, "It closed at %s because %s", t1, rule);
		if (close_ev != NULL) {
			event_desc(desc, sizeof(desc), close_ev);
			evjson_format_time(close_ev->t_ms, te, sizeof(te));
			append(buf, len, &used, "; this was detected while processing journal "
			       "event #%lld (%s at %s, from %s)", (long long)close_ev->id, desc, te,
			       close_ev->source ? close_ev->source : "unknown source");
		}
		append(buf, len, &used, ". ");
	}

	if (is_void) {
		append(buf, len, &used, "A voided activation is not billed. ");
	} else if (a->index == 0) {
		human_param(minc, sizeof(minc), cfg->min_cover_ms);
		append(buf, len, &used, "As the first hour of the session it is billed as one "
		       "whole unit even when cover lasted less (minimum cover %s). ", minc);
	} else {
		append(buf, len, &used, "It is billed as one unit: each started hour of cover is "
		       "one unit. ");
	}

	human_elapsed(mov, sizeof(mov), a->moving_ms);
	append(buf, len, &used, "During it the vehicle covered %.2f km with %s of moving time, "
	       "and %d job%s accepted. ", isfinite(a->distance_m) ? a->distance_m / 1000.0 : 0.0,
	       mov, a->jobs, a->jobs == 1 ? " was" : "s were");
	append(buf, len, &used, "Its times were known from %s. ", tq_words(a->time_quality));
	for (i = 0; i < sizeof(abits) / sizeof(abits[0]); i++) {
		if ((a->anomalies & abits[i]) == 0)
			continue;
		append(buf, len, &used, "%s%s", nanom == 0 ? "Anomalies recorded: " : ", ",
		       anames[i]);
		nanom++;
	}
	if (nanom == 0)
		append(buf, len, &used, "No anomalies were recorded.");
	else
		append(buf, len, &used, ".");
}

cJSON *render_explain(const struct store_activation_row *a, const struct store_event_row *open_ev,
                      const struct store_event_row *close_ev, const struct engine_config *cfg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *item;
	char *statement;

	if (o == NULL)
		return NULL;
	item = render_activation(a);
	if (item == NULL || !cJSON_AddItemToObject(o, "activation", item))
		goto fail_item;
	item = open_ev != NULL ? render_event(open_ev) : cJSON_CreateNull();
	if (item == NULL || !cJSON_AddItemToObject(o, "open_event", item))
		goto fail_item;
	item = close_ev != NULL ? render_event(close_ev) : cJSON_CreateNull();
	if (item == NULL || !cJSON_AddItemToObject(o, "close_event", item))
		goto fail_item;
	/* The statement is built on the heap: it is a few KiB, too much for a daemon stack
	 * frame that may sit deep in the event loop. */
	statement = malloc(STATEMENT_MAX);
	if (statement == NULL)
		goto fail;
	build_statement(statement, STATEMENT_MAX, a, open_ev, close_ev, cfg);
	item = cJSON_AddStringToObject(o, "statement", statement);
	free(statement);
	if (item == NULL)
		goto fail;
	return o;

fail_item:
	cJSON_Delete(item);
fail:
	cJSON_Delete(o);
	return NULL;
}
