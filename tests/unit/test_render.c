/*
 * test_render.c - daemon/render.c: the JSON objects the socket, coverctl and the records
 * share, field by field; the words and fields of explain (daemon/explain.c: local time
 * beside UTC in a fixed zone, no internal rule name in the text, the billed line of each
 * case); the live figures of an open activation; and that an allocation failure at any
 * point gives NULL and leaks nothing (cJSON's allocator is swapped for one that fails on
 * the n-th call).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evjson.h"
#include "explain.h"
#include "render.h"

/* 2026-11-28T09:00:00Z and friends, in ms since the epoch. */
#define T0 1795856400000LL
#define MIN 60000LL

static int64_t t(const char *s)
{
	int64_t ms;

	assert_int_equal(evjson_parse_time(s, &ms), 0);
	return ms;
}

static const cJSON *get(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (v == NULL)
		fail_msg("member \"%s\" missing", key);
	return v;
}

static void assert_str_member(const cJSON *o, const char *key, const char *want)
{
	const cJSON *v = get(o, key);

	if (!cJSON_IsString(v))
		fail_msg("member \"%s\" is not a string", key);
	assert_string_equal(v->valuestring, want);
}

static void assert_num_member(const cJSON *o, const char *key, double want)
{
	const cJSON *v = get(o, key);

	if (!cJSON_IsNumber(v))
		fail_msg("member \"%s\" is not a number", key);
	if (fabs(v->valuedouble - want) > 1e-9)
		fail_msg("member \"%s\": %.10g, want %.10g", key, v->valuedouble, want);
}

static void assert_null_member(const cJSON *o, const char *key)
{
	if (!cJSON_IsNull(get(o, key)))
		fail_msg("member \"%s\" is not null", key);
}

static size_t count_members(const cJSON *o)
{
	size_t n = 0;
	const cJSON *e;

	cJSON_ArrayForEach(e, o)
		n++;
	return n;
}

static struct store_activation_row closed_row(void)
{
	struct store_activation_row r = {
		.id = "dev-1-20261128T090000Z-1-1",
		.session_id = "dev-1-20261128T090000Z-1",
		.policy_id = "P-1", .driver_id = "D-1", .vehicle_id = "V-1",
		.status = "closed", .end_reason = "gap_end", .time_quality = "ntp",
		.open_rule = "hour_boundary", .close_rule = "gap_end",
		.index = 1, .revision = 2, .jobs = 3,
		.start_ms = T0 + 60 * MIN, .end_ms = T0 + 102 * MIN + 250,
		.distance_m = 12345.6789, .moving_ms = 1830500,
		.start_pos = { 51.50000004, -0.12345678, true },
		.end_pos = { 51.6, -0.1, false },
		.anomalies = ANOM_POSITION_JUMP | ANOM_CLOCK_STEP,
		.open_event_id = 17, .close_event_id = 0,
	};
	return r;
}

static void test_anomalies(void **state)
{
	cJSON *a;
	char *s;

	(void)state;
	a = render_anomalies(0);
	assert_non_null(a);
	assert_true(cJSON_IsArray(a));
	assert_int_equal(cJSON_GetArraySize(a), 0);
	cJSON_Delete(a);

	a = render_anomalies(ANOM_POSITION_JUMP | ANOM_MOCK_LOCATION | ANOM_CLOCK_STEP | 0x80u);
	assert_non_null(a);
	s = cJSON_PrintUnformatted(a);
	assert_string_equal(s, "[\"position_jump\",\"mock_location\",\"clock_step\"]");
	free(s);
	cJSON_Delete(a);

	a = render_anomalies(ANOM_MOCK_LOCATION);
	s = cJSON_PrintUnformatted(a);
	assert_string_equal(s, "[\"mock_location\"]");
	free(s);
	cJSON_Delete(a);
}

static void test_activation_closed(void **state)
{
	struct store_activation_row r = closed_row();
	cJSON *o = render_activation(&r);
	const cJSON *pos;
	char *s;

	(void)state;
	assert_non_null(o);
	assert_str_member(o, "id", "dev-1-20261128T090000Z-1-1");
	assert_str_member(o, "session_id", "dev-1-20261128T090000Z-1");
	assert_num_member(o, "index", 1);
	assert_num_member(o, "revision", 2);
	assert_str_member(o, "status", "closed");
	assert_str_member(o, "policy_id", "P-1");
	assert_str_member(o, "driver_id", "D-1");
	assert_str_member(o, "vehicle_id", "V-1");
	assert_str_member(o, "start", "2026-11-28T10:00:00Z");
	assert_str_member(o, "end", "2026-11-28T10:42:00.250Z");
	assert_str_member(o, "end_reason", "gap_end");
	/* Distances are kept to the decimetre, positions to 1e-7 degrees. */
	assert_num_member(o, "distance_m", 12345.7);
	assert_num_member(o, "moving_s", 1830.5);
	assert_num_member(o, "jobs", 3);
	pos = get(o, "start_pos");
	assert_true(cJSON_IsObject(pos));
	assert_num_member(pos, "lat", 51.5);
	assert_num_member(pos, "lon", -0.1234568);
	assert_null_member(o, "end_pos");     /* not valid */
	assert_str_member(o, "time_quality", "ntp");
	s = cJSON_PrintUnformatted(get(o, "anomalies"));
	assert_string_equal(s, "[\"position_jump\",\"clock_step\"]");
	free(s);
	assert_str_member(o, "open_rule", "hour_boundary");
	assert_str_member(o, "close_rule", "gap_end");
	assert_num_member(o, "open_event_id", 17);
	assert_null_member(o, "close_event_id");   /* 0: no journal row */
	/* Exactly the documented fields, no more. */
	assert_int_equal(count_members(o), 22);
	cJSON_Delete(o);
}

static void test_activation_open(void **state)
{
	struct store_activation_row r = closed_row();
	cJSON *o;

	(void)state;
	r.status = "open";
	r.end_ms = 0;
	r.revision = 1;
	r.end_reason = "none";
	r.close_rule = "none";
	r.distance_m = NAN;        /* JSON has no NaN: it must come out as null */
	r.policy_id = NULL;
	o = render_activation(&r);
	assert_non_null(o);
	assert_null_member(o, "end");
	assert_null_member(o, "end_reason");
	assert_null_member(o, "close_rule");
	assert_null_member(o, "distance_m");
	assert_null_member(o, "policy_id");
	assert_str_member(o, "start", "2026-11-28T10:00:00Z");
	assert_str_member(o, "status", "open");
	cJSON_Delete(o);
}

static void test_session(void **state)
{
	struct store_session_row r = {
		.id = "dev-1-20261128T235000Z-7", .policy_id = "P-1", .driver_id = "D-1",
		.vehicle_id = "V-1", .trigger = "job", .end_reason = "offline",
		.start_ms = 0, .end_ms = 0, .open = false, .n_activations = 2,
	};
	cJSON *o;

	(void)state;
	r.start_ms = t("2026-11-28T23:50:00Z");
	r.end_ms = t("2026-11-29T01:05:30Z");
	o = render_session(&r);
	assert_non_null(o);
	assert_str_member(o, "id", "dev-1-20261128T235000Z-7");
	assert_true(cJSON_IsFalse(get(o, "open")));
	assert_str_member(o, "policy_id", "P-1");
	assert_str_member(o, "driver_id", "D-1");
	assert_str_member(o, "vehicle_id", "V-1");
	assert_str_member(o, "trigger", "job");
	assert_str_member(o, "start", "2026-11-28T23:50:00Z");
	assert_str_member(o, "end", "2026-11-29T01:05:30Z");
	assert_str_member(o, "end_reason", "offline");
	assert_num_member(o, "duration_s", 4530);
	assert_num_member(o, "activations", 2);
	assert_int_equal(count_members(o), 11);
	cJSON_Delete(o);

	r.open = true;
	r.end_ms = 0;
	r.end_reason = "none";
	o = render_session(&r);
	assert_non_null(o);
	assert_true(cJSON_IsTrue(get(o, "open")));
	assert_null_member(o, "end");
	assert_null_member(o, "end_reason");
	assert_null_member(o, "duration_s");
	cJSON_Delete(o);
}

static void test_event(void **state)
{
	struct store_event_row r = {
		.id = 42, .t_ms = T0, .source = "ipc", .type = "app",
		.json = "{\"type\":\"app\",\"event\":\"job_accepted\",\"mock\":true}",
		.status = "applied", .reason = NULL,
	};
	cJSON *o;
	const cJSON *p;

	(void)state;
	o = render_event(&r);
	assert_non_null(o);
	assert_num_member(o, "id", 42);
	assert_str_member(o, "t", "2026-11-28T09:00:00Z");
	assert_str_member(o, "source", "ipc");
	assert_str_member(o, "type", "app");
	assert_str_member(o, "status", "applied");
	assert_null_member(o, "reason");
	p = get(o, "payload");
	assert_true(cJSON_IsObject(p));
	assert_str_member(p, "event", "job_accepted");
	assert_true(cJSON_IsTrue(get(p, "mock")));
	cJSON_Delete(o);

	/* A rejected line that is not JSON is shown verbatim. */
	r.json = "{\"type\":\"app\",";
	r.status = "rejected";
	r.reason = "bad_event";
	o = render_event(&r);
	assert_non_null(o);
	assert_str_member(o, "payload", "{\"type\":\"app\",");
	assert_str_member(o, "reason", "bad_event");
	cJSON_Delete(o);
}

/* ---- explain (daemon/explain.c) ----------------------------------------------------- */

#define ZONE "Europe/Ljubljana"

static void assert_contains(const char *text, const char *want)
{
	if (text == NULL || strstr(text, want) == NULL)
		fail_msg("\"%s\"\n  does not contain \"%s\"", text != NULL ? text : "(null)", want);
}

/* The text of the line with this label. */
static const char *line_text(const cJSON *ex, const char *label)
{
	const cJSON *l;

	cJSON_ArrayForEach(l, get(ex, "lines")) {
		const cJSON *lb = cJSON_GetObjectItemCaseSensitive(l, "label");
		if (cJSON_IsString(lb) && strcmp(lb->valuestring, label) == 0)
			return get(l, "text")->valuestring;
	}
	fail_msg("no line \"%s\"", label);
	return NULL;
}

static const char *str_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = get(get(o, a), b);

	if (!cJSON_IsString(v))
		fail_msg("%s.%s is not a string", a, b);
	return v->valuestring;
}

/*
 * The words are for drivers: no rule or end-reason name of the engine that is not also a
 * plain word may appear in any line ("gap_end", "hour_boundary", "backdated_end", ...).
 */
static void assert_plain_words(const cJSON *ex)
{
	const char *words[64];
	size_t n = 0;
	const cJSON *l;
	int i;

	for (i = RULE_NONE; i <= RULE_ZERO_LENGTH; i++)
		words[n++] = engine_rule_name((enum engine_rule)i);
	for (i = END_NONE; i <= END_JOB_TIMEOUT; i++)
		words[n++] = engine_end_reason_name((enum engine_end_reason)i);
	cJSON_ArrayForEach(l, get(ex, "lines")) {
		const char *t = get(l, "text")->valuestring;
		for (size_t k = 0; k < n; k++) {
			/* Names that are ordinary words ("offline", "private", "hour") may appear. */
			if (strchr(words[k], '_') == NULL)
				continue;
			if (strstr(t, words[k]) != NULL)
				fail_msg("line \"%s\" uses the internal name %s", t, words[k]);
		}
	}
	for (size_t k = 0; k < n; k++)
		if (strchr(words[k], '_') != NULL &&
		    strstr(get(ex, "statement")->valuestring, words[k]) != NULL)
			fail_msg("the statement uses the internal name %s", words[k]);
}

/* Session 1 of a shift: 09:00 to 10:42 UTC, ended when the grace after the 10:42 delivery
 * ran out; activation 1 began at 10:00 inside the grace after the 09:58 delivery. */
static struct store_session_row shift_session(void)
{
	struct store_session_row s = {
		.id = "dev-1-20261128T090000Z-1", .policy_id = "P-1", .driver_id = "D-1",
		.vehicle_id = "V-1", .trigger = "job", .end_reason = "gap_end",
		.start_ms = T0, .end_ms = T0 + 102 * MIN, .open = false, .n_activations = 2,
	};
	return s;
}

static struct store_event_row ev_row(int64_t id, int64_t t_ms, const char *type,
                                     const char *json)
{
	struct store_event_row e = {
		.id = id, .t_ms = t_ms, .source = "replay", .type = type, .json = json,
		.status = "applied",
	};
	return e;
}

static void shift_facts(struct explain_facts *f, struct store_activation_row *a,
                        struct store_session_row *s, struct store_event_row *start,
                        struct store_event_row *end)
{
	*a = closed_row();
	a->end_ms = T0 + 102 * MIN;
	a->alive = ALIVE_GRACE;
	a->alive_since_ms = T0 + 58 * MIN;
	*s = shift_session();
	*start = ev_row(3, T0, "app", "{\"type\":\"app\",\"event\":\"job_accepted\"}");
	*end = ev_row(90, T0 + 112 * MIN + 1, "tick", "{\"type\":\"tick\"}");
	memset(f, 0, sizeof(*f));
	f->act = a;
	f->sess = s;
	f->start_rule = "start_job";
	f->start_ev = start;
	f->end_ev = end;
	f->close_ev = end;
	f->last_delivery_ms = T0 + 102 * MIN;
	f->last_delivery_event = "job_delivered";
	f->last_app_ms = T0 + 105 * MIN + 30000;
	f->last_move_ms = T0 + 104 * MIN;
	f->grace_event = "job_delivered";
	f->now_ms = EXPLAIN_NONE;
}

static void test_explain_time_format(void **state)
{
	char buf[96];

	(void)state;
	/* Winter: CET is UTC+1; seconds only when there are any. */
	explain_format_time(T0, T0, ZONE, buf, sizeof(buf));
	assert_string_equal(buf, "10:00 CET (09:00 UTC)");
	explain_format_time(T0 + 12000, T0, ZONE, buf, sizeof(buf));
	assert_string_equal(buf, "10:00:12 CET (09:00:12 UTC)");
	/* After local midnight the day is named, and the UTC day where it differs. */
	explain_format_time(t("2026-11-28T23:35:00Z"), T0, ZONE, buf, sizeof(buf));
	assert_string_equal(buf, "Sun 29 Nov 00:35 CET (Sat 28 Nov 23:35 UTC)");
	explain_format_time(t("2026-11-28T23:35:00Z"), t("2026-11-28T23:00:00Z"), ZONE, buf,
	                    sizeof(buf));
	assert_string_equal(buf, "00:35 CET (Sat 28 Nov 23:35 UTC)");
	/* Summer time is the zone's, not a fixed offset. */
	explain_format_time(t("2026-07-01T12:00:00Z"), t("2026-07-01T08:00:00Z"), ZONE, buf,
	                    sizeof(buf));
	assert_string_equal(buf, "14:00 CEST (12:00 UTC)");
	/* UTC itself is said once. */
	explain_format_time(T0, T0, "UTC", buf, sizeof(buf));
	assert_string_equal(buf, "09:00 UTC");

	/* The process's own TZ is left as it was, and is the zone when none is configured. */
	assert_int_equal(setenv("TZ", ":Asia/Tokyo", 1), 0);
	explain_format_time(T0, T0, ZONE, buf, sizeof(buf));
	assert_string_equal(buf, "10:00 CET (09:00 UTC)");
	assert_string_equal(getenv("TZ"), ":Asia/Tokyo");
	explain_format_time(T0, T0, "", buf, sizeof(buf));
	assert_string_equal(buf, "18:00 JST (09:00 UTC)");
	explain_format_time(T0, T0, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "18:00 JST (09:00 UTC)");
	assert_int_equal(unsetenv("TZ"), 0);
	explain_format_time(T0, T0, ZONE, buf, sizeof(buf));
	assert_null(getenv("TZ"));
}

/* An hour opened inside the grace, closed when the grace after the last delivery ran out. */
static void test_explain_grace(void **state)
{
	struct store_activation_row a;
	struct store_session_row s;
	struct store_event_row start, end;
	struct explain_facts f;
	struct engine_config cfg;
	cJSON *ex;

	(void)state;
	shift_facts(&f, &a, &s, &start, &end);
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_str_member(get(ex, "activation"), "id", a.id);
	assert_contains(line_text(ex, "Activation"), "dev-1-20261128T090000Z-1-1");
	assert_contains(line_text(ex, "Session"), "hour 2 of cover session "
	                "dev-1-20261128T090000Z-1, which ran from 10:00 CET (09:00 UTC) to "
	                "11:42 CET (10:42 UTC)");
	assert_contains(line_text(ex, "Date"), "Saturday 28 November 2026; times in "
	                "Europe/Ljubljana (CET), UTC beside");
	assert_contains(line_text(ex, "Cover"), "11:00 CET (10:00 UTC) to 11:42 CET (10:42 UTC): "
	                "0:42");
	assert_contains(line_text(ex, "Started by"), "a job accepted at 10:00 CET (09:00 UTC), "
	                "while the driver was online, not in private mode and held policy P-1");
	assert_contains(line_text(ex, "Kept alive"), "when this hour began at 11:00 CET (10:00 "
	                "UTC), it was within the 10 minutes of grace after the delivery at "
	                "10:58 CET (09:58 UTC)");
	assert_contains(line_text(ex, "Ended by"), "no new job was accepted within 10 minutes "
	                "of the last delivery, at 11:42 CET (10:42 UTC), so cover ended at that "
	                "delivery, not when the 10 minutes ran out at 11:52 CET (10:52 UTC)");
	assert_contains(line_text(ex, "Facts"), "last delivery 11:42 CET (10:42 UTC); last app "
	                "event 11:45:30 CET (10:45:30 UTC); last movement 11:44 CET (10:44 UTC)");
	assert_string_equal(line_text(ex, "Billed"),
	                    "1 unit billed for 0:42 of cover: a started hour is a whole unit");
	assert_contains(line_text(ex, "Activity"), "12.35 km driven, 0:30:30 moving, 3 jobs");
	assert_string_equal(line_text(ex, "Time source"), "network time (NTP)");
	assert_contains(line_text(ex, "Anomalies"), "a position jump");
	assert_contains(line_text(ex, "Anomalies"), "a clock step");
	assert_contains(get(ex, "statement")->valuestring, "Billed: 1 unit billed for 0:42");

	/* The same facts as fields, every time local and UTC. */
	assert_str_member(ex, "time_zone", ZONE);
	assert_str_member(get(ex, "started_by"), "reason", "job_accepted");
	assert_null_member(get(ex, "started_by"), "cause");
	assert_num_member(get(ex, "started_by"), "event_id", 3);
	assert_string_equal(str_at(get(ex, "started_by"), "at", "utc"), "2026-11-28T09:00:00Z");
	assert_string_equal(str_at(get(ex, "started_by"), "at", "local"),
	                    "2026-11-28T10:00:00+01:00");
	assert_string_equal(str_at(get(ex, "started_by"), "at", "zone"), "CET");
	assert_str_member(get(ex, "kept_alive_by"), "reason", "grace");
	assert_string_equal(str_at(get(ex, "kept_alive_by"), "since", "utc"),
	                    "2026-11-28T09:58:00Z");
	assert_string_equal(str_at(get(ex, "kept_alive_by"), "hour_start", "local"),
	                    "2026-11-28T11:00:00+01:00");
	assert_str_member(get(ex, "ended_by"), "reason", "gap_end");
	assert_string_equal(str_at(get(ex, "ended_by"), "at", "utc"), "2026-11-28T10:42:00Z");
	assert_string_equal(str_at(get(ex, "ended_by"), "event_at", "utc"),
	                    "2026-11-28T10:52:00.001Z");
	assert_string_equal(str_at(get(ex, "ended_by"), "event_at", "local"),
	                    "2026-11-28T11:52:00.001+01:00");
	assert_string_equal(str_at(get(ex, "ended_by"), "last_delivery", "utc"),
	                    "2026-11-28T10:42:00Z");
	assert_string_equal(str_at(get(ex, "ended_by"), "last_app_event", "utc"),
	                    "2026-11-28T10:45:30Z");
	assert_string_equal(str_at(get(ex, "ended_by"), "last_movement", "utc"),
	                    "2026-11-28T10:44:00Z");
	assert_str_member(get(ex, "session"), "end_reason", "gap_end");
	assert_num_member(ex, "billed_units", 1);
	assert_num_member(ex, "cover_seconds", 42 * 60);
	assert_str_member(ex, "billing",
	                  "1 unit billed for 0:42 of cover: a started hour is a whole unit");
	cJSON_Delete(ex);

	/* The durations named are the configuration's. */
	engine_config_defaults(&cfg);
	cfg.gap_end_ms = 15 * MIN;
	ex = explain_render(&f, &cfg, ZONE);
	assert_non_null(ex);
	assert_contains(line_text(ex, "Ended by"), "within 15 minutes of the last delivery");
	assert_contains(line_text(ex, "Kept alive"), "within the 15 minutes of grace");
	cJSON_Delete(ex);

	/* A grace that ran from the app's return after a silence says so. */
	f.grace_event = NULL;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_contains(line_text(ex, "Kept alive"), "when the app came back after a silence");
	cJSON_Delete(ex);
}

/* The first hour: the minimum, a whole hour, an hour that ran to its end. */
static void test_explain_first_hour(void **state)
{
	struct store_activation_row a;
	struct store_session_row s;
	struct store_event_row start, end;
	struct explain_facts f;
	cJSON *ex;

	(void)state;
	shift_facts(&f, &a, &s, &start, &end);
	a.index = 0;
	a.start_ms = T0;
	a.end_ms = T0 + 12 * MIN;
	a.end_reason = "offline";
	a.close_rule = "offline";
	a.alive = ALIVE_START;
	a.alive_since_ms = T0;
	s.end_ms = a.end_ms;
	s.end_reason = "offline";
	end = ev_row(40, a.end_ms, "app", "{\"type\":\"app\",\"event\":\"offline\"}");
	f.last_delivery_ms = T0 + 10 * MIN;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_string_equal(line_text(ex, "Billed"), "1 unit billed for 0:12 of cover: the minimum");
	assert_contains(line_text(ex, "Kept alive"), "the session's first hour");
	assert_string_equal(line_text(ex, "Ended by"), "the driver went offline in the courier "
	                    "app at 10:12 CET (09:12 UTC), which ends cover at once");
	assert_str_member(get(ex, "kept_alive_by"), "reason", "start");
	assert_str_member(get(ex, "ended_by"), "reason", "offline");
	cJSON_Delete(ex);

	/* Offline inside the grace ends cover at the delivery, as the grace would have. */
	a.end_ms = T0 + 10 * MIN;
	s.end_ms = a.end_ms;
	end.t_ms = T0 + 14 * MIN;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_string_equal(line_text(ex, "Ended by"), "the driver went offline in the courier "
	                    "app at 10:14 CET (09:14 UTC), within the 10 minutes of grace after "
	                    "the delivery at 10:10 CET (09:10 UTC), so cover ended at that "
	                    "delivery, as it would have had the app stayed on");
	assert_string_equal(line_text(ex, "Billed"), "1 unit billed for 0:10 of cover: the minimum");
	cJSON_Delete(ex);

	/* A whole hour, closed at its end: no facts of an ending, the session ended later. */
	a.end_ms = T0 + 60 * MIN;
	a.end_reason = "hour";
	a.close_rule = "hour_boundary";
	s.end_ms = T0 + 102 * MIN;
	s.end_reason = "gap_end";
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_string_equal(line_text(ex, "Billed"), "1 unit billed for 1:00 of cover");
	assert_contains(line_text(ex, "Ended by"), "this hour ran its full length to 11:00 CET "
	                "(10:00 UTC), and cover went on into hour 2; the session itself ended "
	                "later, at 11:42 CET (10:42 UTC)");
	assert_str_member(get(ex, "ended_by"), "reason", "hour");
	assert_null_member(get(ex, "ended_by"), "last_delivery");
	cJSON_Delete(ex);
}

/* Voided hours bill nothing and say why. */
static void test_explain_voided(void **state)
{
	struct store_activation_row a;
	struct store_session_row s;
	struct store_event_row start, end;
	struct explain_facts f;
	cJSON *ex;

	(void)state;
	/* Hour 3 opened at 11:00 UTC inside the grace; cover then ended at the 10:58 delivery. */
	shift_facts(&f, &a, &s, &start, &end);
	a.index = 2;
	a.status = "voided";
	a.end_reason = "voided";
	a.close_rule = "backdated_end";
	a.start_ms = T0 + 120 * MIN;
	a.end_ms = a.start_ms;
	s.end_ms = T0 + 118 * MIN;
	f.last_delivery_ms = s.end_ms;
	end.t_ms = T0 + 128 * MIN + 1;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_string_equal(line_text(ex, "Billed"),
	                    "0 units: voided, the session ended before this hour began");
	assert_contains(line_text(ex, "Cover"), "none: this hour would have begun at 12:00 CET");
	assert_contains(line_text(ex, "Ended by"), "cover had ended before this hour began at "
	                "12:00 CET (11:00 UTC): no new job was accepted within 10 minutes of the "
	                "last delivery, at 11:58 CET (10:58 UTC)");
	assert_contains(line_text(ex, "Ended by"), "voided (cancelled): it is not billed");
	assert_str_member(get(ex, "ended_by"), "reason", "voided");
	assert_string_equal(str_at(get(ex, "ended_by"), "at", "utc"), "2026-11-28T10:58:00Z");
	assert_num_member(ex, "billed_units", 0);
	assert_num_member(ex, "cover_seconds", 0);
	cJSON_Delete(ex);

	/* A session of zero length with no job: its only hour is voided. */
	a.index = 0;
	a.close_rule = "zero_length";
	a.start_ms = T0;
	a.end_ms = T0;
	a.alive = ALIVE_START;
	a.alive_since_ms = T0;
	s.trigger = "online";
	s.end_reason = "idle_end";
	s.end_ms = T0;
	f.start_rule = "start_online";
	start = ev_row(3, T0, "app", "{\"type\":\"app\",\"event\":\"online\"}");
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_string_equal(line_text(ex, "Billed"), "0 units: a session of zero length with no job");
	assert_contains(line_text(ex, "Started by"), "going online in the courier app at 10:00 "
	                "CET (09:00 UTC), holding policy P-1");
	assert_contains(line_text(ex, "Ended by"), "the session had no length: there was no "
	                "movement and no job for 30 minutes after 10:00 CET (09:00 UTC)");
	assert_str_member(get(ex, "started_by"), "reason", "online");
	cJSON_Delete(ex);
}

/* An open hour, app silence, a start mid-job, and rows without a record of "kept alive". */
static void test_explain_other_cases(void **state)
{
	struct store_activation_row a;
	struct store_session_row s;
	struct store_event_row start, end;
	struct explain_facts f;
	cJSON *ex;

	(void)state;
	shift_facts(&f, &a, &s, &start, &end);
	a.status = "open";
	a.end_ms = 0;
	a.end_reason = NULL;
	a.close_rule = NULL;
	a.alive = ALIVE_JOB;
	a.alive_since_ms = T0 + 50 * MIN;
	s.open = true;
	s.end_ms = 0;
	s.end_reason = NULL;
	f.end_ev = NULL;
	f.close_ev = NULL;
	f.open = true;
	f.now_ms = T0 + 65 * MIN;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_contains(line_text(ex, "Session"), "which began at 10:00 CET (09:00 UTC) and is "
	                "still open");
	assert_contains(line_text(ex, "Cover"), "from 11:00 CET (10:00 UTC), still running "
	                "(0:05 so far)");
	assert_contains(line_text(ex, "Kept alive"), "a job was in progress, accepted at 10:50 "
	                "CET (09:50 UTC)");
	assert_string_equal(line_text(ex, "Ended by"), "not yet: cover is still running");
	assert_contains(line_text(ex, "Facts"), "so far, last delivery 11:42 CET (10:42 UTC)");
	assert_contains(line_text(ex, "Billed"), "1 unit billed: a started hour is a whole unit "
	                "(0:05 of cover so far)");
	assert_null_member(get(ex, "ended_by"), "reason");
	assert_null_member(get(ex, "ended_by"), "at");
	assert_null_member(get(ex, "session"), "end");
	assert_num_member(ex, "billed_units", 1);
	assert_num_member(ex, "cover_seconds", 300);
	cJSON_Delete(ex);

	/* Silent and standing: the facts are the last app event and the last movement. */
	shift_facts(&f, &a, &s, &start, &end);
	a.end_reason = "app_silence";
	a.close_rule = "app_silence";
	a.end_ms = T0 + 95 * MIN;
	a.alive = ALIVE_MOVEMENT;
	a.alive_since_ms = T0 + 59 * MIN;
	s.end_reason = "app_silence";
	s.end_ms = a.end_ms;
	f.last_app_ms = T0 + 90 * MIN;
	f.last_move_ms = T0 + 95 * MIN;
	f.last_delivery_ms = T0 + 40 * MIN;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_contains(line_text(ex, "Ended by"), "the courier app fell silent after its last "
	                "event at 11:30 CET (10:30 UTC) and the vehicle stood still after its "
	                "last movement at 11:35 CET (10:35 UTC), so cover ended at 11:35 CET "
	                "(10:35 UTC), the later of the two");
	assert_contains(line_text(ex, "Kept alive"), "the courier app was silent but the vehicle "
	                "was moving, last at 10:59 CET (09:59 UTC)");
	assert_str_member(get(ex, "kept_alive_by"), "reason", "movement");
	cJSON_Delete(ex);

	/* A policy assigned mid-job starts cover; a row older than schema 5 has no record. */
	shift_facts(&f, &a, &s, &start, &end);
	f.start_rule = "start_job_in_progress";
	start = ev_row(3, T0, "policy", "{\"type\":\"policy\",\"event\":\"assign\"}");
	a.alive = -1;
	a.alive_since_ms = EXPLAIN_NONE;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_contains(line_text(ex, "Started by"), "policy P-1 assigned at 10:00 CET (09:00 "
	                "UTC) while a job was in progress");
	assert_contains(line_text(ex, "Kept alive"), "not recorded");
	assert_str_member(get(ex, "started_by"), "reason", "job_in_progress");
	assert_str_member(get(ex, "started_by"), "cause", "policy_assigned");
	assert_null_member(get(ex, "kept_alive_by"), "reason");
	assert_null_member(get(ex, "kept_alive_by"), "since");
	cJSON_Delete(ex);
	/* The first hour needs no record: it is the session's start. */
	a.index = 0;
	a.start_ms = T0;
	ex = explain_render(&f, NULL, ZONE);
	assert_non_null(ex);
	assert_contains(line_text(ex, "Kept alive"), "the session's first hour");
	assert_str_member(get(ex, "kept_alive_by"), "reason", "start");
	assert_string_equal(str_at(get(ex, "kept_alive_by"), "since", "utc"),
	                    "2026-11-28T09:00:00Z");
	cJSON_Delete(ex);

	/* The job timeout, and the system's zone when none is configured. */
	shift_facts(&f, &a, &s, &start, &end);
	a.end_reason = "job_timeout";
	a.close_rule = "job_timeout";
	s.end_reason = "job_timeout";
	assert_int_equal(setenv("TZ", ":UTC", 1), 0);
	ex = explain_render(&f, NULL, NULL);
	assert_int_equal(unsetenv("TZ"), 0);
	assert_non_null(ex);
	assert_plain_words(ex);
	assert_contains(line_text(ex, "Ended by"), "no event came for the job in progress for 3 "
	                "hours (its delivery was never received), so it counts as ended at its "
	                "last event, and cover ended at 10:42 UTC");
	assert_null_member(ex, "time_zone");
	assert_contains(line_text(ex, "Date"), "times in the system's zone (UTC)");
	cJSON_Delete(ex);
}

static void test_overlay_live(void **state)
{
	static struct engine_state es;
	struct store_activation_row r = closed_row();
	struct engine_activation *a;

	(void)state;
	engine_state_init(&es);
	es.s.open = true;
	snprintf(es.s.id, sizeof(es.s.id), "%s", r.session_id);
	es.s.n_acts = 2;
	es.s.acts[0].index = 0;
	es.s.acts[0].status = ACT_CLOSED;
	a = &es.s.acts[1];
	a->index = 1;
	a->status = ACT_OPEN;
	a->distance_m = 999.0;
	a->moving_ms = 5000;
	a->jobs = 4;
	a->end_pos = (struct engine_pos){ 52.0, 0.5, true };
	a->anomalies = ANOM_MOCK_LOCATION;
	a->tq = TQ_RTC;

	/* A closed row is what the store says; nothing is overlaid. */
	assert_int_equal(render_overlay_live(&r, &es), 0);
	assert_true(r.distance_m == 12345.6789);

	r.end_ms = 0;
	r.status = "open";
	assert_int_equal(render_overlay_live(&r, &es), 1);
	assert_true(r.distance_m == 999.0);
	assert_int_equal(r.moving_ms, 5000);
	assert_int_equal(r.jobs, 4);
	assert_true(r.end_pos.valid && r.end_pos.lat == 52.0);
	assert_int_equal(r.anomalies, ANOM_POSITION_JUMP | ANOM_CLOCK_STEP | ANOM_MOCK_LOCATION);
	assert_string_equal(r.time_quality, engine_tq_name(TQ_RTC));

	/* Another session's open activation is left alone. */
	r = closed_row();
	r.end_ms = 0;
	r.session_id = "dev-1-20261128T120000Z-2";
	assert_int_equal(render_overlay_live(&r, &es), 0);
	assert_int_equal(r.jobs, 3);
	assert_int_equal(render_overlay_live(&r, NULL), 0);
}

/*
 * cJSON's allocator replaced by one that fails on call number fail_at (counting from 1),
 * so every allocation of a builder is made to fail once in turn.
 */
static long alloc_calls, fail_at;

static void *failing_malloc(size_t n)
{
	if (++alloc_calls == fail_at)
		return NULL;
	return malloc(n);
}

static void test_alloc_failure(void **state)
{
	struct store_activation_row a = closed_row();
	struct store_session_row s = {
		.id = "s", .policy_id = "P", .driver_id = "D", .vehicle_id = "V", .trigger = "job",
		.end_reason = "offline", .start_ms = T0, .end_ms = T0 + MIN, .n_activations = 1,
	};
	struct store_event_row e = {
		.id = 1, .t_ms = T0, .source = "ipc", .type = "app",
		.json = "{\"type\":\"app\",\"event\":\"online\"}", .status = "applied",
	};
	struct store_activation_row fa;
	struct store_session_row fs;
	struct store_event_row fstart, fend;
	struct explain_facts f;
	cJSON_Hooks hooks = { failing_malloc, free };
	cJSON_Hooks plain = { malloc, free };
	int which;

	(void)state;
	shift_facts(&f, &fa, &fs, &fstart, &fend);
	cJSON_InitHooks(&hooks);
	for (which = 0; which < 5; which++) {
		long n;
		int succeeded = 0;

		/* Fail each allocation in turn until the builder needs no more than there are. */
		for (n = 1; n < 10000 && !succeeded; n++) {
			cJSON *o = NULL;

			alloc_calls = 0;
			fail_at = n;
			switch (which) {
			case 0: o = render_activation(&a); break;
			case 1: o = render_session(&s); break;
			case 2: o = render_event(&e); break;
			case 3: o = render_anomalies(ANOM_POSITION_JUMP | ANOM_CLOCK_STEP); break;
			case 4: o = explain_render(&f, NULL, ZONE); break;
			}
			if (alloc_calls < fail_at) {
				/* No allocation failed: the object must be whole. */
				assert_non_null(o);
				succeeded = 1;
			} else if ((which == 2 || which == 4) && o != NULL) {
				/*
				 * Parsing the journaled JSON may be what failed: render_event then
				 * shows the text as a string, explain words the event by its type
				 * only. Either way the object must be whole.
				 */
				assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "payload") != NULL
				                    ? (void *)o
				                    : (void *)cJSON_GetObjectItemCaseSensitive(o, "statement"));
			} else {
				assert_null(o);
			}
			cJSON_Delete(o);
		}
		assert_true(succeeded);
	}
	cJSON_InitHooks(&plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anomalies),
		cmocka_unit_test(test_activation_closed),
		cmocka_unit_test(test_activation_open),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_explain_time_format),
		cmocka_unit_test(test_explain_grace),
		cmocka_unit_test(test_explain_first_hour),
		cmocka_unit_test(test_explain_voided),
		cmocka_unit_test(test_explain_other_cases),
		cmocka_unit_test(test_overlay_live),
		cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
