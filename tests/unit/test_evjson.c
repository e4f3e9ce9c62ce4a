/*
 * test_evjson.c - the event JSON codec: RFC 3339 time parsing and formatting, every
 * event type and field, every error naming its field, and the examples of
 * docs/scenario-format.md, which are read from the document itself so that the
 * documentation cannot drift from the code.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "evjson.h"

#ifndef COVERD_SOURCE_DIR
#error "COVERD_SOURCE_DIR must name the source tree"
#endif

/* ------------------------------------------------------------ helpers */

static int parse(const char *line, int require_time, struct engine_event *ev,
                 enum evjson_kind *kind, char *err, size_t errlen)
{
	return evjson_parse(line, strlen(line), require_time, ev, kind, err, errlen);
}

/* Parses a line that must be valid and returns the event. */
static struct engine_event ok_event(const char *line, enum evjson_kind want_kind)
{
	struct engine_event ev;
	enum evjson_kind kind = (enum evjson_kind)-1;
	char err[256] = "unset";
	int r = parse(line, 1, &ev, &kind, err, sizeof(err));
	if (r != 0)
		fail_msg("line %s refused: %s", line, err);
	assert_string_equal(err, "");
	assert_int_equal(kind, want_kind);
	return ev;
}

/* Parses a line that must be refused with exactly the expected reason. */
static void bad_line(const char *line, int require_time, const char *want)
{
	struct engine_event ev;
	memset(&ev, 0x5a, sizeof(ev));
	struct engine_event before = ev;
	enum evjson_kind kind = EVJSON_ENGINE;
	char err[256];
	int r = parse(line, require_time, &ev, &kind, err, sizeof(err));
	if (r != -EINVAL)
		fail_msg("line %s: expected -EINVAL, got %d", line, r);
	if (strcmp(err, want) != 0)
		fail_msg("line %s:\n  want: %s\n  got:  %s", line, want, err);
	/* A refused line leaves the caller's event untouched. */
	assert_memory_equal(&ev, &before, sizeof(ev));
}

#define T0 "\"t\":\"2026-11-28T09:00:00Z\""
#define T0_MS INT64_C(1795856400000)

/* ------------------------------------------------------------ time */

static void test_time_known_values(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t ms;
	} cases[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-11-28T09:00:00Z", T0_MS },
		{ "2026-11-28t09:00:00z", T0_MS },
		{ "2026-11-28T09:00:00+00:00", T0_MS },
		{ "2026-11-28T09:00:00-00:00", T0_MS },
		{ "2026-11-28T09:00:00+05:30", INT64_C(1795836600000) },
		{ "2026-11-28T09:00:00-08:00", INT64_C(1795885200000) },
		{ "2026-11-28T10:00:00+01:00", T0_MS },
		{ "2000-02-29T12:34:56Z", INT64_C(951827696000) },
		{ "2024-02-29T00:00:00Z", INT64_C(1709164800000) },
		{ "1969-12-31T23:59:59Z", -1000 },
		{ "1969-12-31T23:59:59.999Z", -1 },
		{ "0001-01-01T00:00:00Z", INT64_C(-62135596800000) },
		{ "9999-12-31T23:59:59Z", INT64_C(253402300799000) },
		{ "2026-11-28T09:00:00.5Z", T0_MS + 500 },
		{ "2026-11-28T09:00:00.25Z", T0_MS + 250 },
		{ "2026-11-28T09:00:00.125Z", T0_MS + 125 },
		{ "2026-11-28T09:00:00.123456Z", T0_MS + 123 },
		{ "2026-11-28T09:00:00.999999999Z", T0_MS + 999 },
		{ "2026-11-28T09:00:00.000Z", T0_MS },
		{ "2026-11-28T09:00:00.250+01:00", T0_MS - 3600000 + 250 },
		{ "2026-12-31T23:59:59Z", INT64_C(1798761599000) },
		{ "2027-01-01T00:00:00Z", INT64_C(1798761600000) },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = 42;
		if (evjson_parse_time(cases[i].s, &ms) != 0)
			fail_msg("%s refused", cases[i].s);
		if (ms != cases[i].ms)
			fail_msg("%s: want %lld got %lld", cases[i].s, (long long)cases[i].ms,
			         (long long)ms);
	}
}

static void test_time_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"2026",
		"2026-11-28",
		"2026-11-28T09:00:00",        /* no zone */
		"2026-11-28 09:00:00Z",       /* space separator */
		"2026-13-01T00:00:00Z",       /* month 13 */
		"2026-00-01T00:00:00Z",       /* month 0 */
		"2026-01-00T00:00:00Z",       /* day 0 */
		"2026-02-30T00:00:00Z",       /* 30 February */
		"2023-02-29T00:00:00Z",       /* not a leap year */
		"1900-02-29T00:00:00Z",       /* century, not a leap year */
		"2026-04-31T00:00:00Z",       /* April has 30 days */
		"2026-11-28T24:00:00Z",
		"2026-11-28T09:60:00Z",
		"2026-11-28T09:00:60Z",       /* leap second */
		"2026-11-28T09:00:00.Z",      /* empty fraction */
		"2026-11-28T09:00:00.1234567891Z", /* ten fraction digits */
		"2026-11-28T09:00:00+0100",   /* offset without colon */
		"2026-11-28T09:00:00+01",
		"2026-11-28T09:00:00+24:00",
		"2026-11-28T09:00:00+01:60",
		"2026-11-28T09:00:00ZZ",
		"2026-11-28T09:00:00Z ",
		"0000-01-01T00:00:00Z",
		"2026-1-28T09:00:00Z",
		"2026/11/28T09:00:00Z",
		"+2026-11-28T09:00:00Z",
		"2026-11-28T09:00:0aZ",
		"2026-11-28T9:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 42;
		if (evjson_parse_time(bad[i], &ms) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(ms, 42);
	}
	int64_t ms;
	assert_int_equal(evjson_parse_time(NULL, &ms), -EINVAL);
	assert_int_equal(evjson_parse_time("2026-11-28T09:00:00Z", NULL), -EINVAL);
}

static void test_time_format(void **state)
{
	(void)state;
	static const struct {
		int64_t ms;
		const char *s;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ T0_MS, "2026-11-28T09:00:00Z" },
		{ T0_MS + 1, "2026-11-28T09:00:00.001Z" },
		{ T0_MS + 250, "2026-11-28T09:00:00.250Z" },
		{ T0_MS + 999, "2026-11-28T09:00:00.999Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ -1000, "1969-12-31T23:59:59Z" },
		{ INT64_C(951827696000), "2000-02-29T12:34:56Z" },
		{ INT64_C(-62135596800000), "0001-01-01T00:00:00Z" },
		{ INT64_C(253402300799000), "9999-12-31T23:59:59Z" },
	};
	char buf[EVJSON_TIME_MAX];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		evjson_format_time(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].s);
	}
	/* A short buffer is truncated, never overrun. */
	char small[8];
	memset(small, 'x', sizeof(small));
	evjson_format_time(T0_MS, small, sizeof(small));
	assert_string_equal(small, "2026-11");
	/* The extreme values of the type still format inside EVJSON_TIME_MAX. */
	evjson_format_time(INT64_MIN, buf, sizeof(buf));
	assert_true(strlen(buf) < EVJSON_TIME_MAX - 1);
	evjson_format_time(INT64_MAX, buf, sizeof(buf));
	assert_true(strlen(buf) < EVJSON_TIME_MAX - 1);
}

/* A small deterministic generator, so a failure can be reproduced. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Format then parse gives back the same millisecond across years 0001 to 9999, and the
 * calendar fields agree with the C library's gmtime_r(), an independent implementation.
 */
static void test_time_round_trip_and_oracle(void **state)
{
	(void)state;
	const int64_t lo = INT64_C(-62135596800000), hi = INT64_C(253402300799999);
	char buf[EVJSON_TIME_MAX];
	for (int i = 0; i < 200000; i++) {
		int64_t ms = lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
		if (i % 4 == 0)
			ms -= ms % 1000;   /* whole seconds take the other format */
		evjson_format_time(ms, buf, sizeof(buf));
		int64_t back = 0;
		if (evjson_parse_time(buf, &back) != 0 || back != ms)
			fail_msg("%lld -> %s -> %lld", (long long)ms, buf, (long long)back);

		int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
		time_t tt = (time_t)secs;
		struct tm tm;
		assert_non_null(gmtime_r(&tt, &tm));
		char want[96];
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		if (strncmp(buf, want, 19) != 0)
			fail_msg("%lld: ours %s, gmtime %s", (long long)ms, buf, want);
	}
}

/* Every day of a leap and a common year, and each 29 February of a 400-year cycle. */
static void test_time_leap_years(void **state)
{
	(void)state;
	char s[EVJSON_TIME_MAX];
	int64_t ms, prev;
	for (int y = 2000; y <= 2400; y++) {
		int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		snprintf(s, sizeof(s), "%04d-02-29T00:00:00Z", y);
		assert_int_equal(evjson_parse_time(s, &ms) == 0, leap);
	}
	/* Consecutive days are exactly 86400 s apart across month and year ends. */
	assert_int_equal(evjson_parse_time("2023-12-31T00:00:00Z", &prev), 0);
	for (int y = 2024; y <= 2025; y++) {
		for (int m = 1; m <= 12; m++) {
			for (int d = 1; d <= 31; d++) {
				snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00Z", y, m, d);
				if (evjson_parse_time(s, &ms) != 0)
					continue;
				assert_int_equal(ms - prev, 86400000);
				char back[EVJSON_TIME_MAX];
				evjson_format_time(ms, back, sizeof(back));
				assert_string_equal(back, s);
				prev = ms;
			}
		}
	}
	assert_int_equal(evjson_parse_time("2026-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, prev + 86400000);
}

/* ------------------------------------------------------------ event types */

static void test_app_events(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		enum engine_app_event e;
	} names[] = {
		{ "online", APP_ONLINE },
		{ "offline", APP_OFFLINE },
		{ "job_accepted", APP_JOB_ACCEPTED },
		{ "job_picked_up", APP_JOB_PICKED_UP },
		{ "job_delivered", APP_JOB_DELIVERED },
		{ "job_cancelled", APP_JOB_CANCELLED },
		{ "heartbeat", APP_HEARTBEAT },
		{ "private_on", APP_PRIVATE_ON },
		{ "private_off", APP_PRIVATE_OFF },
	};
	char line[256];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "{" T0 ",\"type\":\"app\",\"event\":\"%s\"}",
		         names[i].name);
		struct engine_event ev = ok_event(line, EVJSON_ENGINE);
		assert_int_equal(ev.type, COV_EV_APP);
		assert_int_equal(ev.u.app, names[i].e);
		assert_int_equal(ev.t_ms, T0_MS);
		assert_int_equal(ev.tq, TQ_GNSS);
		assert_int_equal(ev.anomalies, 0);
	}
	struct engine_event ev =
		ok_event("{" T0 ",\"type\":\"app\",\"event\":\"heartbeat\",\"mock\":true}", EVJSON_ENGINE);
	assert_int_equal(ev.anomalies, ANOM_MOCK_LOCATION);
	ev = ok_event("{" T0 ",\"type\":\"app\",\"event\":\"heartbeat\",\"mock\":false}", EVJSON_ENGINE);
	assert_int_equal(ev.anomalies, 0);
}

static void test_fix_full_and_defaults(void **state)
{
	(void)state;
	struct engine_event ev = ok_event("{" T0 ",\"type\":\"fix\",\"lat\":51.5,\"lon\":-0.12,"
	                                  "\"speed\":5.2,\"course\":90,\"eph\":6,\"mode\":2}",
	                                  EVJSON_ENGINE);
	assert_int_equal(ev.type, COV_EV_FIX);
	assert_true(ev.u.fix.lat == 51.5);
	assert_true(ev.u.fix.lon == -0.12);
	assert_true(ev.u.fix.speed_mps == 5.2);
	assert_true(ev.u.fix.course_deg == 90);
	assert_true(ev.u.fix.eph_m == 6);
	assert_int_equal(ev.u.fix.mode, 2);
	assert_int_equal(ev.anomalies, 0);

	/* Absent optional fields are unknown (NaN), and the mode defaults to 3D. */
	ev = ok_event("{\"type\":\"fix\",\"lat\":-90,\"lon\":180," T0 "}", EVJSON_ENGINE);
	assert_true(ev.u.fix.lat == -90);
	assert_true(ev.u.fix.lon == 180);
	assert_true(isnan(ev.u.fix.speed_mps));
	assert_true(isnan(ev.u.fix.course_deg));
	assert_true(isnan(ev.u.fix.eph_m));
	assert_int_equal(ev.u.fix.mode, 3);

	/* The edges of every range are inside it. */
	ev = ok_event("{" T0 ",\"type\":\"fix\",\"lat\":90,\"lon\":-180,\"speed\":0,"
	              "\"course\":359.999,\"eph\":0,\"mode\":1,\"mock\":true}", EVJSON_ENGINE);
	assert_true(ev.u.fix.speed_mps == 0);
	assert_true(ev.u.fix.course_deg == 359.999);
	assert_true(ev.u.fix.eph_m == 0);
	assert_int_equal(ev.u.fix.mode, 1);
	assert_int_equal(ev.anomalies, ANOM_MOCK_LOCATION);
	ev = ok_event("{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"mode\":3.0}", EVJSON_ENGINE);
	assert_int_equal(ev.u.fix.mode, 3);
}

static void test_policy(void **state)
{
	(void)state;
	struct engine_event ev = ok_event(
		"{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"P-1\","
		"\"driver_id\":\"D-1\",\"vehicle_id\":\"V-1\"}", EVJSON_ENGINE);
	assert_int_equal(ev.type, COV_EV_POLICY);
	assert_true(ev.u.policy.assign);
	assert_string_equal(ev.u.policy.policy_id, "P-1");
	assert_string_equal(ev.u.policy.driver_id, "D-1");
	assert_string_equal(ev.u.policy.vehicle_id, "V-1");

	ev = ok_event("{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"P 2\"}",
	              EVJSON_ENGINE);
	assert_string_equal(ev.u.policy.policy_id, "P 2");
	assert_string_equal(ev.u.policy.driver_id, "");
	assert_string_equal(ev.u.policy.vehicle_id, "");

	ev = ok_event("{" T0 ",\"type\":\"policy\",\"event\":\"revoke\"}", EVJSON_ENGINE);
	assert_false(ev.u.policy.assign);
	assert_string_equal(ev.u.policy.policy_id, "");
	ev = ok_event("{" T0 ",\"type\":\"policy\",\"event\":\"revoke\",\"policy_id\":\"P-1\"}",
	              EVJSON_ENGINE);
	assert_false(ev.u.policy.assign);
	assert_string_equal(ev.u.policy.policy_id, "P-1");

	/* The longest id that fits ENGINE_ID_MAX with its NUL. */
	char id[ENGINE_ID_MAX];
	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	char line[256];
	snprintf(line, sizeof(line),
	         "{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"%s\"}", id);
	ev = ok_event(line, EVJSON_ENGINE);
	assert_string_equal(ev.u.policy.policy_id, id);
}

static void test_other_types(void **state)
{
	(void)state;
	struct engine_event ev = ok_event("{" T0 ",\"type\":\"ignition\",\"on\":true}", EVJSON_ENGINE);
	assert_int_equal(ev.type, COV_EV_IGNITION);
	assert_true(ev.u.ignition_on);
	ev = ok_event("{" T0 ",\"type\":\"ignition\",\"on\":false}", EVJSON_ENGINE);
	assert_false(ev.u.ignition_on);

	static const struct {
		const char *name;
		enum engine_power_event p;
	} power[] = { { "low", POWER_LOW }, { "shutdown", POWER_SHUTDOWN }, { "restored", POWER_RESTORED } };
	char line[256];
	for (size_t i = 0; i < 3; i++) {
		snprintf(line, sizeof(line), "{" T0 ",\"type\":\"power\",\"event\":\"%s\"}",
		         power[i].name);
		ev = ok_event(line, EVJSON_ENGINE);
		assert_int_equal(ev.type, COV_EV_POWER);
		assert_int_equal(ev.u.power, power[i].p);
	}

	ev = ok_event("{" T0 ",\"type\":\"cmd\",\"event\":\"end_cover\"}", EVJSON_ENGINE);
	assert_int_equal(ev.type, COV_EV_CMD);
	assert_int_equal(ev.u.cmd, CMD_END_COVER);

	ev = ok_event("{" T0 ",\"type\":\"tick\"}", EVJSON_ENGINE);
	assert_int_equal(ev.type, COV_EV_TICK);
	assert_int_equal(ev.t_ms, T0_MS);

	ev = ok_event("{" T0 ",\"type\":\"restart\"}", EVJSON_RESTART);
	assert_int_equal(ev.t_ms, T0_MS);
}

static void test_common_fields(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		enum engine_time_quality q;
	} tq[] = { { "gnss", TQ_GNSS }, { "ntp", TQ_NTP }, { "rtc", TQ_RTC }, { "unsynced", TQ_UNSYNCED } };
	char line[256];
	for (size_t i = 0; i < 4; i++) {
		snprintf(line, sizeof(line), "{" T0 ",\"type\":\"tick\",\"tq\":\"%s\"}", tq[i].name);
		struct engine_event ev = ok_event(line, EVJSON_ENGINE);
		assert_int_equal(ev.tq, tq[i].q);
	}
	struct engine_event ev =
		ok_event("{" T0 ",\"type\":\"tick\",\"clock_step\":true}", EVJSON_ENGINE);
	assert_int_equal(ev.anomalies, ANOM_CLOCK_STEP);
	ev = ok_event("{" T0 ",\"type\":\"fix\",\"lat\":1,\"lon\":2,\"mock\":true,\"clock_step\":true}",
	              EVJSON_ENGINE);
	assert_int_equal(ev.anomalies, ANOM_CLOCK_STEP | ANOM_MOCK_LOCATION);
	ev = ok_event("{" T0 ",\"type\":\"tick\",\"clock_step\":false}", EVJSON_ENGINE);
	assert_int_equal(ev.anomalies, 0);

	/* Without require_time, an absent "t" is left for the caller to stamp. */
	enum evjson_kind kind;
	char err[256];
	assert_int_equal(parse("{\"type\":\"app\",\"event\":\"online\"}", 0, &ev, &kind, err,
	                       sizeof(err)), 0);
	assert_int_equal(ev.t_ms, INT64_MIN);
	assert_int_equal(kind, EVJSON_ENGINE);
	/* ...but a "t" that is present is still checked. */
	bad_line("{\"t\":\"yesterday\",\"type\":\"app\",\"event\":\"online\"}", 0,
	         "field \"t\": \"yesterday\" is not an RFC 3339 UTC time");
}

static void test_framing(void **state)
{
	(void)state;
	/* Surrounding blanks and the line's own newline are fine; the line need not be
	 * NUL-terminated. */
	const char *buf = "  {" T0 ",\"type\":\"tick\"}\r\nGARBAGE";
	struct engine_event ev;
	enum evjson_kind kind;
	char err[256];
	size_t len = strlen(buf) - strlen("GARBAGE");
	assert_int_equal(evjson_parse(buf, len, 1, &ev, &kind, err, sizeof(err)), 0);
	assert_int_equal(ev.t_ms, T0_MS);
	/* The same bytes with what follows are refused. */
	assert_int_equal(evjson_parse(buf, strlen(buf), 1, &ev, &kind, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "trailing characters after the JSON object"));

	/* The limit: a line of exactly EVJSON_LINE_MAX bytes is parsed, one more is not. */
	char *big = malloc(EVJSON_LINE_MAX + 2);
	assert_non_null(big);
	const char *head = "{" T0 ",\"type\":\"tick\"}";
	memset(big, ' ', EVJSON_LINE_MAX + 1);
	memcpy(big, head, strlen(head));
	big[EVJSON_LINE_MAX + 1] = '\0';
	assert_int_equal(evjson_parse(big, EVJSON_LINE_MAX, 1, &ev, &kind, err, sizeof(err)), 0);
	assert_int_equal(evjson_parse(big, EVJSON_LINE_MAX + 1, 1, &ev, &kind, err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "line too long (65537 bytes, limit 65536)");
	free(big);

	/* A tiny error buffer is still NUL-terminated and not overrun. */
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(parse("{" T0 ",\"type\":\"fix\",\"lat\":91,\"lon\":0}", 1, &ev, &kind, tiny,
	                       sizeof(tiny)), -EINVAL);
	assert_string_equal(tiny, "field \"");

	assert_int_equal(evjson_skip_line("", 0), 1);
	assert_int_equal(evjson_skip_line("  \t\r\n", 5), 1);
	assert_int_equal(evjson_skip_line("  # a comment", 13), 1);
	assert_int_equal(evjson_skip_line(" {}", 3), 0);
	assert_int_equal(evjson_skip_line("x#", 2), 0);
}

/* Parses a line that must be valid through evjson_parse_meta(), without requiring "t". */
static struct engine_event ok_meta(const char *line, struct evjson_meta *meta)
{
	struct engine_event ev;
	enum evjson_kind kind;
	char err[256] = "unset";
	memset(meta, 0x5a, sizeof(*meta));
	if (evjson_parse_meta(line, strlen(line), 0, &ev, &kind, meta, err, sizeof(err)) != 0)
		fail_msg("line %s refused: %s", line, err);
	assert_string_equal(err, "");
	return ev;
}

/* A line that must be refused by evjson_parse_meta() too, leaving *meta untouched. */
static void bad_meta(const char *line, const char *want)
{
	bad_line(line, 0, want);
	struct engine_event ev;
	enum evjson_kind kind;
	struct evjson_meta meta, before;
	memset(&meta, 0x5a, sizeof(meta));
	before = meta;
	char err[256];
	assert_int_equal(evjson_parse_meta(line, strlen(line), 0, &ev, &kind, &meta, err,
	                                   sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	assert_memory_equal(&meta, &before, sizeof(meta));
}

/* "job_id" on the four job events, "id" on any event; both 1 to 63 printable ASCII. */
static void test_job_id_and_request_id(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		enum engine_app_event e;
	} jobs[] = {
		{ "job_accepted", APP_JOB_ACCEPTED }, { "job_picked_up", APP_JOB_PICKED_UP },
		{ "job_delivered", APP_JOB_DELIVERED }, { "job_cancelled", APP_JOB_CANCELLED },
	};
	char line[512];
	struct evjson_meta meta;
	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		snprintf(line, sizeof(line), "{" T0 ",\"type\":\"app\",\"event\":\"%s\","
		         "\"job_id\":\"order-4711/b\"}", jobs[i].name);
		struct engine_event ev = ok_event(line, EVJSON_ENGINE);
		assert_int_equal(ev.u.app, jobs[i].e);
		assert_string_equal(ev.job_id, "order-4711/b");
		/* Without one, job_id is the empty string. */
		snprintf(line, sizeof(line), "{" T0 ",\"type\":\"app\",\"event\":\"%s\"}",
		         jobs[i].name);
		ev = ok_event(line, EVJSON_ENGINE);
		assert_string_equal(ev.job_id, "");
	}
	/* 63 characters is the limit; every printable character, blank and '~' included. */
	char id63[64];
	memset(id63, 'j', 63);
	id63[0] = ' ';
	id63[62] = '~';
	id63[63] = '\0';
	snprintf(line, sizeof(line), "{" T0 ",\"type\":\"app\",\"event\":\"job_accepted\","
	         "\"job_id\":\"%s\"}", id63);
	struct engine_event ev = ok_event(line, EVJSON_ENGINE);
	assert_string_equal(ev.job_id, id63);

	/* A request id on any event type, returned through the meta; "t" is optional. */
	ev = ok_meta("{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"r-1\"}", &meta);
	assert_string_equal(meta.id, "r-1");
	assert_int_equal(ev.t_ms, INT64_MIN);
	assert_string_equal(ev.job_id, "");
	ev = ok_meta("{\"type\":\"app\",\"event\":\"job_delivered\",\"job_id\":\"o-1\","
	             "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"}", &meta);
	assert_string_equal(meta.id, "0f8fad5b-d9cb-469f-a165-70867728950e");
	assert_string_equal(ev.job_id, "o-1");
	ev = ok_meta("{\"type\":\"fix\",\"lat\":1,\"lon\":2,\"id\":\"f-9\"}", &meta);
	assert_string_equal(meta.id, "f-9");
	snprintf(line, sizeof(line), "{\"type\":\"policy\",\"event\":\"revoke\",\"id\":\"%s\"}",
	         id63);
	ok_meta(line, &meta);
	assert_string_equal(meta.id, id63);
	/* No "id": the empty string. */
	ok_meta("{\"type\":\"app\",\"event\":\"online\"}", &meta);
	assert_string_equal(meta.id, "");
	/* A replayed line may carry the id of the socket request it was recorded from: it is
	 * checked, and evjson_parse() (the replay's reader) does not return it. */
	ev = ok_event("{" T0 ",\"type\":\"app\",\"event\":\"online\",\"id\":\"r-2\"}",
	              EVJSON_ENGINE);
	assert_int_equal(ev.t_ms, T0_MS);
	/* evjson_parse_meta() with a NULL meta is evjson_parse(). */
	enum evjson_kind kind;
	char err[256];
	static const char online[] = "{" T0 ",\"type\":\"app\",\"event\":\"online\",\"id\":\"r\"}";
	assert_int_equal(evjson_parse_meta(online, strlen(online), 1, &ev, &kind, NULL, err,
	                                   sizeof(err)), 0);

#define X64 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	static const struct {
		const char *line;
		const char *err;
	} bad[] = {
		/* job_id */
		{ "{\"type\":\"app\",\"event\":\"job_accepted\",\"job_id\":7}",
		  "field \"job_id\": expected a string, got a number" },
		{ "{\"type\":\"app\",\"event\":\"job_accepted\",\"job_id\":null}",
		  "field \"job_id\": expected a string, got null" },
		{ "{\"type\":\"app\",\"event\":\"job_delivered\",\"job_id\":[\"a\"]}",
		  "field \"job_id\": expected a string, got an array" },
		{ "{\"type\":\"app\",\"event\":\"job_accepted\",\"job_id\":\"\"}",
		  "field \"job_id\": is empty" },
		{ "{\"type\":\"app\",\"event\":\"job_accepted\",\"job_id\":\"" X64 "\"}",
		  "field \"job_id\": is 64 characters long (limit 63)" },
		{ "{\"type\":\"app\",\"event\":\"job_cancelled\",\"job_id\":\"a\\tb\"}",
		  "field \"job_id\": character 2 (\\x09) is not printable ASCII" },
		{ "{\"type\":\"app\",\"event\":\"job_picked_up\",\"job_id\":\"\\u007f\"}",
		  "field \"job_id\": character 1 (\\x7f) is not printable ASCII" },
		{ "{\"type\":\"app\",\"event\":\"job_accepted\",\"job_id\":\"caf\\u00e9\"}",
		  "field \"job_id\": character 4 (\\xc3) is not printable ASCII" },
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"job_id\":\"o-1\"}",
		  "field \"job_id\": not allowed with \"event\": \"heartbeat\" (only with job_accepted, "
		  "job_picked_up, job_delivered or job_cancelled)" },
		{ "{\"type\":\"app\",\"event\":\"online\",\"job_id\":7}",
		  "field \"job_id\": not allowed with \"event\": \"online\" (only with job_accepted, "
		  "job_picked_up, job_delivered or job_cancelled)" },
		{ "{\"type\":\"fix\",\"lat\":1,\"lon\":2,\"job_id\":\"o-1\"}",
		  "field \"job_id\": unknown field for type \"fix\"" },
		{ "{\"type\":\"policy\",\"event\":\"revoke\",\"job_id\":\"o-1\"}",
		  "field \"job_id\": unknown field for type \"policy\"" },
		{ "{\"type\":\"app\",\"event\":\"job_accepted\",\"job_id\":\"a\",\"job_id\":\"b\"}",
		  "field \"job_id\": appears more than once" },
		/* id */
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":42}",
		  "field \"id\": expected a string, got a number" },
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":{}}",
		  "field \"id\": expected a string, got an object" },
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":true}",
		  "field \"id\": expected a string, got a boolean" },
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"\"}", "field \"id\": is empty" },
		{ "{\"type\":\"fix\",\"lat\":1,\"lon\":2,\"id\":\"" X64 "\"}",
		  "field \"id\": is 64 characters long (limit 63)" },
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"r\\n1\"}",
		  "field \"id\": character 2 (\\x0a) is not printable ASCII" },
		{ "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"r1\",\"id\":\"r1\"}",
		  "field \"id\": appears more than once" },
		/* an app "t" that does not parse is refused on the socket as in a scenario */
		{ "{\"t\":\"2038-01-19 03:14:08\",\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"r\"}",
		  "field \"t\": \"2038-01-19 03:14:08\" is not an RFC 3339 UTC time" },
		{ "{\"t\":2145916800,\"type\":\"fix\",\"lat\":1,\"lon\":2}",
		  "field \"t\": expected a string, got a number" },
	};
	assert_int_equal(strlen(X64), 64);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_meta(bad[i].line, bad[i].err);
#undef X64
}

/* Every refusal names the field and the reason. */
static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		const char *err;
	} cases[] = {
		/* framing */
		{ "", "empty line: not a JSON object" },
		{ "   ", "empty line: not a JSON object" },
		{ "[1,2]", "not a JSON object" },
		{ "42", "not a JSON object" },
		{ "\"t\"", "not a JSON object" },
		{ "{\"type\":\"tick\"", "not a JSON object: syntax error at byte 14" },
		{ "{\"type\":\"tick\",}", "not a JSON object: syntax error at byte 16" },
		{ "{" T0 ",\"type\":\"tick\"} {}", "trailing characters after the JSON object at byte 44" },
		/* type */
		{ "{" T0 "}", "field \"type\": missing" },
		{ "{" T0 ",\"type\":7}", "field \"type\": expected a string, got a number" },
		{ "{" T0 ",\"type\":\"teleport\"}", "field \"type\": unknown event type \"teleport\"" },
		{ "{" T0 ",\"type\":\"APP\",\"event\":\"online\"}", "field \"type\": unknown event type \"APP\"" },
		/* unknown and repeated fields */
		{ "{" T0 ",\"type\":\"app\",\"event\":\"online\",\"speed\":3}",
		  "field \"speed\": unknown field for type \"app\"" },
		{ "{" T0 ",\"type\":\"tick\",\"Lat\":1}", "field \"Lat\": unknown field for type \"tick\"" },
		{ "{" T0 ",\"type\":\"restart\",\"event\":\"x\"}",
		  "field \"event\": unknown field for type \"restart\"" },
		{ "{" T0 ",\"type\":\"ignition\",\"on\":true,\"mock\":true}",
		  "field \"mock\": unknown field for type \"ignition\"" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":1,\"lon\":2,\"lat\":3}", "field \"lat\": appears more than once" },
		{ "{" T0 "," T0 ",\"type\":\"tick\"}", "field \"t\": appears more than once" },
		{ "{" T0 ",\"type\":\"tick\",\"bad\\u0001name\":1}",
		  "field \"bad\\x01name\": unknown field for type \"tick\"" },
		/* t */
		{ "{\"type\":\"tick\"}", "field \"t\": missing" },
		{ "{\"t\":1795856400,\"type\":\"tick\"}", "field \"t\": expected a string, got a number" },
		{ "{\"t\":\"2026-13-01T00:00:00Z\",\"type\":\"tick\"}",
		  "field \"t\": \"2026-13-01T00:00:00Z\" is not an RFC 3339 UTC time" },
		{ "{\"t\":\"2026-02-30T00:00:00Z\",\"type\":\"tick\"}",
		  "field \"t\": \"2026-02-30T00:00:00Z\" is not an RFC 3339 UTC time" },
		/* tq and clock_step */
		{ "{" T0 ",\"type\":\"tick\",\"tq\":\"gps\"}",
		  "field \"tq\": unknown time quality \"gps\" (gnss, ntp, rtc or unsynced)" },
		{ "{" T0 ",\"type\":\"tick\",\"tq\":null}", "field \"tq\": expected a string, got null" },
		{ "{" T0 ",\"type\":\"tick\",\"clock_step\":1}",
		  "field \"clock_step\": expected true or false, got a number" },
		/* app */
		{ "{" T0 ",\"type\":\"app\"}", "field \"event\": missing" },
		{ "{" T0 ",\"type\":\"app\",\"event\":\"job_acepted\"}",
		  "field \"event\": unknown app event \"job_acepted\"" },
		{ "{" T0 ",\"type\":\"app\",\"event\":[]}", "field \"event\": expected a string, got an array" },
		{ "{" T0 ",\"type\":\"app\",\"event\":\"online\",\"mock\":\"yes\"}",
		  "field \"mock\": expected true or false, got a string" },
		/* fix */
		{ "{" T0 ",\"type\":\"fix\",\"lon\":0}", "field \"lat\": missing" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0}", "field \"lon\": missing" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":91.2,\"lon\":0}", "field \"lat\": 91.2 is out of range [-90, 90]" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":-90.000001,\"lon\":0}",
		  "field \"lat\": -90.000001 is out of range [-90, 90]" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":180.5}", "field \"lon\": 180.5 is out of range [-180, 180]" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":-181}", "field \"lon\": -181 is out of range [-180, 180]" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":1e999,\"lon\":0}", "field \"lat\": inf is not a finite number" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":\"51.5\",\"lon\":0}", "field \"lat\": expected a number, got a string" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":null,\"lon\":0}", "field \"lat\": expected a number, got null" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"speed\":-0.5}",
		  "field \"speed\": -0.5 is out of range (must be >= 0)" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"speed\":true}",
		  "field \"speed\": expected a number, got a boolean" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"course\":360}",
		  "field \"course\": 360 is out of range [0, 360)" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"course\":-1}",
		  "field \"course\": -1 is out of range [0, 360)" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"eph\":-3}",
		  "field \"eph\": -3 is out of range (must be >= 0)" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"mode\":0}", "field \"mode\": 0 is out of range [1, 3]" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"mode\":4}", "field \"mode\": 4 is out of range [1, 3]" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"mode\":2.5}",
		  "field \"mode\": 2.5 is not an integer (1, 2 or 3)" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"mode\":\"3d\"}",
		  "field \"mode\": expected a number, got a string" },
		{ "{" T0 ",\"type\":\"fix\",\"lat\":0,\"lon\":0,\"mock\":1}",
		  "field \"mock\": expected true or false, got a number" },
		/* policy */
		{ "{" T0 ",\"type\":\"policy\"}", "field \"event\": missing" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"grant\"}",
		  "field \"event\": unknown policy event \"grant\" (assign or revoke)" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"assign\"}", "field \"policy_id\": missing" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"\"}", "field \"policy_id\": is empty" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":5}",
		  "field \"policy_id\": expected a string, got a number" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":"
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		  "field \"policy_id\": is 48 characters long (limit 47)" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"P-1\",\"driver_id\":\"D\\n1\"}",
		  "field \"driver_id\": character 2 (\\x0a) is not printable ASCII" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"P-1\",\"vehicle_id\":\"V\\u00e91\"}",
		  "field \"vehicle_id\": character 2 (\\xc3) is not printable ASCII" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"revoke\",\"driver_id\":\"D-1\"}",
		  "field \"driver_id\": not allowed with \"event\": \"revoke\"" },
		{ "{" T0 ",\"type\":\"policy\",\"event\":\"revoke\",\"vehicle_id\":\"V-1\"}",
		  "field \"vehicle_id\": not allowed with \"event\": \"revoke\"" },
		/* ignition, power, cmd */
		{ "{" T0 ",\"type\":\"ignition\"}", "field \"on\": missing" },
		{ "{" T0 ",\"type\":\"ignition\",\"on\":\"on\"}", "field \"on\": expected true or false, got a string" },
		{ "{" T0 ",\"type\":\"power\"}", "field \"event\": missing" },
		{ "{" T0 ",\"type\":\"power\",\"event\":\"off\"}",
		  "field \"event\": unknown power event \"off\" (low, shutdown or restored)" },
		{ "{" T0 ",\"type\":\"cmd\",\"event\":\"end\"}", "field \"event\": unknown command \"end\" (end_cover)" },
		{ "{" T0 ",\"type\":\"cmd\"}", "field \"event\": missing" },
		/* hostile values are shown escaped and cut */
		{ "{" T0 ",\"type\":\"app\",\"event\":\"a\\nb\\\"c\"}",
		  "field \"event\": unknown app event \"a\\x0ab\\\"c\"" },
		{ "{" T0 ",\"type\":\"app\",\"event\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		  "field \"event\": unknown app event "
		  "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad_line(cases[i].line, 1, cases[i].err);

	/* A NUL byte inside the given length is not the end of the line. */
	struct engine_event ev;
	enum evjson_kind kind;
	char err[256];
	static const char nul[] = "{\"t\":\"2026-11-28T09:00:00Z\",\"type\":\"tick\"}\0{}";
	assert_int_equal(evjson_parse(nul, sizeof(nul) - 1, 1, &ev, &kind, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "trailing characters"));
}

/*
 * Malformed input never crashes or leaves err unterminated: every prefix of valid lines,
 * and many random byte changes, give 0 or -EINVAL. Run under ASan and valgrind by the
 * suite, this is a small deterministic fuzz of the socket's input path.
 */
static void test_mutations(void **state)
{
	(void)state;
	static const char *const seeds[] = {
		"{" T0 ",\"type\":\"fix\",\"lat\":51.5,\"lon\":-0.12,\"speed\":5.2,\"course\":90,"
		"\"eph\":6,\"mode\":3,\"mock\":false,\"tq\":\"ntp\",\"clock_step\":true}",
		"{" T0 ",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"P-1\","
		"\"driver_id\":\"D-1\",\"vehicle_id\":\"V-1\"}",
		"{\"t\":\"2026-11-28T09:00:00.250+01:00\",\"type\":\"app\",\"event\":\"job_accepted\"}",
		"{" T0 ",\"type\":\"app\",\"event\":\"job_delivered\",\"job_id\":\"o-1\",\"id\":\"r-1\"}",
	};
	char buf[512], err[128];
	struct engine_event ev;
	enum evjson_kind kind;
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t len = strlen(seeds[i]);
		assert_true(len < sizeof(buf));
		for (size_t cut = 0; cut <= len; cut++) {
			memcpy(buf, seeds[i], cut);
			int r = evjson_parse(buf, cut, 1, &ev, &kind, err, sizeof(err));
			assert_true(r == 0 ? cut == len : r == -EINVAL);
			assert_true(memchr(err, '\0', sizeof(err)) != NULL);
		}
		for (int round = 0; round < 20000; round++) {
			memcpy(buf, seeds[i], len + 1);
			int flips = 1 + (int)(rng() % 3);
			for (int f = 0; f < flips; f++)
				buf[rng() % len] = (char)(rng() & 0xff);
			memset(err, 'x', sizeof(err));
			int r = evjson_parse(buf, len, (int)(rng() & 1), &ev, &kind, err, sizeof(err));
			assert_true(r == 0 || r == -EINVAL);
			assert_true(memchr(err, '\0', sizeof(err)) != NULL);
			if (r == 0)
				assert_true(kind == EVJSON_ENGINE || kind == EVJSON_RESTART);
			else
				assert_true(err[0] != '\0');
		}
	}
}

/* ------------------------------------------------------------ the documentation */

/*
 * Reads docs/scenario-format.md: every line of a ```jsonl block must parse, and every
 * input of an ```errors block must be refused with the reason written under it.
 */
static void test_doc_examples(void **state)
{
	(void)state;
	const char *path = COVERD_SOURCE_DIR "/docs/scenario-format.md";
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	char line[4096], input[4096] = "";
	enum { NONE, JSONL, ERRORS } block = NONE;
	int n_ok = 0, n_err = 0, lineno = 0;
	bool pending = false;
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "```", 3) == 0) {
			if (pending)
				fail_msg("%s:%d: error example without an expected reason", path, lineno);
			if (block != NONE)
				block = NONE;
			else if (strcmp(line, "```jsonl") == 0)
				block = JSONL;
			else if (strcmp(line, "```errors") == 0)
				block = ERRORS;
			continue;
		}
		struct engine_event ev;
		enum evjson_kind kind;
		char err[256];
		if (block == JSONL) {
			if (parse(line, 1, &ev, &kind, err, sizeof(err)) != 0)
				fail_msg("%s:%d: example refused: %s", path, lineno, err);
			n_ok++;
		} else if (block == ERRORS) {
			if (strncmp(line, "  -> ", 5) == 0) {
				if (!pending)
					fail_msg("%s:%d: reason without an input line", path, lineno);
				bad_line(input, 1, line + 5);
				pending = false;
				n_err++;
			} else {
				snprintf(input, sizeof(input), "%s", line);
				pending = true;
			}
		}
	}
	fclose(fp);
	/* The document holds examples of every type and a dozen errors; finding none
	 * would mean the fences changed and this test silently stopped testing. */
	assert_true(n_ok >= 19);
	assert_true(n_err >= 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_known_values),
		cmocka_unit_test(test_time_invalid),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_time_round_trip_and_oracle),
		cmocka_unit_test(test_time_leap_years),
		cmocka_unit_test(test_app_events),
		cmocka_unit_test(test_fix_full_and_defaults),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_other_types),
		cmocka_unit_test(test_common_fields),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_job_id_and_request_id),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_doc_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
