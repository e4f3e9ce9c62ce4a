/*
 * test_sync_proto.c - the checks of inbound ack and cmd payloads (sync/proto.c): what is
 * accepted, and that every malformed, oversized or unknown-version payload is refused
 * whole with the reason that names its counter.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

static int ack(const char *p, int64_t *upto, const char **reason)
{
	char why[160];
	*reason = NULL;
	return sync_proto_ack(p, strlen(p), upto, reason, why, sizeof(why));
}

static void test_ack_good(void **state)
{
	(void)state;
	int64_t u = -1;
	const char *r;
	assert_int_equal(ack("{\"v\":1,\"upto\":42}", &u, &r), 0);
	assert_int_equal(u, 42);
	assert_int_equal(ack("{\"v\":1,\"upto\":0}", &u, &r), 0);
	assert_int_equal(u, 0);
	assert_int_equal(ack("{\"upto\":9007199254740991,\"v\":1}", &u, &r), 0);
	assert_int_equal(u, 9007199254740991LL);
	/* Unknown members are a compatible change and are ignored. */
	assert_int_equal(ack("{\"v\":1,\"upto\":7,\"ingest\":\"i-2\"}", &u, &r), 0);
	assert_int_equal(u, 7);
	assert_int_equal(ack(" {\"v\":1,\"upto\":3} ", &u, &r), 0);
	assert_int_equal(ack("{\"v\":1,\"upto\":4}\r\n", &u, &r), 0);
	assert_int_equal(u, 4);
	/* Valid UTF-8 of every length is fine. */
	assert_int_equal(ack("{\"v\":1,\"upto\":5,\"ingest\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\x9a\"}", &u, &r), 0);
	assert_int_equal(u, 5);
}

static void test_ack_bad(void **state)
{
	(void)state;
	static const struct {
		const char *payload;
		int code;
		const char *reason;
	} cases[] = {
		{ "", -EINVAL, "malformed" },
		{ "not json", -EINVAL, "malformed" },
		{ "[1,2]", -EINVAL, "malformed" },
		{ "42", -EINVAL, "malformed" },
		{ "{\"v\":1}", -EINVAL, "malformed" },
		{ "{\"upto\":3}", -EINVAL, "malformed" },
		{ "{\"v\":\"1\",\"upto\":3}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":\"3\"}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":-1}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":2.5}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":1e300}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":9007199254740992}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":null}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":3", -EINVAL, "malformed" },
		{ "{\"v\":2,\"upto\":3}", -EPROTO, "unsupported_version" },
		{ "{\"v\":0,\"upto\":3}", -EPROTO, "unsupported_version" },
		/* Strictness (issue 7): each of these once marked records delivered. */
		{ "{\"v\":1,\"upto\":3}x", -EINVAL, "malformed" },              /* trailing bytes */
		{ "{\"v\":1,\"upto\":3}{\"v\":1,\"upto\":900}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":3,\"upto\":900}", -EINVAL, "malformed" },  /* duplicate key */
		{ "{\"v\":1,\"v\":1,\"upto\":3}", -EINVAL, "malformed" },
		{ "{\"v\":1,\"upto\":3,\"i\":\"\xff\"}", -EINVAL, "malformed" },  /* not UTF-8 */
		{ "{\"v\":1,\"upto\":3,\"i\":\"\xc0\xaf\"}", -EINVAL, "malformed" },  /* overlong */
		{ "{\"v\":1,\"upto\":3,\"i\":\"\xed\xa0\x80\"}", -EINVAL, "malformed" }, /* surrogate */
		{ "{\"v\":1,\"upto\":3,\"i\":\"\xe2\x82\"}", -EINVAL, "malformed" },  /* truncated */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t u = -77;
		const char *r;
		int rc = ack(cases[i].payload, &u, &r);
		if (rc != cases[i].code || r == NULL || strcmp(r, cases[i].reason) != 0)
			fail_msg("ack %s: got %d %s, want %d %s", cases[i].payload, rc, r ? r : "(null)",
			         cases[i].code, cases[i].reason);
		assert_int_equal(u, -77);   /* nothing is applied in part */
	}
	/* Over 256 bytes is refused before it is parsed, even when it is valid JSON. */
	char big[400];
	int n = snprintf(big, sizeof(big), "{\"v\":1,\"upto\":5,\"pad\":\"");
	memset(big + n, 'x', 300);
	snprintf(big + n + 300, sizeof(big) - (size_t)n - 300, "\"}");
	int64_t u = -77;
	const char *r;
	assert_int_equal(ack(big, &u, &r), -EINVAL);
	assert_string_equal(r, "oversized");
	assert_int_equal(u, -77);
	/* A payload with a NUL inside is not JSON. */
	char why[64];
	assert_int_equal(sync_proto_ack("{\"v\":1,\0\"upto\":1}", 18, &u, &r, why, sizeof(why)),
	                 -EINVAL);
}

static int cmd(const char *p, struct sync_cmd *c, const char **reason)
{
	char why[200];
	*reason = NULL;
	return sync_proto_cmd(p, strlen(p), c, reason, why, sizeof(why));
}

static void test_cmd_good(void **state)
{
	(void)state;
	struct sync_cmd c;
	const char *r;
	assert_int_equal(cmd("{\"v\":1,\"id\":\"c-7f3a\",\"cmd\":\"policy_assign\",\"policy_id\":"
	                     "\"pol-1\",\"driver_id\":\"drv-1\",\"vehicle_id\":\"veh-9\"}", &c, &r), 0);
	assert_true(c.have_id);
	assert_string_equal(c.id, "c-7f3a");
	assert_int_equal(c.type, SYNC_CMD_POLICY_ASSIGN);
	assert_string_equal(c.policy_id, "pol-1");
	assert_string_equal(c.driver_id, "drv-1");
	assert_string_equal(c.vehicle_id, "veh-9");
	assert_false(c.have_expires);

	assert_int_equal(cmd("{\"v\":1,\"id\":\"a:b.c_d-1\",\"cmd\":\"policy_assign\",\"policy_id\":"
	                     "\"p\",\"driver_id\":\"d\",\"vehicle_id\":null}", &c, &r), 0);
	assert_string_equal(c.vehicle_id, "");
	assert_int_equal(cmd("{\"v\":1,\"id\":\"x\",\"cmd\":\"policy_revoke\",\"policy_id\":\"p\"}",
	                     &c, &r), 0);
	assert_int_equal(c.type, SYNC_CMD_POLICY_REVOKE);
	assert_int_equal(cmd("{\"v\":1,\"id\":\"x\",\"cmd\":\"end_cover\",\"t\":\"2026-11-28T09:00:00Z\","
	                     "\"expires\":\"2026-11-28T09:05:00Z\"}", &c, &r), 0);
	assert_int_equal(c.type, SYNC_CMD_END_COVER);
	assert_true(c.have_expires);
	assert_int_equal(c.expires_ms, 1795856700000LL);
	assert_int_equal(cmd("{\"v\":1,\"id\":\"x\",\"cmd\":\"ping\",\"extra\":[1,2]}", &c, &r), 0);
	assert_int_equal(c.type, SYNC_CMD_PING);
	assert_int_equal(cmd("{\"v\":1,\"id\":\"x\",\"cmd\":\"config\",\"set\":{\"engine.gap_end\":"
	                     "\"5m\",\"engine.max_eph\":30,\"engine.trigger\":\"online\"}}", &c, &r), 0);
	assert_int_equal(c.type, SYNC_CMD_CONFIG);
	assert_int_equal(c.n_set, 3);
	assert_string_equal(c.set[0].key, "engine.gap_end");
	assert_string_equal(c.set[0].value, "\"5m\"");
	assert_string_equal(c.set[1].value, "30");
	assert_string_equal(c.set[2].key, "engine.trigger");
}

static void test_cmd_bad(void **state)
{
	(void)state;
	static const struct {
		const char *payload;
		int code;
		const char *reason;
		bool have_id;
	} cases[] = {
		{ "", -EINVAL, "malformed", false },
		{ "{", -EINVAL, "malformed", false },
		{ "[]", -EINVAL, "malformed", false },
		{ "{\"id\":\"a\",\"cmd\":\"ping\"}", -EINVAL, "malformed", true },
		{ "{\"v\":2,\"id\":\"a\",\"cmd\":\"ping\"}", -EPROTO, "unsupported_version", true },
		{ "{\"v\":2,\"cmd\":\"ping\"}", -EPROTO, "unsupported_version", false },
		{ "{\"v\":1,\"cmd\":\"ping\"}", -EINVAL, "malformed", false },
		{ "{\"v\":1,\"id\":\"\",\"cmd\":\"ping\"}", -EINVAL, "malformed", false },
		{ "{\"v\":1,\"id\":\"a b\",\"cmd\":\"ping\"}", -EINVAL, "malformed", false },
		{ "{\"v\":1,\"id\":7,\"cmd\":\"ping\"}", -EINVAL, "malformed", false },
		{ "{\"v\":1,\"id\":\"12345678901234567890123456789012345678901234567890123456789012345\","
		  "\"cmd\":\"ping\"}", -EINVAL, "malformed", false },
		{ "{\"v\":1,\"id\":\"a\"}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":5}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"reboot\"}", -ENOTSUP, "unknown", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"ping\",\"expires\":\"tomorrow\"}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"ping\",\"t\":5}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"policy_assign\",\"policy_id\":\"p\"}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"policy_assign\",\"policy_id\":\"\",\"driver_id\":\"d\"}",
		  -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"policy_assign\",\"policy_id\":\"p\",\"driver_id\":\"d\","
		  "\"vehicle_id\":3}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"policy_assign\",\"policy_id\":"
		  "\"123456789012345678901234567890123456789012345678\",\"driver_id\":\"d\"}",
		  -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"policy_revoke\"}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\"}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{}}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":[1]}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{\"gap_end\":1}}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{\"Engine.gap_end\":1}}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{\"engine.gap_end\":null}}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{\"engine.gap_end\":{\"x\":1}}}", -EINVAL, "malformed", true },
		{ "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{\"engine.gap_end\":1,\"engine.gap_end\":2}}",
		  -EINVAL, "malformed", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sync_cmd c;
		const char *r;
		int rc = cmd(cases[i].payload, &c, &r);
		if (rc != cases[i].code || r == NULL || strcmp(r, cases[i].reason) != 0 ||
		    c.have_id != cases[i].have_id)
			fail_msg("cmd %s: got %d %s id %d, want %d %s id %d", cases[i].payload, rc,
			         r ? r : "(null)", c.have_id, cases[i].code, cases[i].reason,
			         cases[i].have_id);
	}
	/* Over 4 KiB: refused unread. */
	size_t n = SYNC_CMD_MAX + 1;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "{\"v\":1,\"id\":\"a\",\"cmd\":\"ping\"}", 29);
	big[n] = '\0';
	struct sync_cmd c;
	const char *r;
	assert_int_equal(cmd(big, &c, &r), -EINVAL);
	assert_string_equal(r, "oversized");
	assert_false(c.have_id);
	/* Exactly 4 KiB is still a command. */
	big[SYNC_CMD_MAX] = '\0';
	assert_int_equal(cmd(big, &c, &r), 0);
	free(big);
	/* Seventeen config keys are more than a command may set. */
	char many[2048];
	int k = snprintf(many, sizeof(many), "{\"v\":1,\"id\":\"a\",\"cmd\":\"config\",\"set\":{");
	for (int i = 0; i < SYNC_CONFIG_KEYS_MAX + 1; i++)
		k += snprintf(many + k, sizeof(many) - (size_t)k, "%s\"engine.k%c\":1", i ? "," : "",
		              'a' + i);
	snprintf(many + k, sizeof(many) - (size_t)k, "}}");
	assert_int_equal(cmd(many, &c, &r), -EINVAL);
	assert_string_equal(r, "malformed");
	/* A NUL inside is refused, not skipped like white space. */
	char why[64];
	assert_int_equal(sync_proto_cmd("{\"v\":1,\"id\":\"a\",\0\"cmd\":\"ping\"}", 29, &c, &r,
	                                why, sizeof(why)), -EINVAL);
	assert_string_equal(r, "malformed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ack_good),
		cmocka_unit_test(test_ack_bad),
		cmocka_unit_test(test_cmd_good),
		cmocka_unit_test(test_cmd_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
