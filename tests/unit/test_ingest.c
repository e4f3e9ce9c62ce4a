/*
 * test_ingest.c - unit tests of tools/ingest_core.c, the reference ingest's checks and
 * storage, on a real SQLite file and real signatures (sync/sign.c), without a broker.
 * Every rejection reason, duplicates, holding and chaining out-of-order records, the
 * acknowledgement values and the billing report.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "ingest_core.h"
#include "sign.h"

#define DAY0 "2024-05-01"

struct dev {
	const char *id;
	struct sign_key *key;
	char prev[SIGN_SHA256_HEX_LEN + 1]; /* hash of the last body made by next_body */
	int64_t seq;
};

struct fx {
	char dir[256];
	char db_path[PATH_MAX];
	struct ingest_db *db;
	struct dev a, b;
};

static void
new_dev(struct fx *f, struct dev *d, const char *id, bool enroll)
{
	char path[PATH_MAX], err[256], pem[SIGN_PUBLIC_PEM_MAX];

	memset(d, 0, sizeof(*d));
	d->id = id;
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, id);
	assert_int_equal(sign_key_load_or_create(path, &d->key, err, sizeof(err)), 1);
	memset(d->prev, '0', SIGN_SHA256_HEX_LEN);
	if (enroll) {
		assert_int_equal(sign_public_pem(d->key, pem, sizeof(pem)), 0);
		assert_int_equal(ingest_enroll(f->db, id, pem, strlen(pem), false, err, sizeof(err)), 0);
	}
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char err[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_ingest.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db_path, sizeof(f->db_path), "%s/ingest.db", f->dir);
	assert_int_equal(ingest_db_open(f->db_path, true, &f->db, err, sizeof(err)), 0);
	new_dev(f, &f->a, "dev-a", true);
	new_dev(f, &f->b, "dev-b", true);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX + 16];

	ingest_db_close(f->db);
	sign_key_free(f->a.key);
	sign_key_free(f->b.key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- records as the device's store writes them ---- */

struct act {
	const char *event, *session, *policy, *start, *end, *end_reason;
	int index, revision;
};

/* The record body as a cJSON object, keys in the documented order. */
static cJSON *
body_json(const struct dev *d, int64_t seq, const char *prev, const struct act *a)
{
	cJSON *b = cJSON_CreateObject(), *pos, *an;
	char id[160];

	snprintf(id, sizeof(id), "%s-%d", a->session, a->index);
	assert_non_null(b);
	cJSON_AddNumberToObject(b, "v", 1);
	cJSON_AddStringToObject(b, "kind", "activation");
	cJSON_AddStringToObject(b, "event", a->event);
	cJSON_AddNumberToObject(b, "seq", (double)seq);
	cJSON_AddStringToObject(b, "prev_hash", prev);
	cJSON_AddStringToObject(b, "device_id", d->id);
	cJSON_AddStringToObject(b, "id", id);
	cJSON_AddNumberToObject(b, "revision", a->revision);
	cJSON_AddStringToObject(b, "session_id", a->session);
	cJSON_AddNumberToObject(b, "index", a->index);
	cJSON_AddStringToObject(b, "policy_id", a->policy);
	cJSON_AddStringToObject(b, "driver_id", "drv-1");
	cJSON_AddNullToObject(b, "vehicle_id");
	cJSON_AddStringToObject(b, "start", a->start);
	if (a->end)
		cJSON_AddStringToObject(b, "end", a->end);
	else
		cJSON_AddNullToObject(b, "end");
	if (a->end_reason)
		cJSON_AddStringToObject(b, "end_reason", a->end_reason);
	else
		cJSON_AddNullToObject(b, "end_reason");
	cJSON_AddNumberToObject(b, "distance_m", 812.25);
	cJSON_AddNumberToObject(b, "moving_s", 900);
	cJSON_AddNumberToObject(b, "jobs", 1);
	pos = cJSON_AddObjectToObject(b, "start_pos");
	cJSON_AddNumberToObject(pos, "lat", 48.1);
	cJSON_AddNumberToObject(pos, "lon", 11.5);
	if (a->end) {
		pos = cJSON_AddObjectToObject(b, "end_pos");
		cJSON_AddNumberToObject(pos, "lat", 48.2);
		cJSON_AddNumberToObject(pos, "lon", 11.6);
	} else {
		cJSON_AddNullToObject(b, "end_pos");
	}
	cJSON_AddStringToObject(b, "time_quality", "gnss");
	an = cJSON_AddArrayToObject(b, "anomalies");
	cJSON_AddItemToArray(an, cJSON_CreateString("clock_step"));
	return b;
}

/* A signed envelope of body (exact bytes) for seq; caller frees. */
static char *
envelope(const struct dev *d, const char *dev_id, int64_t seq, const char *body, size_t blen)
{
	unsigned char sig[SIGN_SIG_MAX];
	char sig64[SIGN_B64_SIZE(SIGN_SIG_MAX)], *body64, *out;
	size_t slen, cap = SIGN_B64_SIZE(blen);
	cJSON *e;

	assert_int_equal(sign_body(d->key, (const unsigned char *)body, blen, sig, sizeof(sig), &slen), 0);
	assert_int_equal(sign_b64_encode(sig, slen, sig64, sizeof(sig64), NULL), 0);
	body64 = malloc(cap);
	assert_non_null(body64);
	assert_int_equal(sign_b64_encode(body, blen, body64, cap, NULL), 0);
	e = cJSON_CreateObject();
	cJSON_AddNumberToObject(e, "v", 1);
	cJSON_AddStringToObject(e, "alg", "ES256");
	cJSON_AddStringToObject(e, "device_id", dev_id);
	cJSON_AddNumberToObject(e, "seq", (double)seq);
	cJSON_AddStringToObject(e, "body", body64);
	cJSON_AddStringToObject(e, "sig", sig64);
	out = cJSON_PrintUnformatted(e);
	assert_non_null(out);
	cJSON_Delete(e);
	free(body64);
	return out;
}

/* The next record of d: body bytes into *body (caller frees), chain advanced. */
static char *
next_body(struct dev *d, const struct act *a)
{
	cJSON *b = body_json(d, d->seq + 1, d->prev, a);
	char *s = cJSON_PrintUnformatted(b);

	cJSON_Delete(b);
	assert_non_null(s);
	d->seq++;
	assert_int_equal(sign_sha256_hex(s, strlen(s), d->prev), 0);
	return s;
}

static int
send_raw(struct fx *f, const char *dev_id, const char *payload, size_t len,
     struct ingest_result *res)
{
	char topic[128];

	snprintf(topic, sizeof(topic), "coverd/v1/%s/activations", dev_id);
	return ingest_handle(f->db, topic, payload, len, 1714550400000LL, res);
}

/* Sends body as seq from d on d's topic; returns the outcome. */
static enum ingest_outcome
send_body(struct fx *f, struct dev *d, int64_t seq, const char *body, struct ingest_result *res)
{
	char *env = envelope(d, d->id, seq, body, strlen(body));

	assert_int_equal(send_raw(f, d->id, env, strlen(env), res), 0);
	cJSON_free(env);
	return res->outcome;
}

static const struct act opened0 = { "opened", "dev-a-20240501T080000Z-1", "pol-1",
	                            "2024-05-01T08:00:00Z", NULL, NULL, 0, 1 };

static struct act
hour(const char *session, const char *policy, int index, int revision, const char *start,
     const char *end)
{
	struct act a = { revision == 1 ? "opened" : "closed", session, policy, start, end,
		         end ? "hour" : NULL, index, revision };
	return a;
}

static int64_t
rows(struct fx *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t n = -1;

	assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

static bool
stored_body_is(struct fx *f, const char *dev, int64_t seq, const char *body)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	bool same = false;

	assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT body FROM records WHERE device_id = ?1 "
	                                    "AND seq = ?2", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, dev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, seq);
	if (sqlite3_step(s) == SQLITE_ROW)
		same = (size_t)sqlite3_column_bytes(s, 0) == strlen(body) &&
		       memcmp(sqlite3_column_blob(s, 0), body, strlen(body)) == 0;
	sqlite3_finalize(s);
	sqlite3_close(db);
	return same;
}

/* ---- tests ---- */

static void
test_store_in_order_and_ack(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	struct act a1 = hour("dev-a-20240501T080000Z-1", "pol-1", 0, 2, "2024-05-01T08:00:00Z",
	                     "2024-05-01T09:00:00Z");
	struct act a2 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 1, "2024-05-01T09:00:00Z", NULL);
	char *b1 = next_body(&f->a, &opened0), *b2 = next_body(&f->a, &a1), *b3 = next_body(&f->a, &a2);

	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_STORED);
	assert_true(res.ack);
	assert_int_equal(res.ack_upto, 1);
	assert_string_equal(res.device_id, "dev-a");
	assert_int_equal(res.seq, 1);
	assert_int_equal(send_body(f, &f->a, 2, b2, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 2);
	assert_int_equal(send_body(f, &f->a, 3, b3, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 3);
	assert_int_equal(ingest_counter(f->db, "stored"), 3);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM activations"), 3);
	/* The stored body is the exact bytes signed. */
	assert_true(stored_body_is(f, "dev-a", 2, b2));

	/* A validly signed seq 4 that does not chain to the stored seq 3. */
	{
		struct act a4 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 2, "2024-05-01T09:00:00Z",
		                     "2024-05-01T10:00:00Z");
		cJSON *j = body_json(&f->a, 4, "3333333333333333333333333333333333333333333333333333333333333333", &a4);
		char *b4 = cJSON_PrintUnformatted(j);
		cJSON_Delete(j);
		assert_int_equal(send_body(f, &f->a, 4, b4, &res), INGEST_REJECTED);
		assert_string_equal(res.reason, "chain");
		assert_false(res.ack);
		assert_int_equal(ingest_counter(f->db, "rejected.chain"), 1);
		assert_int_equal(rows(f, "SELECT COUNT(*) FROM held"), 0);
		cJSON_free(b4);
	}

	/* The same record again: stored once, counted, acknowledged with the current upto. */
	assert_int_equal(send_body(f, &f->a, 2, b2, &res), INGEST_DUPLICATE);
	assert_true(res.ack);
	assert_int_equal(res.ack_upto, 3);
	assert_int_equal(ingest_counter(f->db, "duplicate"), 1);
	assert_int_equal(ingest_counter(f->db, "stored"), 3);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 3);
	cJSON_free(b1);
	cJSON_free(b2);
	cJSON_free(b3);
}

static void
test_hold_then_chain(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	struct act a2 = hour("dev-a-20240501T080000Z-1", "pol-1", 0, 2, "2024-05-01T08:00:00Z",
	                     "2024-05-01T09:00:00Z");
	struct act a3 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 1, "2024-05-01T09:00:00Z", NULL);
	struct act a4 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 2, "2024-05-01T09:00:00Z",
	                     "2024-05-01T10:00:00Z");
	char *b1 = next_body(&f->a, &opened0), *b2 = next_body(&f->a, &a2);
	char *b3 = next_body(&f->a, &a3), *b4 = next_body(&f->a, &a4);
	cJSON *alt;
	char *b3x;

	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_STORED);
	/* 4 and 3 arrive before 2 (another ingest has 2): held, not acknowledged. */
	assert_int_equal(send_body(f, &f->a, 4, b4, &res), INGEST_HELD);
	assert_false(res.ack);
	assert_int_equal(send_body(f, &f->a, 3, b3, &res), INGEST_HELD);
	assert_false(res.ack);
	/* A resend of a held record is a duplicate; the ack covers only what is stored. */
	assert_int_equal(send_body(f, &f->a, 3, b3, &res), INGEST_DUPLICATE);
	assert_true(res.ack);
	assert_int_equal(res.ack_upto, 1);
	/* Another body for a held seq is a rewrite. */
	alt = body_json(&f->a, 3, "00", &a3);
	cJSON_ReplaceItemInObject(alt, "prev_hash", cJSON_CreateString(
	    "1111111111111111111111111111111111111111111111111111111111111111"));
	b3x = cJSON_PrintUnformatted(alt);
	cJSON_Delete(alt);
	assert_int_equal(send_body(f, &f->a, 3, b3x, &res), INGEST_REJECTED);
	assert_string_equal(res.reason, "rewrite");
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM held"), 2);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 1);

	/* 2 arrives: stored, and 3 and 4 are chained behind it in the same transaction. */
	assert_int_equal(send_body(f, &f->a, 2, b2, &res), INGEST_STORED);
	assert_int_equal(res.promoted, 2);
	assert_int_equal(res.dropped, 0);
	assert_true(res.ack);
	assert_int_equal(res.ack_upto, 4);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM held"), 0);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 4);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM activations"), 4);
	assert_int_equal(ingest_counter(f->db, "stored"), 4);
	assert_int_equal(ingest_counter(f->db, "held"), 2);
	cJSON_free(b1);
	cJSON_free(b2);
	cJSON_free(b3);
	cJSON_free(b4);
	cJSON_free(b3x);
}

static void
test_held_record_that_does_not_chain(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	struct act a2 = hour("dev-a-20240501T080000Z-1", "pol-1", 0, 2, "2024-05-01T08:00:00Z",
	                     "2024-05-01T09:00:00Z");
	struct act a3 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 1, "2024-05-01T09:00:00Z", NULL);
	char *b1 = next_body(&f->a, &opened0), *b2 = next_body(&f->a, &a2);
	char *b3 = next_body(&f->a, &a3), *bad3;
	cJSON *j;

	/* A seq 3 that claims another predecessor, held before seq 2 arrives. */
	j = body_json(&f->a, 3, "2222222222222222222222222222222222222222222222222222222222222222", &a3);
	bad3 = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_STORED);
	assert_int_equal(send_body(f, &f->a, 3, bad3, &res), INGEST_HELD);
	assert_int_equal(send_body(f, &f->a, 2, b2, &res), INGEST_STORED);
	assert_int_equal(res.promoted, 0);
	assert_int_equal(res.dropped, 1);
	assert_int_equal(res.ack_upto, 2);
	assert_int_equal(ingest_counter(f->db, "rejected.chain"), 1);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM held"), 0);
	/* The device resends the real seq 3, which chains. */
	assert_int_equal(send_body(f, &f->a, 3, b3, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 3);
	cJSON_free(b1);
	cJSON_free(b2);
	cJSON_free(b3);
	cJSON_free(bad3);
}

static void
test_hold_limit_is_a_gap(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	struct act a2 = hour("dev-a-20240501T080000Z-1", "pol-1", 0, 2, "2024-05-01T08:00:00Z",
	                     "2024-05-01T09:00:00Z");
	struct act a3 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 1, "2024-05-01T09:00:00Z", NULL);
	struct act a4 = hour("dev-a-20240501T080000Z-1", "pol-1", 1, 2, "2024-05-01T09:00:00Z",
	                     "2024-05-01T10:00:00Z");
	char *b1 = next_body(&f->a, &opened0), *b2 = next_body(&f->a, &a2);
	char *b3 = next_body(&f->a, &a3), *b4 = next_body(&f->a, &a4);

	ingest_set_hold_max(f->db, 1);
	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_STORED);
	assert_int_equal(send_body(f, &f->a, 3, b3, &res), INGEST_HELD);
	assert_int_equal(send_body(f, &f->a, 4, b4, &res), INGEST_REJECTED);
	assert_string_equal(res.reason, "gap");
	assert_false(res.ack);
	assert_int_equal(ingest_counter(f->db, "rejected.gap"), 1);
	/* Another device's holds are its own. */
	assert_int_equal(send_body(f, &f->a, 2, b2, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 3);
	assert_int_equal(send_body(f, &f->a, 4, b4, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 4);
	cJSON_free(b1);
	cJSON_free(b2);
	cJSON_free(b3);
	cJSON_free(b4);
}

/* A body mutation for the table of bad records. */
typedef void (*mutate_fn)(cJSON *b);

static void m_none(cJSON *b) { (void)b; }
static void m_body_v2(cJSON *b) { cJSON_ReplaceItemInObject(b, "v", cJSON_CreateNumber(2)); }
static void m_no_kind(cJSON *b) { cJSON_DeleteItemFromObject(b, "kind"); }
static void m_seq9(cJSON *b) { cJSON_ReplaceItemInObject(b, "seq", cJSON_CreateNumber(9)); }
static void m_dev_b(cJSON *b) { cJSON_ReplaceItemInObject(b, "device_id", cJSON_CreateString("dev-b")); }
static void m_prev_upper(cJSON *b)
{
	cJSON_ReplaceItemInObject(b, "prev_hash", cJSON_CreateString(
	    "ABCDEF0000000000000000000000000000000000000000000000000000000000"));
}
static void m_prev_nonzero(cJSON *b)
{
	cJSON_ReplaceItemInObject(b, "prev_hash", cJSON_CreateString(
	    "abcdef0000000000000000000000000000000000000000000000000000000000"));
}
static void m_event(cJSON *b) { cJSON_ReplaceItemInObject(b, "event", cJSON_CreateString("paused")); }
static void m_id(cJSON *b) { cJSON_ReplaceItemInObject(b, "id", cJSON_CreateString("dev-a-20240501T080000Z-1-7")); }
static void m_session(cJSON *b)
{
	cJSON_ReplaceItemInObject(b, "session_id", cJSON_CreateString("dev-b-20240501T080000Z-1"));
	cJSON_ReplaceItemInObject(b, "id", cJSON_CreateString("dev-b-20240501T080000Z-1-0"));
}
static void m_session_prefix(cJSON *b)
{
	/* "dev-ab-..." starts with "dev-a" but is not a session of dev-a. */
	cJSON_ReplaceItemInObject(b, "session_id", cJSON_CreateString("dev-ab-20240501T080000Z-1"));
	cJSON_ReplaceItemInObject(b, "id", cJSON_CreateString("dev-ab-20240501T080000Z-1-0"));
}
static void m_policy(cJSON *b) { cJSON_ReplaceItemInObject(b, "policy_id", cJSON_CreateString("")); }
static void m_driver(cJSON *b) { cJSON_ReplaceItemInObject(b, "driver_id", cJSON_CreateNumber(4)); }
static void m_start(cJSON *b) { cJSON_ReplaceItemInObject(b, "start", cJSON_CreateString("2024-02-30T08:00:00Z")); }
static void m_open_end(cJSON *b) { cJSON_ReplaceItemInObject(b, "end", cJSON_CreateString("2024-05-01T09:00:00Z")); }
static void m_closed_noend(cJSON *b) { cJSON_ReplaceItemInObject(b, "event", cJSON_CreateString("closed")); }
static void m_end_before(cJSON *b)
{
	cJSON_ReplaceItemInObject(b, "event", cJSON_CreateString("closed"));
	cJSON_ReplaceItemInObject(b, "end", cJSON_CreateString("2024-05-01T07:59:59Z"));
}
static void m_distance(cJSON *b) { cJSON_ReplaceItemInObject(b, "distance_m", cJSON_CreateNumber(-1)); }
static void m_jobs(cJSON *b) { cJSON_ReplaceItemInObject(b, "jobs", cJSON_CreateNumber(1.5)); }
static void m_pos(cJSON *b)
{
	cJSON *p = cJSON_GetObjectItem(b, "start_pos");
	cJSON_ReplaceItemInObject(p, "lat", cJSON_CreateNumber(91));
}
static void m_tq(cJSON *b) { cJSON_DeleteItemFromObject(b, "time_quality"); }
static void m_anom(cJSON *b)
{
	cJSON_AddItemToArray(cJSON_GetObjectItem(b, "anomalies"), cJSON_CreateNumber(1));
}
static void m_revision0(cJSON *b) { cJSON_ReplaceItemInObject(b, "revision", cJSON_CreateNumber(0)); }

static void
test_bad_bodies(void **state)
{
	static const struct {
		mutate_fn fn;
		const char *reason;
	} cases[] = {
		{ m_body_v2, "unsupported_version" }, { m_no_kind, "malformed" },
		{ m_seq9, "malformed" }, { m_dev_b, "device_mismatch" },
		{ m_prev_upper, "malformed" }, { m_prev_nonzero, "chain" },
		{ m_event, "malformed" }, { m_id, "malformed" },
		{ m_session, "device_mismatch" }, { m_session_prefix, "device_mismatch" },
		{ m_policy, "malformed" }, { m_driver, "malformed" },
		{ m_start, "malformed" }, { m_open_end, "malformed" },
		{ m_closed_noend, "malformed" }, { m_end_before, "malformed" },
		{ m_distance, "malformed" }, { m_jobs, "malformed" }, { m_pos, "malformed" },
		{ m_tq, "malformed" }, { m_anom, "malformed" }, { m_revision0, "malformed" },
	};
	struct fx *f = *state;
	struct ingest_result res;
	char counter[64], *s;
	size_t i;
	cJSON *b;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t before;

		snprintf(counter, sizeof(counter), "rejected.%s", cases[i].reason);
		before = ingest_counter(f->db, counter);
		b = body_json(&f->a, 1, "0000000000000000000000000000000000000000000000000000000000000000",
		              &opened0);
		cases[i].fn(b);
		s = cJSON_PrintUnformatted(b);
		cJSON_Delete(b);
		assert_int_equal(send_body(f, &f->a, 1, s, &res), INGEST_REJECTED);
		cJSON_free(s);
		if (strcmp(res.reason, cases[i].reason) != 0)
			fail_msg("case %zu: reason %s, expected %s (%s)", i, res.reason, cases[i].reason,
			         res.detail);
		assert_false(res.ack);
		assert_true(res.detail[0] != '\0');
		assert_int_equal(ingest_counter(f->db, counter), before + 1);
	}
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 0);
	/* The unmutated body is fine: the table's rejections come from the mutations. */
	b = body_json(&f->a, 1, "0000000000000000000000000000000000000000000000000000000000000000",
	              &opened0);
	m_none(b);
	s = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	assert_int_equal(send_body(f, &f->a, 1, s, &res), INGEST_STORED);
	cJSON_free(s);
}

static void
expect_reject(struct fx *f, const char *topic, const char *payload, size_t len,
              const char *reason)
{
	struct ingest_result res;

	assert_int_equal(ingest_handle(f->db, topic, payload, len, 0, &res), 0);
	assert_int_equal(res.outcome, INGEST_REJECTED);
	if (strcmp(res.reason, reason) != 0)
		fail_msg("%s: reason %s, expected %s (%s)", payload ? payload : "(null)", res.reason,
		         reason, res.detail);
	assert_false(res.ack);
}

static void
test_bad_envelopes(void **state)
{
	struct fx *f = *state;
	struct dev x;
	const char *t = "coverd/v1/dev-a/activations";
	char *body = next_body(&f->a, &opened0), *env, *p, *big;
	cJSON *e;

	env = envelope(&f->a, "dev-a", 1, body, strlen(body));
	expect_reject(f, "coverd/v1/dev-a/status", env, strlen(env), "malformed");
	expect_reject(f, "coverd/v1/dev a/activations", env, strlen(env), "malformed");
	expect_reject(f, "coverd/v1/dev-a/x/activations", env, strlen(env), "malformed");
	expect_reject(f, t, "", 0, "malformed");
	expect_reject(f, t, "[1,2]", 5, "malformed");
	expect_reject(f, t, "{\"v\":1", 6, "malformed");
	/* The payload is not NUL-terminated on the wire: only len bytes count. */
	expect_reject(f, t, env, strlen(env) - 1, "malformed");

	/* Field by field. */
#define MUT(stmt_, reason_) \
	do { \
		e = cJSON_Parse(env); \
		stmt_; \
		p = cJSON_PrintUnformatted(e); \
		cJSON_Delete(e); \
		expect_reject(f, t, p, strlen(p), reason_); \
		cJSON_free(p); \
	} while (0)
	MUT(cJSON_DeleteItemFromObject(e, "v"), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "v", cJSON_CreateString("1")), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "v", cJSON_CreateNumber(2)), "unsupported_version");
	MUT(cJSON_ReplaceItemInObject(e, "alg", cJSON_CreateString("none")), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "device_id", cJSON_CreateString("dev-b")), "device_mismatch");
	MUT(cJSON_ReplaceItemInObject(e, "seq", cJSON_CreateNumber(0)), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "seq", cJSON_CreateNumber(1.5)), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "seq", cJSON_CreateNumber(2)), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "body", cJSON_CreateString("e30")), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "body", cJSON_CreateString("")), "malformed");
	MUT(cJSON_ReplaceItemInObject(e, "sig", cJSON_CreateString("AAAA AAA")), "malformed");
	MUT(cJSON_DeleteItemFromObject(e, "sig"), "malformed");
	/* A signature from another key, and a valid signature over another body. */
	MUT(cJSON_ReplaceItemInObject(e, "sig", cJSON_CreateString("MEUCIQDbV1Jq")), "bad_signature");
	MUT(cJSON_ReplaceItemInObject(e, "body", cJSON_CreateString("e30=")), "bad_signature");
#undef MUT
	/* Oversized: a valid envelope padded past the limit is refused unread. */
	big = malloc(INGEST_PAYLOAD_MAX + 1);
	assert_non_null(big);
	memset(big, ' ', INGEST_PAYLOAD_MAX + 1);
	memcpy(big, env, strlen(env));
	expect_reject(f, t, big, INGEST_PAYLOAD_MAX + 1, "malformed");
	free(big);

	/* An unenrolled device, and dev-b's key signing on dev-a's topic. */
	new_dev(f, &x, "dev-x", false);
	cJSON_free(env);
	env = envelope(&x, "dev-x", 1, body, strlen(body));
	expect_reject(f, "coverd/v1/dev-x/activations", env, strlen(env), "unknown_device");
	cJSON_free(env);
	env = envelope(&f->b, "dev-a", 1, body, strlen(body));
	expect_reject(f, t, env, strlen(env), "bad_signature");
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 0);
	sign_key_free(x.key);
	cJSON_free(env);
	cJSON_free(body);
}

static void
test_unknown_kind_and_duplicate_revision(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	char *b1 = next_body(&f->a, &opened0), *b2, *b3;
	cJSON *j;

	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_STORED);
	/* A kind from a newer device: kept, chained, acknowledged, not interpreted. */
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "v", 1);
	cJSON_AddStringToObject(j, "kind", "track_summary");
	cJSON_AddNumberToObject(j, "seq", 2);
	cJSON_AddStringToObject(j, "prev_hash", f->a.prev);
	cJSON_AddStringToObject(j, "device_id", "dev-a");
	cJSON_AddNumberToObject(j, "points", 120);
	b2 = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	assert_int_equal(sign_sha256_hex(b2, strlen(b2), f->a.prev), 0);
	f->a.seq = 2;
	assert_int_equal(send_body(f, &f->a, 2, b2, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 2);
	assert_int_equal(ingest_counter(f->db, "unknown_kind"), 1);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM activations"), 1);
	/* The same activation revision again under a new seq: chained, not stored twice. */
	b3 = next_body(&f->a, &opened0);
	assert_int_equal(send_body(f, &f->a, 3, b3, &res), INGEST_STORED);
	assert_int_equal(res.ack_upto, 3);
	assert_int_equal(ingest_counter(f->db, "duplicate_revision"), 1);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM activations"), 1);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 3);
	cJSON_free(b1);
	cJSON_free(b2);
	cJSON_free(b3);
}

static void
test_enroll_and_rotate(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	char pem[SIGN_PUBLIC_PEM_MAX], err[256];
	char *b1 = next_body(&f->a, &opened0);

	/* dev-b's key for dev-a: refused without --replace, then rotated. */
	assert_int_equal(sign_public_pem(f->b.key, pem, sizeof(pem)), 0);
	assert_int_equal(ingest_enroll(f->db, "dev-a", pem, strlen(pem), false, err, sizeof(err)),
	                 -EEXIST);
	assert_non_null(strstr(err, "already enrolled"));
	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_STORED);
	f->a.seq = 0; /* send seq 1 again, signed by the other key after rotation */
	assert_int_equal(ingest_enroll(f->db, "dev-a", pem, strlen(pem), true, err, sizeof(err)), 0);
	/* The cached old key is not used any more: dev-a's old key no longer verifies. */
	assert_int_equal(send_body(f, &f->a, 1, b1, &res), INGEST_REJECTED);
	assert_string_equal(res.reason, "bad_signature");
	{
		char *env = envelope(&f->b, "dev-a", 1, b1, strlen(b1));
		assert_int_equal(send_raw(f, "dev-a", env, strlen(env), &res), 0);
		assert_int_equal(res.outcome, INGEST_DUPLICATE);
		cJSON_free(env);
	}
	/* Bad ids and keys. */
	assert_int_equal(ingest_enroll(f->db, "dev/a", pem, strlen(pem), false, err, sizeof(err)), -EINVAL);
	assert_int_equal(ingest_enroll(f->db, "", pem, strlen(pem), false, err, sizeof(err)), -EINVAL);
	assert_int_equal(ingest_enroll(f->db, "dev-c", "junk", 4, false, err, sizeof(err)), -EBADMSG);
	cJSON_free(b1);
}

static void
test_batch_rollback_and_commit(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	char *b1 = next_body(&f->a, &opened0), *env = envelope(&f->a, "dev-a", 1, b1, strlen(b1));

	assert_int_equal(ingest_batch_begin(f->db), 0);
	assert_int_equal(send_raw(f, "dev-a", env, strlen(env), &res), 0);
	assert_int_equal(res.outcome, INGEST_STORED);
	assert_int_equal(res.ack_upto, 1);
	ingest_batch_rollback(f->db);
	/* A rolled-back batch leaves nothing, not even counters: its acks must not go out. */
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 0);
	assert_int_equal(ingest_counter(f->db, "stored"), 0);
	assert_int_equal(ingest_batch_begin(f->db), 0);
	assert_int_equal(send_raw(f, "dev-a", env, strlen(env), &res), 0);
	assert_int_equal(send_raw(f, "dev-a", "junk", 4, &res), 0);
	assert_int_equal(res.outcome, INGEST_REJECTED);
	/* Not visible to another connection before the commit. */
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 0);
	assert_int_equal(ingest_batch_commit(f->db), 0);
	assert_int_equal(rows(f, "SELECT COUNT(*) FROM records"), 1);
	assert_int_equal(ingest_counter(f->db, "rejected.malformed"), 1);
	cJSON_free(env);
	cJSON_free(b1);
}

struct rep {
	char lines[16][128];
	int n;
};

static int
rep_cb(void *ctx, const struct ingest_report_row *r)
{
	struct rep *rp = ctx;

	assert_true(rp->n < 16);
	snprintf(rp->lines[rp->n++], sizeof(rp->lines[0]), "%s %s %s %lld", r->device_id,
	         r->policy_id, r->day, (long long)r->hours);
	return 0;
}

static void
test_report(void **state)
{
	struct fx *f = *state;
	struct ingest_result res;
	const char *s1 = "dev-a-20240501T220000Z-1";
	struct act acts[] = {
		hour(s1, "pol-1", 0, 1, "2024-05-01T22:00:00Z", NULL),
		hour(s1, "pol-1", 0, 2, "2024-05-01T22:00:00Z", "2024-05-01T23:00:00Z"),
		hour(s1, "pol-1", 1, 1, "2024-05-01T23:00:00Z", NULL),
		hour(s1, "pol-1", 1, 2, "2024-05-01T23:00:00Z", "2024-05-02T00:00:00Z"),
		hour(s1, "pol-1", 2, 1, "2024-05-02T00:00:00Z", NULL),
		/* Activation 3 opened in a grace period, then voided by a backdated end. */
		hour(s1, "pol-1", 3, 1, "2024-05-02T01:00:00Z", NULL),
		{ "voided", s1, "pol-1", "2024-05-02T01:00:00Z", "2024-05-02T01:00:00Z", "voided", 3, 2 },
		hour("dev-a-20240502T100000Z-2", "pol-2", 0, 1, "2024-05-02T10:00:00+02:00", NULL),
	};
	struct rep rp = { .n = 0 };
	size_t i;

	for (i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		char *b = next_body(&f->a, &acts[i]);
		assert_int_equal(send_body(f, &f->a, f->a.seq, b, &res), INGEST_STORED);
		cJSON_free(b);
	}
	assert_int_equal(ingest_report(f->db, NULL, rep_cb, &rp), 0);
	assert_int_equal(rp.n, 3);
	assert_string_equal(rp.lines[0], "dev-a pol-1 2024-05-01 2");
	assert_string_equal(rp.lines[1], "dev-a pol-1 2024-05-02 1");
	/* 10:00+02:00 is 08:00 UTC, still 2024-05-02. */
	assert_string_equal(rp.lines[2], "dev-a pol-2 2024-05-02 1");
	rp.n = 0;
	assert_int_equal(ingest_report(f->db, "dev-b", rep_cb, &rp), 0);
	assert_int_equal(rp.n, 0);
}

static void
test_parse_time(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(ingest_parse_time("1970-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(ingest_parse_time("2024-05-01T08:00:00Z", &ms), 0);
	assert_int_equal(ms, 1714550400000LL);
	assert_int_equal(ingest_parse_time("2024-05-01T08:00:00.250Z", &ms), 0);
	assert_int_equal(ms, 1714550400250LL);
	assert_int_equal(ingest_parse_time("2024-05-01T08:00:00.5Z", &ms), 0);
	assert_int_equal(ms, 1714550400500LL);
	assert_int_equal(ingest_parse_time("2024-05-01T10:00:00+02:00", &ms), 0);
	assert_int_equal(ms, 1714550400000LL);
	assert_int_equal(ingest_parse_time("2024-02-29T00:00:00Z", &ms), 0);
	assert_int_equal(ingest_parse_time("2023-02-29T00:00:00Z", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time("2024-05-01 08:00:00Z", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time("2024-05-01T08:00:00", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time("2024-05-01T08:00:00Zx", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time("2024-13-01T08:00:00Z", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time("2024-05-01T24:00:00Z", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time("2024-05-01T08:00:00.Z", &ms), -EINVAL);
	assert_int_equal(ingest_parse_time(NULL, &ms), -EINVAL);
}

static void
test_device_ids(void **state)
{
	char long_id[64];

	(void)state;
	assert_true(ingest_device_id_valid("dev-a"));
	assert_true(ingest_device_id_valid("A.b_c-9"));
	assert_false(ingest_device_id_valid(""));
	assert_false(ingest_device_id_valid("dev/a"));
	assert_false(ingest_device_id_valid("dev+"));
	assert_false(ingest_device_id_valid("dev#"));
	assert_false(ingest_device_id_valid("dév"));
	memset(long_id, 'a', 47);
	long_id[47] = '\0';
	assert_true(ingest_device_id_valid(long_id));
	long_id[47] = 'a';
	long_id[48] = '\0';
	assert_false(ingest_device_id_valid(long_id));
}

static void
test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct ingest_db *db2 = NULL;
	char err[256], path[PATH_MAX];
	sqlite3 *raw;

	snprintf(path, sizeof(path), "%s/newer.db", f->dir);
	assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_int_equal(ingest_db_open(path, false, &db2, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "newer"));
	assert_null(db2);
	/* Opening without create does not make a database. */
	snprintf(path, sizeof(path), "%s/absent.db", f->dir);
	assert_int_equal(ingest_db_open(path, false, &db2, err, sizeof(err)), -EIO);
	/* Reopening the fixture's database keeps its schema and data. */
	assert_int_equal(ingest_db_open(f->db_path, false, &db2, err, sizeof(err)), 0);
	assert_int_equal(ingest_counter(db2, "enrolled"), 2);
	ingest_db_close(db2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_in_order_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_then_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_record_that_does_not_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_limit_is_a_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_envelopes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_kind_and_duplicate_revision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enroll_and_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_rollback_and_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report, setup, teardown),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_device_ids),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
