/*
 * test_render.c - daemon/render.c: the JSON objects the socket, coverctl and the records
 * share, field by field; the rule words and explain statement; the live figures of an
 * open activation; and that an allocation failure at any point gives NULL and leaks
 * nothing (cJSON's allocator is swapped for one that fails on the n-th call).
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

static void test_rule_text(void **state)
{
	static const char *const rules[] = {
		"start_job", "start_online", "start_motion", "hour_boundary", "offline", "gap_end",
		"idle_end", "app_silence", "max_session", "policy_revoked", "end_cover", "private",
		"backdated_end",
	};
	struct engine_config cfg;
	char buf[768];
	size_t i;

	(void)state;
	/* Every rule the engine names has its own words (not the fallback). */
	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		int r;
		int found = 0;

		for (r = RULE_NONE; r <= RULE_BACKDATED_END; r++)
			if (strcmp(engine_rule_name((enum engine_rule)r), rules[i]) == 0)
				found = 1;
		if (!found)
			fail_msg("engine has no rule named %s", rules[i]);
		render_rule_text(buf, sizeof(buf), rules[i], 1, 0, NULL, NULL);
		if (strstr(buf, "of rule") != NULL)
			fail_msg("rule %s has no words: %s", rules[i], buf);
	}
	render_rule_text(buf, sizeof(buf), "no_such_rule", 0, 0, NULL, NULL);
	assert_string_equal(buf, "of rule no_such_rule");

	/* Durations come from the configuration given. */
	engine_config_defaults(&cfg);
	render_rule_text(buf, sizeof(buf), "gap_end", 1, 0, NULL, &cfg);
	assert_non_null(strstr(buf, "10 min (gap_end)"));
	cfg.gap_end_ms = 15 * MIN;
	cfg.max_session_ms = 12 * 60 * MIN;
	render_rule_text(buf, sizeof(buf), "gap_end", 1, 0, NULL, &cfg);
	assert_non_null(strstr(buf, "15 min (gap_end)"));
	render_rule_text(buf, sizeof(buf), "max_session", 1, 0, NULL, &cfg);
	assert_non_null(strstr(buf, "12 h (max_session)"));

	/* Opening and closing words of an hour boundary differ; the hour is 1-based. */
	render_rule_text(buf, sizeof(buf), "hour_boundary", 0, 2, NULL, &cfg);
	assert_non_null(strstr(buf, "hour 3 of the session began"));
	render_rule_text(buf, sizeof(buf), "hour_boundary", 1, 2, NULL, &cfg);
	assert_non_null(strstr(buf, "its hour ended"));

	/* A backdated close names the rule that ended the session; a void says so. */
	render_rule_text(buf, sizeof(buf), "backdated_end", 1, 0, "gap_end", &cfg);
	assert_non_null(strstr(buf, "(gap_end)"));
	assert_non_null(strstr(buf, "closed again"));
	render_rule_text(buf, sizeof(buf), "backdated_end", 1, 1, "void", &cfg);
	assert_non_null(strstr(buf, "never had cover"));

	/* The buffer bound holds. */
	memset(buf, 'x', sizeof(buf));
	render_rule_text(buf, 8, "gap_end", 1, 0, NULL, &cfg);
	assert_int_equal(strlen(buf), 7);
}

static void test_explain(void **state)
{
	struct store_activation_row a = closed_row();
	struct store_event_row open_ev = {
		.id = 17, .t_ms = T0 + 60 * MIN + 20000, .source = "timer", .type = "tick",
		.json = "{\"t\":\"2026-11-28T10:00:20Z\",\"type\":\"tick\"}", .status = "applied",
	};
	struct store_event_row close_ev = {
		.id = 90, .t_ms = T0 + 112 * MIN, .source = "ipc", .type = "app",
		.json = "{\"type\":\"app\",\"event\":\"heartbeat\"}", .status = "applied",
	};
	cJSON *o;
	const char *st;

	(void)state;
	a.close_event_id = 90;
	o = render_explain(&a, &open_ev, &close_ev, NULL);
	assert_non_null(o);
	assert_str_member(get(o, "activation"), "id", a.id);
	assert_num_member(get(o, "open_event"), "id", 17);
	assert_num_member(get(o, "close_event"), "id", 90);
	st = get(o, "statement")->valuestring;
	assert_non_null(st);
	assert_non_null(strstr(st, "Activation dev-1-20261128T090000Z-1-1 is hour 2"));
	assert_non_null(strstr(st, "2026-11-28T10:00:00Z to 2026-11-28T10:42:00.250Z"));
	assert_non_null(strstr(st, "hour 2 of the session began"));
	assert_non_null(strstr(st, "journal event #17 (tick at 2026-11-28T10:00:20Z"));
	assert_non_null(strstr(st, "10 min (gap_end)"));
	assert_non_null(strstr(st, "journal event #90 (app heartbeat at 2026-11-28T10:52:00Z"));
	assert_non_null(strstr(st, "billed as one unit"));
	assert_non_null(strstr(st, "12.35 km"));
	assert_non_null(strstr(st, "3 jobs were accepted"));
	assert_non_null(strstr(st, "network time (NTP)"));
	assert_non_null(strstr(st, "a position jump, a clock step."));
	cJSON_Delete(o);

	/* No journal rows: the events are null and the statement still stands. */
	a.index = 0;
	a.anomalies = 0;
	o = render_explain(&a, NULL, NULL, NULL);
	assert_non_null(o);
	assert_null_member(o, "open_event");
	assert_null_member(o, "close_event");
	st = get(o, "statement")->valuestring;
	assert_non_null(strstr(st, "minimum cover 1 h"));
	assert_non_null(strstr(st, "No anomalies were recorded."));
	assert_null(strstr(st, "journal event"));
	cJSON_Delete(o);

	/* A voided activation is not billed and states no interval. */
	a = closed_row();
	a.status = "voided";
	a.end_reason = "void";
	a.close_rule = "backdated_end";
	a.end_ms = a.start_ms;
	o = render_explain(&a, NULL, NULL, NULL);
	assert_non_null(o);
	st = get(o, "statement")->valuestring;
	assert_non_null(strstr(st, "It was voided because"));
	assert_non_null(strstr(st, "not billed"));
	assert_null(strstr(st, "It covers"));
	cJSON_Delete(o);

	/* An open activation is still open. */
	a = closed_row();
	a.end_ms = 0;
	a.status = "open";
	o = render_explain(&a, &open_ev, NULL, NULL);
	assert_non_null(o);
	st = get(o, "statement")->valuestring;
	assert_non_null(strstr(st, "is still open"));
	assert_null(strstr(st, "closed at"));
	cJSON_Delete(o);
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
	cJSON_Hooks hooks = { failing_malloc, free };
	cJSON_Hooks plain = { malloc, free };
	int which;

	(void)state;
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
			case 4: o = render_explain(&a, &e, &e, NULL); break;
			}
			if (alloc_calls < fail_at) {
				/* No allocation failed: the object must be whole. */
				assert_non_null(o);
				succeeded = 1;
			} else if ((which == 2 || which == 4) && o != NULL) {
				/*
				 * Parsing the journaled JSON may be what failed: render_event then
				 * shows the text as a string, render_explain names the event by its
				 * type only. Either way the object must be whole.
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
		cmocka_unit_test(test_rule_text),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_overlay_live),
		cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
