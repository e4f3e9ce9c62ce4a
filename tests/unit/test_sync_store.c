/*
 * test_sync_store.c - the store functions delivery added (daemon/store.h): the highest
 * outbox seq, dropping track detail when the outbox is at its bound, and the record of
 * backend commands (recorded in the transaction of the event a command produced, or on
 * their own with the configuration overlay). Real database files in a temporary
 * directory; events go through the real engine.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine.h"
#include "store.h"

#define T0 1795856400000LL   /* 2026-11-28T09:00:00Z */
#define MIN_MS 60000LL

struct fx {
	char dir[256];
	char db[PATH_MAX];
	struct engine_config cfg;
	struct engine_state st;
	struct engine_actions acts;
	struct store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/coverd-sync-store-XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->db, sizeof(f->db), "%s/coverd.db", f->dir);
	engine_config_defaults(&f->cfg);
	snprintf(f->cfg.device_id, sizeof(f->cfg.device_id), "dev-1");
	engine_state_init(&f->st);
	char err[512];
	if (store_open(&f->s, f->db, STORE_RW, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	DIR *d = opendir(f->dir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Runs one event through the engine and the store, as core.c does. */
static void step(struct fx *f, struct engine_event *ev)
{
	assert_int_equal(engine_step(&f->cfg, &f->st, ev, &f->acts), 0);
	bool billing = false;
	for (size_t i = 0; i < f->acts.n; i++)
		if (f->acts.a[i].type != ACTION_TRACK)
			billing = true;
	if (!billing && ev->type == COV_EV_FIX) {
		for (size_t i = 0; i < f->acts.n; i++)
			assert_int_equal(store_track_add(f->s, &f->st, f->acts.a[i].at_ms,
			                                 &f->acts.a[i].fix), 0);
		return;
	}
	assert_int_equal(store_apply(f->s, &f->cfg, ev, "test", NULL, &f->st, &f->acts), 0);
}

static void app(struct fx *f, int64_t t, enum engine_app_event e)
{
	struct engine_event ev = { .t_ms = t, .type = COV_EV_APP, .tq = TQ_GNSS };
	ev.u.app = e;
	step(f, &ev);
}

static void policy(struct fx *f, int64_t t)
{
	struct engine_event ev = { .t_ms = t, .type = COV_EV_POLICY, .tq = TQ_GNSS };
	ev.u.policy.assign = true;
	snprintf(ev.u.policy.policy_id, sizeof(ev.u.policy.policy_id), "P-1");
	snprintf(ev.u.policy.driver_id, sizeof(ev.u.policy.driver_id), "D-1");
	step(f, &ev);
}

static void fix(struct fx *f, int64_t t, double lat)
{
	struct engine_event ev = { .t_ms = t, .type = COV_EV_FIX, .tq = TQ_GNSS };
	ev.u.fix = (struct engine_fix){ .lat = lat, .lon = 14.0, .speed_mps = 8.0,
	                                .course_deg = NAN, .eph_m = 5.0, .mode = 3 };
	step(f, &ev);
}

static int64_t q_int(struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v = -1;
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static int count_cb(void *ctx, const char *name, int64_t value)
{
	if (strcmp(name, "track.pruned") == 0)
		*(int64_t *)ctx = value;
	return 0;
}

static int count_points(void *ctx, const char *sid, int64_t t, const struct engine_fix *fx)
{
	(void)sid;
	(void)t;
	(void)fx;
	(*(int *)ctx)++;
	return 0;
}

/* ---------------------------------------------------------------- outbox seq */

static void test_last_seq(void **state)
{
	struct fx *f = *state;
	int64_t seq = -1;
	assert_int_equal(store_outbox_last_seq(f->s, &seq), 0);
	assert_int_equal(seq, 0);
	policy(f, T0);
	app(f, T0, APP_ONLINE);
	app(f, T0 + 1000, APP_JOB_ACCEPTED);     /* session and activation 0 opened: seq 1 */
	assert_int_equal(store_outbox_last_seq(f->s, &seq), 0);
	assert_int_equal(seq, 1);
	app(f, T0 + 2000, APP_OFFLINE);          /* closed: seq 2 */
	assert_int_equal(store_outbox_last_seq(f->s, &seq), 0);
	assert_int_equal(seq, 2);
	/* Delivery does not change the highest seq written. */
	assert_int_equal(store_outbox_ack(f->s, 2, T0 + 3000), 0);
	assert_int_equal(store_outbox_last_seq(f->s, &seq), 0);
	assert_int_equal(seq, 2);
	int64_t depth = -1, oldest = -1;
	assert_int_equal(store_outbox_depth(f->s, &depth, &oldest), 0);
	assert_int_equal(depth, 0);
}

/* ---------------------------------------------------------------- track prune */

static void test_track_prune(void **state)
{
	struct fx *f = *state;
	policy(f, T0);
	app(f, T0, APP_ONLINE);
	app(f, T0 + 1000, APP_JOB_ACCEPTED);
	for (int i = 0; i < 40; i++)
		fix(f, T0 + 2000 + i * 1000, 45.0 + i * 1e-4);
	app(f, T0 + 60000, APP_OFFLINE);                  /* session 1 closed, track flushed */
	char first[ENGINE_SESSION_ID_MAX];
	snprintf(first, sizeof(first), "%s", f->st.s.id);
	app(f, T0 + 2 * MIN_MS, APP_ONLINE);
	app(f, T0 + 2 * MIN_MS + 1000, APP_JOB_ACCEPTED); /* session 2, open */
	for (int i = 0; i < 30; i++)
		fix(f, T0 + 2 * MIN_MS + 2000 + i * 1000, 46.0 + i * 1e-4);
	assert_int_equal(store_flush(f->s, &f->st), 0);
	char open_id[ENGINE_SESSION_ID_MAX];
	snprintf(open_id, sizeof(open_id), "%s", f->st.s.id);
	assert_string_not_equal(first, open_id);

	int n1 = 0, n2 = 0;
	assert_int_equal(store_track(f->s, first, count_points, &n1), 0);
	assert_int_equal(store_track(f->s, open_id, count_points, &n2), 0);
	assert_true(n1 > 0 && n2 > 0);
	int64_t acts = q_int(f, "SELECT COUNT(*) FROM activations");
	int64_t outbox = q_int(f, "SELECT COUNT(*) FROM outbox");
	int64_t events = q_int(f, "SELECT COUNT(*) FROM events");

	int64_t pts = -1;
	assert_int_equal(store_track_prune(f->s, open_id, 64, &pts), 0);
	assert_int_equal(pts, n1);
	int a = 0, b = 0;
	assert_int_equal(store_track(f->s, first, count_points, &a), 0);
	assert_int_equal(store_track(f->s, open_id, count_points, &b), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, n2);   /* the open session keeps its detail */
	/* Billing records are never touched. */
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM activations"), acts);
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM outbox"), outbox);
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM events"), events);
	int64_t counted = 0;
	assert_int_equal(store_counters(f->s, count_cb, &counted), 0);
	assert_int_equal(counted, n1);
	/* Nothing left to drop but the open session's. */
	assert_int_equal(store_track_prune(f->s, open_id, 64, &pts), -ENOENT);
	assert_int_equal(pts, 0);
	/* Without a session to keep, the rest goes too, and is counted on top. */
	assert_int_equal(store_track_prune(f->s, NULL, 1, &pts), 0);
	assert_int_equal(pts, n2);
	assert_int_equal(store_counters(f->s, count_cb, &counted), 0);
	assert_int_equal(counted, n1 + n2);
	assert_int_equal(store_track_prune(f->s, NULL, 64, &pts), -ENOENT);
	assert_int_equal(store_track_prune(f->s, NULL, 0, &pts), -EINVAL);
}

/* ---------------------------------------------------------------- commands */

struct row_copy {
	char id[80], cmd[4200], reply[1100];
	int64_t t_ms, event_id;
	int calls;
};

static int copy_row(void *ctx, const struct store_command_row *r)
{
	struct row_copy *c = ctx;
	snprintf(c->id, sizeof(c->id), "%s", r->id);
	snprintf(c->cmd, sizeof(c->cmd), "%s", r->cmd);
	snprintf(c->reply, sizeof(c->reply), "%s", r->reply);
	c->t_ms = r->t_ms;
	c->event_id = r->event_id;
	c->calls++;
	return 0;
}

static void test_command_with_event(void **state)
{
	struct fx *f = *state;
	struct row_copy c = { .calls = 0 };
	assert_int_equal(store_command_get(f->s, "c-1", copy_row, &c), -ENOENT);
	assert_int_equal(c.calls, 0);

	const char *cmd = "{\"v\":1,\"id\":\"c-1\",\"cmd\":\"policy_assign\",\"policy_id\":\"P-1\"}";
	const char *reply = "{\"v\":1,\"id\":\"c-1\",\"ok\":true,\"result\":{},\"duplicate\":false}";
	assert_int_equal(store_command_arm(f->s, "c-1", cmd, reply), 0);
	policy(f, T0);
	int64_t ev = store_last_event_id(f->s);
	assert_true(ev > 0);
	assert_int_equal(store_command_get(f->s, "c-1", copy_row, &c), 0);
	assert_int_equal(c.calls, 1);
	assert_string_equal(c.cmd, cmd);
	assert_string_equal(c.reply, reply);
	assert_int_equal(c.event_id, ev);
	assert_int_equal(c.t_ms, T0);

	/* The arming is consumed: the next event records nothing. */
	app(f, T0 + 1000, APP_ONLINE);
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM commands"), 1);

	/* A store_apply that fails records neither the event nor the command, and the
	 * arming does not survive the failure. */
	assert_int_equal(store_command_arm(f->s, "c-2", "{}", "{}"), 0);
	struct engine_event bad = { .t_ms = T0 + 2000, .type = COV_EV_APP, .tq = TQ_GNSS };
	struct engine_actions acts = { .n = 1 };
	acts.a[0].type = ACTION_SESSION_CLOSE;
	snprintf(acts.a[0].sess.id, sizeof(acts.a[0].sess.id), "no-such-session");
	int64_t events = q_int(f, "SELECT COUNT(*) FROM events");
	assert_int_not_equal(store_apply(f->s, &f->cfg, &bad, "test", NULL, &f->st, &acts), 0);
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM events"), events);
	assert_int_equal(store_command_get(f->s, "c-2", copy_row, &c), -ENOENT);
	app(f, T0 + 3000, APP_HEARTBEAT);
	assert_int_equal(store_command_get(f->s, "c-2", copy_row, &c), -ENOENT);

	/* The same id twice is refused by the table, whatever the caller does. */
	assert_int_equal(store_command_arm(f->s, "c-1", cmd, reply), 0);
	events = q_int(f, "SELECT COUNT(*) FROM events");
	struct engine_event hb = { .t_ms = T0 + 4000, .type = COV_EV_APP, .tq = TQ_GNSS };
	hb.u.app = APP_HEARTBEAT;
	assert_int_equal(engine_step(&f->cfg, &f->st, &hb, &f->acts), 0);
	assert_int_not_equal(store_apply(f->s, &f->cfg, &hb, "test", NULL, &f->st, &f->acts), 0);
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM events"), events);

	/* Bad arguments. */
	char big[STORE_CMD_JSON_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(store_command_arm(f->s, "c-3", big, "{}"), -EINVAL);
	assert_int_equal(store_command_arm(f->s, "", "{}", "{}"), -EINVAL);
	assert_int_equal(store_command_put(f->s, "c-3", big, "{}", T0, NULL, 0), -EINVAL);
}

struct ov {
	int n;
	char keys[8][48], values[8][64], ids[8][16];
};

static int ov_row(void *ctx, const char *key, const char *value, const char *cmd_id, int64_t t)
{
	(void)t;
	struct ov *o = ctx;
	if (o->n < 8) {
		snprintf(o->keys[o->n], sizeof(o->keys[0]), "%s", key);
		snprintf(o->values[o->n], sizeof(o->values[0]), "%s", value);
		snprintf(o->ids[o->n], sizeof(o->ids[0]), "%s", cmd_id);
	}
	o->n++;
	return 0;
}

static void test_command_put_overlay(void **state)
{
	struct fx *f = *state;
	struct store_overlay_kv kv[2] = {
		{ "engine.gap_end", "\"5m\"" },
		{ "engine.max_eph", "30" },
	};
	assert_int_equal(store_command_put(f->s, "cfg-1", "{\"cmd\":\"config\"}", "{\"ok\":true}",
	                                   T0, kv, 2), 0);
	struct ov o = { .n = 0 };
	assert_int_equal(store_config_overlay(f->s, ov_row, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.keys[0], "engine.gap_end");
	assert_string_equal(o.values[0], "\"5m\"");
	assert_string_equal(o.keys[1], "engine.max_eph");
	assert_string_equal(o.ids[1], "cfg-1");

	/* A later command replaces a key's value and keeps the others. */
	struct store_overlay_kv kv2[1] = { { "engine.gap_end", "600" } };
	assert_int_equal(store_command_put(f->s, "cfg-2", "{}", "{}", T0 + 1, kv2, 1), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(store_config_overlay(f->s, ov_row, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.values[0], "600");
	assert_string_equal(o.ids[0], "cfg-2");
	assert_string_equal(o.values[1], "30");

	/* A repeated id fails as a whole: no overlay change either. */
	struct store_overlay_kv kv3[1] = { { "engine.gap_end", "1" } };
	assert_int_not_equal(store_command_put(f->s, "cfg-1", "{}", "{}", T0 + 2, kv3, 1), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(store_config_overlay(f->s, ov_row, &o), 0);
	assert_string_equal(o.values[0], "600");

	/* A command without keys (ping) is recorded with no event. */
	struct row_copy c = { .calls = 0 };
	assert_int_equal(store_command_put(f->s, "p-1", "{\"cmd\":\"ping\"}", "{\"ok\":true}", T0 + 3,
	                                   NULL, 0), 0);
	assert_int_equal(store_command_get(f->s, "p-1", copy_row, &c), 0);
	assert_int_equal(c.event_id, 0);
	assert_string_equal(c.reply, "{\"ok\":true}");
}

static void test_command_keep(void **state)
{
	struct fx *f = *state;
	char id[32];
	for (int i = 0; i < STORE_CMD_KEEP + 10; i++) {
		snprintf(id, sizeof(id), "k-%d", i);
		assert_int_equal(store_command_put(f->s, id, "{}", "{}", T0 + i, NULL, 0), 0);
	}
	assert_int_equal(q_int(f, "SELECT COUNT(*) FROM commands"), STORE_CMD_KEEP);
	struct row_copy c = { .calls = 0 };
	assert_int_equal(store_command_get(f->s, "k-9", copy_row, &c), -ENOENT);
	assert_int_equal(store_command_get(f->s, "k-10", copy_row, &c), 0);
	snprintf(id, sizeof(id), "k-%d", STORE_CMD_KEEP + 9);
	assert_int_equal(store_command_get(f->s, id, copy_row, &c), 0);
}

/* The records of commands survive closing and reopening (a restart). */
static void test_command_survives_reopen(void **state)
{
	struct fx *f = *state;
	assert_int_equal(store_command_put(f->s, "r-1", "{}", "{\"r\":1}", T0, NULL, 0), 0);
	store_close(f->s);
	char err[512];
	assert_int_equal(store_open(&f->s, f->db, STORE_RW, err, sizeof(err)), 0);
	struct row_copy c = { .calls = 0 };
	assert_int_equal(store_command_get(f->s, "r-1", copy_row, &c), 0);
	assert_string_equal(c.reply, "{\"r\":1}");
	assert_int_equal(q_int(f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_last_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_track_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_with_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_put_overlay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_keep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_survives_reopen, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
