/*
 * test_store.c - the SQLite store against real database files in a temporary directory:
 * what store_apply writes and the read side returns, one transaction per event, the
 * engine state round trip, the outbox sequence, hash chain and acknowledgements, track
 * batching, read-only opening beside a writer, the schema 1 upgrade fixture and
 * damaged files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <mbedtls/sha256.h>
#include <sqlite3.h>

#include "engine.h"
#include "evjson.h"
#include "store.h"

#ifndef STORE_TEST_DATA_DIR
#error "STORE_TEST_DATA_DIR must name tests/data"
#endif

#define T0 1795856400000LL   /* 2026-11-28T09:00:00Z */
#define MIN_MS 60000LL
#define HOUR_MS 3600000LL

struct fx {
	char dir[256];
	char db[PATH_MAX];
	struct engine_config cfg;
};

/* ---- fixture plumbing ---------------------------------------------------------------- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/coverd-store-XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->db, sizeof(f->db), "%s/coverd.db", f->dir);
	memset(&f->cfg, 0, sizeof(f->cfg));
	snprintf(f->cfg.device_id, sizeof(f->cfg.device_id), "dev-1");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
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

static struct store *open_rw(struct fx *f)
{
	struct store *st = NULL;
	char err[512] = "";
	int r = store_open(&st, f->db, STORE_RW, err, sizeof(err));
	if (r != 0)
		print_error("store_open: %d %s\n", r, err);
	assert_int_equal(r, 0);
	assert_non_null(st);
	return st;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char d[32];
	assert_int_equal(mbedtls_sha256_ret(data, len, d, 0), 0);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int64_t db_int(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	int64_t v = raw_int(db, sql);
	sqlite3_close(db);
	return v;
}

static off_t file_size(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return -1;
	return sb.st_size;
}

/* ---- synthetic engine output ------------------------------------------------------------ */

static void sess_init(struct engine_session_ref *r, uint64_t ordinal, int64_t start,
                      const char *policy)
{
	memset(r, 0, sizeof(*r));
	engine_session_id(r->id, sizeof(r->id), "dev-1", start, ordinal);
	r->ordinal = ordinal;
	r->trigger = TRIGGER_JOB;
	r->start_ms = start;
	snprintf(r->policy_id, sizeof(r->policy_id), "%s", policy);
	snprintf(r->driver_id, sizeof(r->driver_id), "D-1");
	snprintf(r->vehicle_id, sizeof(r->vehicle_id), "V-1");
}

static struct engine_action *add(struct engine_actions *a, enum engine_action_type type,
                                 enum engine_rule rule, int64_t at,
                                 const struct engine_session_ref *ref)
{
	assert_true(a->n < ENGINE_MAX_ACTIONS);
	struct engine_action *x = &a->a[a->n++];
	memset(x, 0, sizeof(*x));
	x->type = type;
	x->rule = rule;
	x->at_ms = at;
	if (ref != NULL)
		x->sess = *ref;
	return x;
}

static struct engine_activation act_open(int index, int64_t start)
{
	struct engine_activation a;
	memset(&a, 0, sizeof(a));
	a.index = index;
	a.status = ACT_OPEN;
	a.revision = 1;
	a.start_ms = start;
	a.tq = TQ_GNSS;
	a.alive = ALIVE_START;
	a.alive_since_ms = start;
	return a;
}

static void act_close(struct engine_activation *a, int64_t end, enum engine_end_reason why)
{
	a->status = ACT_CLOSED;
	a->revision++;
	a->end_ms = end;
	a->end_reason = why;
}

static void state_for(struct engine_state *s, const struct engine_session_ref *ref, bool open,
                      int64_t t)
{
	memset(s, 0, sizeof(*s));
	s->version = ENGINE_STATE_VERSION;
	s->started = true;
	s->last_t_ms = t;
	s->last_job_end_ms = INT64_MIN;
	s->last_app_ms = t;
	s->last_move_ms = INT64_MIN;
	s->last_fix_ms = INT64_MIN;
	s->last_fix.speed_mps = NAN;
	s->last_fix.course_deg = NAN;
	s->last_fix.eph_m = NAN;
	if (ref != NULL) {
		s->sessions_total = ref->ordinal;
		s->s.open = open;
		memcpy(s->s.id, ref->id, sizeof(s->s.id));
		s->s.ordinal = ref->ordinal;
		s->s.start_ms = ref->start_ms;
		s->s.end_ms = ref->end_ms;
		s->s.end_reason = ref->end_reason;
		memcpy(s->s.policy_id, ref->policy_id, sizeof(s->s.policy_id));
	}
}

static struct engine_event app_event(int64_t t, enum engine_app_event e)
{
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.t_ms = t;
	ev.type = COV_EV_APP;
	ev.u.app = e;
	return ev;
}

static struct engine_event tick_event(int64_t t)
{
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.t_ms = t;
	ev.type = COV_EV_TICK;
	return ev;
}

static struct engine_fix make_fix(double lat, double lon, double speed)
{
	struct engine_fix fx = { .lat = lat, .lon = lon, .speed_mps = speed, .course_deg = 90.0,
		                 .eph_m = 5.0, .mode = 3 };
	return fx;
}

/* ---- read-side collectors --------------------------------------------------------------- */

#define MAXROWS 64

struct act_copy {
	char id[ENGINE_ACT_ID_MAX], session_id[ENGINE_SESSION_ID_MAX], policy_id[ENGINE_ID_MAX];
	char status[16], end_reason[32], tq[16], open_rule[32], close_rule[32];
	struct store_activation_row r;
};

struct acts {
	int n;
	struct act_copy a[MAXROWS];
};

static void copy_str(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s != NULL ? s : "(null)");
}

static int collect_act(void *ctx, const struct store_activation_row *r)
{
	struct acts *c = ctx;
	assert_true(c->n < MAXROWS);
	struct act_copy *a = &c->a[c->n++];
	a->r = *r;
	copy_str(a->id, sizeof(a->id), r->id);
	copy_str(a->session_id, sizeof(a->session_id), r->session_id);
	copy_str(a->policy_id, sizeof(a->policy_id), r->policy_id);
	copy_str(a->status, sizeof(a->status), r->status);
	copy_str(a->end_reason, sizeof(a->end_reason), r->end_reason);
	copy_str(a->tq, sizeof(a->tq), r->time_quality);
	copy_str(a->open_rule, sizeof(a->open_rule), r->open_rule);
	copy_str(a->close_rule, sizeof(a->close_rule), r->close_rule);
	return 0;
}

struct sess_copy {
	char id[ENGINE_SESSION_ID_MAX], policy_id[ENGINE_ID_MAX], trigger[16], end_reason[32];
	struct store_session_row r;
};

struct sessions {
	int n;
	struct sess_copy s[MAXROWS];
};

static int collect_session(void *ctx, const struct store_session_row *r)
{
	struct sessions *c = ctx;
	assert_true(c->n < MAXROWS);
	struct sess_copy *s = &c->s[c->n++];
	s->r = *r;
	copy_str(s->id, sizeof(s->id), r->id);
	copy_str(s->policy_id, sizeof(s->policy_id), r->policy_id);
	copy_str(s->trigger, sizeof(s->trigger), r->trigger);
	copy_str(s->end_reason, sizeof(s->end_reason), r->end_reason);
	return 0;
}

struct out_copy {
	int64_t seq, created_ms;
	int revision;
	char kind[32], record_id[ENGINE_ACT_ID_MAX];
	char body[4096];
	size_t body_len;
	unsigned char sig[STORE_SIG_MAX];
	size_t sig_len;
};

struct outbox {
	int n;
	struct out_copy o[MAXROWS];
};

static int collect_outbox(void *ctx, const struct store_outbox_row *r)
{
	struct outbox *c = ctx;
	assert_true(c->n < MAXROWS);
	struct out_copy *o = &c->o[c->n++];
	o->seq = r->seq;
	o->created_ms = r->created_ms;
	o->revision = r->revision;
	copy_str(o->kind, sizeof(o->kind), r->kind);
	copy_str(o->record_id, sizeof(o->record_id), r->record_id);
	assert_true(r->body_len < sizeof(o->body));
	memcpy(o->body, r->body, r->body_len);
	o->body[r->body_len] = '\0';
	o->body_len = r->body_len;
	assert_true(r->sig_len <= sizeof(o->sig));
	if (r->sig_len > 0)
		memcpy(o->sig, r->sig, r->sig_len);
	o->sig_len = r->sig_len;
	return 0;
}

struct ev_copy {
	int64_t id, t_ms;
	char source[16], type[16], status[16], reason[32], json[1024];
};

static int collect_event(void *ctx, const struct store_event_row *r)
{
	struct ev_copy *e = ctx;
	e->id = r->id;
	e->t_ms = r->t_ms;
	copy_str(e->source, sizeof(e->source), r->source);
	copy_str(e->type, sizeof(e->type), r->type);
	copy_str(e->status, sizeof(e->status), r->status);
	copy_str(e->reason, sizeof(e->reason), r->reason);
	copy_str(e->json, sizeof(e->json), r->json);
	return 0;
}

struct pts {
	int n;
	char sid[8][ENGINE_SESSION_ID_MAX];
	int64_t t[512];
	struct engine_fix f[512];
	char session[512][ENGINE_SESSION_ID_MAX];
};

static int collect_pt(void *ctx, const char *sid, int64_t t, const struct engine_fix *fx)
{
	struct pts *p = ctx;
	assert_true(p->n < 512);
	p->t[p->n] = t;
	p->f[p->n] = *fx;
	snprintf(p->session[p->n], sizeof(p->session[0]), "%s", sid);
	p->n++;
	return 0;
}

struct counters {
	int n;
	char name[16][64];
	int64_t value[16];
};

static int collect_counter(void *ctx, const char *name, int64_t value)
{
	struct counters *c = ctx;
	assert_true(c->n < 16);
	snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
	c->value[c->n++] = value;
	return 0;
}

static int64_t counter(struct store *st, const char *name)
{
	struct counters c = { 0 };
	assert_int_equal(store_counters(st, collect_counter, &c), 0);
	for (int i = 0; i < c.n; i++)
		if (strcmp(c.name[i], name) == 0)
			return c.value[i];
	return 0;
}

static struct acts *acts_all(struct store *st, const char *session)
{
	static struct acts a;
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_activations(st, session, collect_act, &a), 0);
	return &a;
}

static struct outbox *outbox_all(struct store *st)
{
	static struct outbox o;
	memset(&o, 0, sizeof(o));
	assert_int_equal(store_outbox_next(st, 0, MAXROWS, collect_outbox, &o), 0);
	return &o;
}

/* ---- a short shift: the sequence most tests build on ----------------------------------- */

struct shift {
	struct engine_session_ref s;
	struct engine_activation a0, a1;
	int64_t ev_id[6];
	struct engine_state state;
};

static void apply_ok(struct store *st, struct fx *f, const struct engine_event *ev,
                     const char *src, const char *raw, const struct engine_state *state,
                     const struct engine_actions *acts)
{
	int r = store_apply(st, &f->cfg, ev, src, raw, state, acts);
	if (r != 0)
		print_error("store_apply: %d %s\n", r, store_errmsg(st));
	assert_int_equal(r, 0);
}

static const char policy_raw[] =
    "{\"t\":\"2026-11-28T09:00:00Z\",\"type\":\"policy\",\"event\":\"assign\","
    "\"policy_id\":\"P-1\",\"driver_id\":\"D-1\",\"vehicle_id\":\"V-1\"}";

/* Policy, job accepted (session and activation 0 open), a fix, the hour boundary
 * (activation 0 closes, 1 opens), offline (activation 1 and the session close). */
static void run_shift(struct store *st, struct fx *f, struct shift *sh)
{
	static struct engine_actions acts;
	struct engine_event ev;
	struct engine_action *x;
	int64_t start = T0 + MIN_MS;

	memset(sh, 0, sizeof(*sh));
	sess_init(&sh->s, 1, start, "P-1");

	/* 1: policy assigned, no action. */
	memset(&ev, 0, sizeof(ev));
	ev.t_ms = T0;
	ev.type = COV_EV_POLICY;
	ev.u.policy.assign = true;
	snprintf(ev.u.policy.policy_id, sizeof(ev.u.policy.policy_id), "P-1");
	state_for(&sh->state, NULL, false, T0);
	acts.n = 0;
	apply_ok(st, f, &ev, "replay", policy_raw, &sh->state, &acts);
	sh->ev_id[1] = store_last_event_id(st);

	/* 2: job accepted. */
	ev = app_event(start, APP_JOB_ACCEPTED);
	acts.n = 0;
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, start, &sh->s);
	sh->a0 = act_open(0, start);
	sh->a0.start_pos = (struct engine_pos){ 51.5, -0.12, true };
	sh->a0.jobs = 1;
	x = add(&acts, ACTION_ACT_OPEN, RULE_START_JOB, start, &sh->s);
	x->act = sh->a0;
	state_for(&sh->state, &sh->s, true, start);
	apply_ok(st, f, &ev, "replay", NULL, &sh->state, &acts);
	sh->ev_id[2] = store_last_event_id(st);

	/* 3: a fix on cover, journaled with its track point. */
	memset(&ev, 0, sizeof(ev));
	ev.t_ms = start + 1000;
	ev.type = COV_EV_FIX;
	ev.u.fix = make_fix(51.5001, -0.1199, 6.5);
	acts.n = 0;
	x = add(&acts, ACTION_TRACK, RULE_NONE, ev.t_ms, &sh->s);
	x->fix = ev.u.fix;
	sh->state.last_t_ms = ev.t_ms;
	apply_ok(st, f, &ev, "gpsd", NULL, &sh->state, &acts);
	sh->ev_id[3] = store_last_event_id(st);

	/* 4: the hour boundary. */
	int64_t h1 = start + HOUR_MS;
	ev = tick_event(h1);
	acts.n = 0;
	act_close(&sh->a0, h1, END_HOUR);
	sh->a0.distance_m = 1234.56;
	sh->a0.moving_ms = 600500;
	x = add(&acts, ACTION_ACT_CLOSE, RULE_HOUR_BOUNDARY, h1, &sh->s);
	x->act = sh->a0;
	sh->a1 = act_open(1, h1);
	sh->a1.start_pos = (struct engine_pos){ 51.51, -0.1, true };
	sh->a1.alive = ALIVE_JOB;
	sh->a1.alive_since_ms = start;
	x = add(&acts, ACTION_ACT_OPEN, RULE_HOUR_BOUNDARY, h1, &sh->s);
	x->act = sh->a1;
	sh->state.last_t_ms = h1;
	apply_ok(st, f, &ev, "timer", NULL, &sh->state, &acts);
	sh->ev_id[4] = store_last_event_id(st);

	/* 5: offline. */
	int64_t end = h1 + 20 * MIN_MS;
	ev = app_event(end, APP_OFFLINE);
	ev.tq = TQ_NTP;
	acts.n = 0;
	act_close(&sh->a1, end, END_OFFLINE);
	sh->a1.tq = TQ_NTP;
	sh->a1.anomalies = ANOM_POSITION_JUMP | ANOM_CLOCK_STEP;
	sh->a1.distance_m = 250.04;
	sh->a1.moving_ms = 120000;
	sh->a1.end_pos = (struct engine_pos){ 51.52, -0.09, true };
	sh->s.end_ms = end;
	sh->s.end_reason = END_OFFLINE;
	x = add(&acts, ACTION_ACT_CLOSE, RULE_OFFLINE, end, &sh->s);
	x->act = sh->a1;
	add(&acts, ACTION_SESSION_CLOSE, RULE_OFFLINE, end, &sh->s);
	state_for(&sh->state, &sh->s, false, end);
	sh->state.s.n_acts = 2;
	sh->state.s.acts[0] = sh->a0;
	sh->state.s.acts[1] = sh->a1;
	apply_ok(st, f, &ev, "ipc", NULL, &sh->state, &acts);
	sh->ev_id[5] = store_last_event_id(st);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_open_fresh(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	assert_int_equal(store_ping(st), 0);
	struct engine_state es;
	assert_int_equal(store_load_state(st, &es), -ENOENT);
	int64_t depth = -1, oldest = -1;
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(oldest, 0);
	assert_int_equal(store_last_event_id(st), 0);
	store_close(st);

	sqlite3 *db = raw_open(f->db);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	/* Small pages keep a track flush small (see store.c, "Page size"). */
	assert_int_equal(raw_int(db, "PRAGMA page_size"), 2048);
	sqlite3_close(db);
}

/* Another connection adds a trigger that makes every write to a table fail, the way a
 * failing disk would, without waiting for anything. */
static void fault(const char *db_path, const char *table, bool on)
{
	char sql[256];
	if (on)
		snprintf(sql, sizeof(sql),
		         "CREATE TRIGGER fault_%s_i BEFORE INSERT ON %s BEGIN"
		         " SELECT RAISE(ABORT, 'injected fault'); END;"
		         "CREATE TRIGGER fault_%s_u BEFORE UPDATE ON %s BEGIN"
		         " SELECT RAISE(ABORT, 'injected fault'); END;",
		         table, table, table, table);
	else
		snprintf(sql, sizeof(sql), "DROP TRIGGER fault_%s_i; DROP TRIGGER fault_%s_u;",
		         table, table);
	sqlite3 *db = raw_open(db_path);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		print_error("%s\n", msg);
	assert_int_equal(rc, SQLITE_OK);
	sqlite3_close(db);
}

static void test_apply_and_read_back(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	struct shift sh;
	run_shift(st, f, &sh);

	/* Sessions. */
	struct sessions ss = { 0 };
	assert_int_equal(store_sessions(st, collect_session, &ss), 0);
	assert_int_equal(ss.n, 1);
	assert_string_equal(ss.s[0].id, sh.s.id);
	assert_string_equal(ss.s[0].policy_id, "P-1");
	assert_string_equal(ss.s[0].trigger, "job");
	assert_string_equal(ss.s[0].end_reason, "offline");
	assert_false(ss.s[0].r.open);
	assert_int_equal(ss.s[0].r.start_ms, T0 + MIN_MS);
	assert_int_equal(ss.s[0].r.end_ms, sh.s.end_ms);
	assert_int_equal(ss.s[0].r.n_activations, 2);

	/* Activations, with the journal ids of the events that opened and closed them. */
	struct acts *a = acts_all(st, NULL);
	assert_int_equal(a->n, 2);
	char id0[ENGINE_ACT_ID_MAX], id1[ENGINE_ACT_ID_MAX];
	engine_activation_id(id0, sizeof(id0), sh.s.id, 0);
	engine_activation_id(id1, sizeof(id1), sh.s.id, 1);
	assert_string_equal(a->a[0].id, id0);
	assert_string_equal(a->a[0].session_id, sh.s.id);
	assert_string_equal(a->a[0].status, "closed");
	assert_string_equal(a->a[0].end_reason, "hour");
	assert_string_equal(a->a[0].open_rule, engine_rule_name(RULE_START_JOB));
	assert_string_equal(a->a[0].close_rule, engine_rule_name(RULE_HOUR_BOUNDARY));
	assert_int_equal(a->a[0].r.revision, 2);
	assert_int_equal(a->a[0].r.index, 0);
	assert_int_equal(a->a[0].r.jobs, 1);
	assert_int_equal(a->a[0].r.start_ms, T0 + MIN_MS);
	assert_int_equal(a->a[0].r.end_ms, T0 + MIN_MS + HOUR_MS);
	assert_true(a->a[0].r.distance_m == 1234.56);
	assert_int_equal(a->a[0].r.moving_ms, 600500);
	assert_true(a->a[0].r.start_pos.valid);
	assert_true(a->a[0].r.start_pos.lat == 51.5 && a->a[0].r.start_pos.lon == -0.12);
	assert_false(a->a[0].r.end_pos.valid);
	assert_int_equal(a->a[0].r.open_event_id, sh.ev_id[2]);
	assert_int_equal(a->a[0].r.close_event_id, sh.ev_id[4]);
	assert_string_equal(a->a[1].id, id1);
	assert_string_equal(a->a[1].end_reason, "offline");
	assert_string_equal(a->a[1].tq, "ntp");
	assert_string_equal(a->a[1].close_rule, engine_rule_name(RULE_OFFLINE));
	assert_int_equal(a->a[1].r.anomalies, ANOM_POSITION_JUMP | ANOM_CLOCK_STEP);
	assert_true(a->a[1].r.end_pos.valid && a->a[1].r.end_pos.lat == 51.52);
	assert_int_equal(a->a[1].r.open_event_id, sh.ev_id[4]);
	assert_int_equal(a->a[1].r.close_event_id, sh.ev_id[5]);

	struct acts one = { 0 };
	assert_int_equal(store_activation_get(st, id1, collect_act, &one), 0);
	assert_int_equal(one.n, 1);
	assert_string_equal(one.a[0].id, id1);
	assert_int_equal(store_activation_get(st, "no-such-activation", collect_act, &one),
	                 -ENOENT);
	a = acts_all(st, "no-such-session");
	assert_int_equal(a->n, 0);

	/* Journal: the raw line verbatim, and the normalised form parses back to the event. */
	struct ev_copy e;
	assert_int_equal(store_event_get(st, sh.ev_id[1], collect_event, &e), 0);
	assert_string_equal(e.json, policy_raw);
	assert_string_equal(e.type, "policy");
	assert_string_equal(e.source, "replay");
	assert_string_equal(e.status, "applied");
	assert_string_equal(e.reason, "(null)");
	assert_int_equal(store_event_get(st, sh.ev_id[2], collect_event, &e), 0);
	assert_int_equal(e.t_ms, T0 + MIN_MS);
	struct engine_event back;
	enum evjson_kind kind;
	char err[256];
	assert_int_equal(evjson_parse(e.json, strlen(e.json), 1, &back, &kind, err, sizeof(err)),
	                 0);
	assert_int_equal(back.type, COV_EV_APP);
	assert_int_equal(back.u.app, APP_JOB_ACCEPTED);
	assert_int_equal(back.t_ms, T0 + MIN_MS);
	assert_int_equal(store_event_get(st, sh.ev_id[5] + 1, collect_event, &e), -ENOENT);

	/* The fix journaled by store_apply left its track point. */
	struct pts *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(store_track(st, NULL, collect_pt, p), 0);
	assert_int_equal(p->n, 1);
	assert_string_equal(p->session[0], sh.s.id);
	assert_int_equal(p->t[0], T0 + MIN_MS + 1000);
	free(p);
	assert_int_equal(store_track_pending(st), 0);
	store_close(st);
}

/* The outbox record format: keys in the documented order, byte for byte. */
static void test_outbox_records(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	struct shift sh;
	run_shift(st, f, &sh);

	struct outbox *o = outbox_all(st);
	assert_int_equal(o->n, 4);
	char expect[2048];
	snprintf(expect, sizeof(expect),
	         "{\"v\":1,\"kind\":\"activation\",\"event\":\"opened\",\"seq\":1,"
	         "\"prev_hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
	         "\"device_id\":\"dev-1\",\"id\":\"%s-0\",\"revision\":1,\"session_id\":\"%s\","
	         "\"index\":0,\"policy_id\":\"P-1\",\"driver_id\":\"D-1\",\"vehicle_id\":\"V-1\","
	         "\"start\":\"2026-11-28T09:01:00Z\",\"end\":null,\"end_reason\":null,"
	         "\"distance_m\":0,\"moving_s\":0,\"jobs\":1,"
	         "\"start_pos\":{\"lat\":51.5,\"lon\":-0.12},\"end_pos\":null,"
	         "\"time_quality\":\"gnss\",\"anomalies\":[]}",
	         sh.s.id, sh.s.id);
	assert_string_equal(o->o[0].body, expect);

	char prev[65];
	sha256_hex(o->o[2].body, o->o[2].body_len, prev);
	snprintf(expect, sizeof(expect),
	         "{\"v\":1,\"kind\":\"activation\",\"event\":\"closed\",\"seq\":4,"
	         "\"prev_hash\":\"%s\",\"device_id\":\"dev-1\",\"id\":\"%s-1\",\"revision\":2,"
	         "\"session_id\":\"%s\",\"index\":1,\"policy_id\":\"P-1\",\"driver_id\":\"D-1\","
	         "\"vehicle_id\":\"V-1\",\"start\":\"2026-11-28T10:01:00Z\","
	         "\"end\":\"2026-11-28T10:21:00Z\",\"end_reason\":\"offline\","
	         "\"distance_m\":250,\"moving_s\":120,\"jobs\":0,"
	         "\"start_pos\":{\"lat\":51.51,\"lon\":-0.1},"
	         "\"end_pos\":{\"lat\":51.52,\"lon\":-0.09},\"time_quality\":\"ntp\","
	         "\"anomalies\":[\"position_jump\",\"clock_step\"]}",
	         prev, sh.s.id, sh.s.id);
	assert_string_equal(o->o[3].body, expect);

	static const char *const keys[] = {
		"v", "kind", "event", "seq", "prev_hash", "device_id", "id", "revision",
		"session_id", "index", "policy_id", "driver_id", "vehicle_id", "start", "end",
		"end_reason", "distance_m", "moving_s", "jobs", "start_pos", "end_pos",
		"time_quality", "anomalies",
	};
	static const char *const events[] = { "opened", "closed", "opened", "closed" };
	static const int revisions[] = { 1, 2, 1, 2 };
	const int64_t created[] = { T0 + MIN_MS, T0 + MIN_MS + HOUR_MS, T0 + MIN_MS + HOUR_MS,
		                    sh.s.end_ms };
	char zeros[65];
	memset(zeros, '0', 64);
	zeros[64] = '\0';
	for (int i = 0; i < o->n; i++) {
		struct out_copy *r = &o->o[i];
		assert_int_equal(r->seq, i + 1);
		assert_string_equal(r->kind, "activation");
		assert_int_equal(r->revision, revisions[i]);
		assert_int_equal(r->created_ms, created[i]);
		assert_int_equal(r->sig_len, 0);
		assert_int_equal(strlen(r->body), r->body_len);
		cJSON *j = cJSON_Parse(r->body);
		assert_non_null(j);
		size_t k = 0;
		for (cJSON *it = j->child; it != NULL; it = it->next, k++) {
			assert_true(k < sizeof(keys) / sizeof(keys[0]));
			assert_string_equal(it->string, keys[k]);
		}
		assert_int_equal(k, sizeof(keys) / sizeof(keys[0]));
		assert_int_equal(cJSON_GetObjectItem(j, "seq")->valueint, i + 1);
		assert_string_equal(cJSON_GetObjectItem(j, "event")->valuestring, events[i]);
		assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, r->record_id);
		/* The hash chain: each record names the SHA-256 of the one before it. */
		if (i == 0) {
			assert_string_equal(cJSON_GetObjectItem(j, "prev_hash")->valuestring, zeros);
		} else {
			sha256_hex(o->o[i - 1].body, o->o[i - 1].body_len, prev);
			assert_string_equal(cJSON_GetObjectItem(j, "prev_hash")->valuestring, prev);
		}
		cJSON_Delete(j);
	}
	store_close(st);
}

/* One step that closes a session and opens the next: each change must land on the
 * session its action names, not on the one the state holds afterwards. */
static void test_close_and_open_in_one_event(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_actions acts;
	struct engine_session_ref s1, s2;
	struct engine_state es;
	struct engine_action *x;

	sess_init(&s1, 1, T0, "P-1");
	struct engine_event ev = app_event(T0, APP_JOB_ACCEPTED);
	acts.n = 0;
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, T0, &s1);
	struct engine_activation a = act_open(0, T0);
	x = add(&acts, ACTION_ACT_OPEN, RULE_START_JOB, T0, &s1);
	x->act = a;
	state_for(&es, &s1, true, T0);
	apply_ok(st, f, &ev, "replay", NULL, &es, &acts);

	int64_t gap_end = T0 + 20 * MIN_MS, t = T0 + 40 * MIN_MS;
	ev = app_event(t, APP_JOB_ACCEPTED);
	acts.n = 0;
	act_close(&a, gap_end, END_GAP);
	s1.end_ms = gap_end;
	s1.end_reason = END_GAP;
	x = add(&acts, ACTION_ACT_CLOSE, RULE_GAP_END, T0 + 30 * MIN_MS, &s1);
	x->act = a;
	add(&acts, ACTION_SESSION_CLOSE, RULE_GAP_END, T0 + 30 * MIN_MS, &s1);
	sess_init(&s2, 2, t, "P-2");
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, t, &s2);
	x = add(&acts, ACTION_ACT_OPEN, RULE_START_JOB, t, &s2);
	x->act = act_open(0, t);
	state_for(&es, &s2, true, t);
	apply_ok(st, f, &ev, "replay", NULL, &es, &acts);

	struct sessions ss = { 0 };
	assert_int_equal(store_sessions(st, collect_session, &ss), 0);
	assert_int_equal(ss.n, 2);
	assert_string_equal(ss.s[0].id, s1.id);
	assert_false(ss.s[0].r.open);
	assert_int_equal(ss.s[0].r.end_ms, gap_end);
	assert_string_equal(ss.s[0].end_reason, "gap_end");
	assert_string_equal(ss.s[1].id, s2.id);
	assert_true(ss.s[1].r.open);
	assert_int_equal(ss.s[1].r.end_ms, 0);
	assert_string_equal(ss.s[1].policy_id, "P-2");

	struct acts *al = acts_all(st, s1.id);
	assert_int_equal(al->n, 1);
	assert_string_equal(al->a[0].status, "closed");
	assert_int_equal(al->a[0].r.end_ms, gap_end);
	al = acts_all(st, s2.id);
	assert_int_equal(al->n, 1);
	assert_string_equal(al->a[0].status, "open");
	assert_string_equal(al->a[0].policy_id, "P-2");
	assert_string_equal(al->a[0].end_reason, "(null)");
	assert_int_equal(al->a[0].r.end_ms, 0);

	struct outbox *o = outbox_all(st);
	assert_int_equal(o->n, 3);
	assert_non_null(strstr(o->o[1].body, "\"policy_id\":\"P-1\""));
	assert_non_null(strstr(o->o[2].body, "\"policy_id\":\"P-2\""));
	store_close(st);
}

static void test_rejected_events(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_actions acts;
	struct engine_state es;
	state_for(&es, NULL, false, T0);
	for (int i = 0; i < 2; i++) {
		struct engine_event ev = app_event(T0 - MIN_MS, APP_HEARTBEAT);
		acts.n = 0;
		add(&acts, ACTION_REJECT, RULE_NONE, ev.t_ms, NULL)->reject = REJECT_OUT_OF_ORDER;
		es.rejected_total++;
		apply_ok(st, f, &ev, "ipc", NULL, &es, &acts);
	}
	struct ev_copy e;
	assert_int_equal(store_event_get(st, store_last_event_id(st), collect_event, &e), 0);
	assert_string_equal(e.status, "rejected");
	assert_string_equal(e.reason, engine_reject_name(REJECT_OUT_OF_ORDER));
	assert_string_equal(e.source, "ipc");
	char name[64];
	snprintf(name, sizeof(name), "rejected.%s", engine_reject_name(REJECT_OUT_OF_ORDER));
	assert_int_equal(counter(st, name), 2);

	assert_int_equal(store_count_add(st, "ipc.malformed", 2), 0);
	assert_int_equal(store_count_add(st, "ipc.malformed", 3), 0);
	assert_int_equal(counter(st, "ipc.malformed"), 5);
	struct counters c = { 0 };
	assert_int_equal(store_counters(st, collect_counter, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.name[0], "ipc.malformed");   /* by name */
	assert_int_equal(store_count_add(st, "", 1), -EINVAL);
	store_close(st);
}

static int sign_fail(void *ctx, const unsigned char *body, size_t len, unsigned char *sig,
                     size_t cap, size_t *sig_len)
{
	(void)ctx, (void)body, (void)len, (void)sig, (void)cap, (void)sig_len;
	return -EKEYREJECTED;
}

static int sign_sha(void *ctx, const unsigned char *body, size_t len, unsigned char *sig,
                    size_t cap, size_t *sig_len)
{
	int *calls = ctx;
	(*calls)++;
	if (cap < 32)
		return -ENOSPC;
	if (mbedtls_sha256_ret(body, len, sig, 0) != 0)
		return -EIO;
	*sig_len = 32;
	return 0;
}

/* Nothing of a failed event may be visible: not its journal row, not the activation
 * change or outbox row made before the failing statement, not its track points, not the
 * new state; and the track buffered before it stays buffered. */
static void assert_nothing_changed(struct store *st, struct fx *f, int64_t last_id,
                                   const char *act_id, const struct engine_state *before)
{
	(void)f;
	struct ev_copy e;
	assert_int_equal(store_event_get(st, last_id + 1, collect_event, &e), -ENOENT);
	struct acts one = { 0 };
	assert_int_equal(store_activation_get(st, act_id, collect_act, &one), 0);
	assert_string_equal(one.a[0].status, "open");
	assert_int_equal(one.a[0].r.revision, 1);
	assert_int_equal(one.a[0].r.close_event_id, 0);
	int64_t depth, oldest;
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 1);
	struct engine_state now;
	assert_int_equal(store_load_state(st, &now), 0);
	assert_int_equal(now.jobs_active, before->jobs_active);
	assert_int_equal(now.last_t_ms, before->last_t_ms);
	assert_int_equal(store_track_pending(st), 3);
	struct pts *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(store_track(st, NULL, collect_pt, p), 0);
	assert_int_equal(p->n, 0);
	free(p);
}

static void test_failure_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_actions acts;
	struct engine_session_ref s;
	struct engine_state es, es2;
	struct engine_action *x;

	sess_init(&s, 1, T0, "P-1");
	struct engine_event ev = app_event(T0, APP_JOB_ACCEPTED);
	acts.n = 0;
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, T0, &s);
	struct engine_activation a = act_open(0, T0);
	x = add(&acts, ACTION_ACT_OPEN, RULE_START_JOB, T0, &s);
	x->act = a;
	state_for(&es, &s, true, T0);
	es.jobs_active = 1;
	es.anon_jobs = 1;
	apply_ok(st, f, &ev, "replay", NULL, &es, &acts);
	int64_t last_id = store_last_event_id(st);
	char act_id[ENGINE_ACT_ID_MAX];
	engine_activation_id(act_id, sizeof(act_id), s.id, 0);

	for (int i = 0; i < 3; i++) {
		struct engine_fix fx = make_fix(51.5 + i * 1e-4, -0.12, 5);
		assert_int_equal(store_track_add(st, &es, T0 + 1000 * (i + 1), &fx), 0);
	}
	assert_int_equal(store_track_pending(st), 3);

	/* Failure 1: the third statement of the event violates a constraint (the session
	 * opened again under the same id) after an activation change and its outbox row. */
	ev = app_event(T0 + 5000, APP_JOB_ACCEPTED);
	acts.n = 0;
	struct engine_activation closed = a;
	act_close(&closed, T0 + 5000, END_COMMAND);
	x = add(&acts, ACTION_ACT_CLOSE, RULE_END_COMMAND, T0 + 5000, &s);
	x->act = closed;
	x = add(&acts, ACTION_TRACK, RULE_NONE, T0 + 5000, &s);
	x->fix = make_fix(51.6, -0.12, 5);
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, T0 + 5000, &s);
	es2 = es;
	es2.jobs_active = 7;
	es2.anon_jobs = 7;
	es2.last_t_ms = T0 + 5000;
	int r = store_apply(st, &f->cfg, &ev, "replay", NULL, &es2, &acts);
	assert_true(r < 0);
	assert_non_null(strstr(store_errmsg(st), f->db));
	assert_non_null(strstr(store_errmsg(st), "sessions"));
	assert_nothing_changed(st, f, last_id, act_id, &es);

	/* Failure 2: the signer refuses, after the activation row was written. */
	store_set_signer(st, sign_fail, NULL);
	acts.n = 1;   /* just the close */
	r = store_apply(st, &f->cfg, &ev, "replay", NULL, &es2, &acts);
	assert_int_equal(r, -EKEYREJECTED);
	assert_non_null(strstr(store_errmsg(st), "sign"));
	assert_nothing_changed(st, f, last_id, act_id, &es);

	/* Failure 3: the very last write, the engine state, fails. */
	store_set_signer(st, NULL, NULL);
	fault(f->db, "engine_state", true);
	r = store_apply(st, &f->cfg, &ev, "replay", NULL, &es2, &acts);
	assert_true(r < 0);
	assert_non_null(strstr(store_errmsg(st), "injected fault"));
	assert_nothing_changed(st, f, last_id, act_id, &es);
	fault(f->db, "engine_state", false);

	/* The same event then applies cleanly, the sequence continues without a gap and
	 * the buffered track is committed with it. */
	apply_ok(st, f, &ev, "replay", NULL, &es2, &acts);
	assert_int_equal(store_last_event_id(st), last_id + 1);
	struct outbox *o = outbox_all(st);
	assert_int_equal(o->n, 2);
	assert_int_equal(o->o[1].seq, 2);
	char prev[65];
	sha256_hex(o->o[0].body, o->o[0].body_len, prev);
	assert_non_null(strstr(o->o[1].body, prev));
	assert_int_equal(store_track_pending(st), 0);
	struct pts *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(store_track(st, s.id, collect_pt, p), 0);
	assert_int_equal(p->n, 3);
	free(p);
	struct engine_state now;
	assert_int_equal(store_load_state(st, &now), 0);
	assert_int_equal(now.jobs_active, 7);
	store_close(st);
}

static void test_signer(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	int calls = 0;
	store_set_signer(st, sign_sha, &calls);
	struct shift sh;
	run_shift(st, f, &sh);
	assert_int_equal(calls, 4);
	struct outbox *o = outbox_all(st);
	assert_int_equal(o->n, 4);
	for (int i = 0; i < o->n; i++) {
		unsigned char d[32];
		assert_int_equal(mbedtls_sha256_ret((const unsigned char *)o->o[i].body,
		                                    o->o[i].body_len, d, 0), 0);
		assert_int_equal(o->o[i].sig_len, 32);
		assert_memory_equal(o->o[i].sig, d, 32);
	}
	store_close(st);
}

static void test_outbox_ack(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	struct shift sh;
	run_shift(st, f, &sh);

	int64_t depth, oldest;
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 4);
	assert_int_equal(oldest, T0 + MIN_MS);

	struct outbox o;
	memset(&o, 0, sizeof(o));
	assert_int_equal(store_outbox_next(st, 1, 2, collect_outbox, &o), 0);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.o[0].seq, 2);
	assert_int_equal(o.o[1].seq, 3);

	assert_int_equal(store_outbox_ack(st, 2, T0 + 3 * HOUR_MS), 0);
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 2);
	assert_int_equal(oldest, T0 + MIN_MS + HOUR_MS);
	memset(&o, 0, sizeof(o));
	assert_int_equal(store_outbox_next(st, 0, 10, collect_outbox, &o), 0);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.o[0].seq, 3);

	/* Again, and an older ack: nothing changes. */
	assert_int_equal(store_outbox_ack(st, 2, T0 + 4 * HOUR_MS), 0);
	assert_int_equal(store_outbox_ack(st, 1, T0 + 4 * HOUR_MS), 0);
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 2);
	assert_int_equal(db_int(f->db, "SELECT delivered_ms FROM outbox WHERE seq = 1"),
	                 T0 + 3 * HOUR_MS);

	assert_int_equal(store_outbox_ack(st, 4, T0 + 5 * HOUR_MS), 0);
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(oldest, 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(store_outbox_next(st, 0, 10, collect_outbox, &o), 0);
	assert_int_equal(o.n, 0);
	assert_int_equal(store_outbox_ack(st, -1, 0), -EINVAL);
	store_close(st);
}

static bool same_dbl(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

static void assert_act_equal(const struct engine_activation *a,
                             const struct engine_activation *b)
{
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->revision, b->revision);
	assert_int_equal(a->start_ms, b->start_ms);
	assert_int_equal(a->end_ms, b->end_ms);
	assert_int_equal(a->end_reason, b->end_reason);
	assert_true(same_dbl(a->distance_m, b->distance_m));
	assert_int_equal(a->moving_ms, b->moving_ms);
	assert_int_equal(a->jobs, b->jobs);
	assert_int_equal(a->start_pos.valid, b->start_pos.valid);
	assert_true(same_dbl(a->start_pos.lat, b->start_pos.lat));
	assert_true(same_dbl(a->start_pos.lon, b->start_pos.lon));
	assert_int_equal(a->end_pos.valid, b->end_pos.valid);
	assert_true(same_dbl(a->end_pos.lat, b->end_pos.lat));
	assert_true(same_dbl(a->end_pos.lon, b->end_pos.lon));
	assert_int_equal(a->tq, b->tq);
	assert_int_equal(a->anomalies, b->anomalies);
	assert_int_equal(a->alive, b->alive);
	assert_int_equal(a->alive_since_ms, b->alive_since_ms);
}

static void assert_state_equal(const struct engine_state *a, const struct engine_state *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->started, b->started);
	assert_int_equal(a->last_t_ms, b->last_t_ms);
	assert_int_equal(a->online, b->online);
	assert_int_equal(a->private_mode, b->private_mode);
	assert_int_equal(a->ignition_on, b->ignition_on);
	assert_int_equal(a->has_policy, b->has_policy);
	assert_int_equal(a->policy.assign, b->policy.assign);
	assert_string_equal(a->policy.policy_id, b->policy.policy_id);
	assert_string_equal(a->policy.driver_id, b->policy.driver_id);
	assert_string_equal(a->policy.vehicle_id, b->policy.vehicle_id);
	assert_int_equal(a->jobs_active, b->jobs_active);
	assert_int_equal(a->last_job_end_ms, b->last_job_end_ms);
	assert_int_equal(a->last_app_ms, b->last_app_ms);
	assert_int_equal(a->last_move_ms, b->last_move_ms);
	assert_int_equal(a->have_fix, b->have_fix);
	assert_int_equal(a->last_fix_ms, b->last_fix_ms);
	assert_true(same_dbl(a->last_fix.lat, b->last_fix.lat));
	assert_true(same_dbl(a->last_fix.lon, b->last_fix.lon));
	assert_true(same_dbl(a->last_fix.speed_mps, b->last_fix.speed_mps));
	assert_true(same_dbl(a->last_fix.course_deg, b->last_fix.course_deg));
	assert_true(same_dbl(a->last_fix.eph_m, b->last_fix.eph_m));
	assert_int_equal(a->last_fix.mode, b->last_fix.mode);
	assert_int_equal(a->last_fix_moving, b->last_fix_moving);
	assert_int_equal(a->sessions_total, b->sessions_total);
	assert_int_equal(a->rejected_total, b->rejected_total);
	assert_int_equal(a->s.open, b->s.open);
	assert_string_equal(a->s.id, b->s.id);
	assert_int_equal(a->s.ordinal, b->s.ordinal);
	assert_int_equal(a->s.trigger, b->s.trigger);
	assert_int_equal(a->s.start_ms, b->s.start_ms);
	assert_int_equal(a->s.end_ms, b->s.end_ms);
	assert_int_equal(a->s.end_reason, b->s.end_reason);
	assert_string_equal(a->s.policy_id, b->s.policy_id);
	assert_string_equal(a->s.driver_id, b->s.driver_id);
	assert_string_equal(a->s.vehicle_id, b->s.vehicle_id);
	assert_int_equal(a->s.n_acts, b->s.n_acts);
	for (int i = 0; i < a->s.n_acts; i++)
		assert_act_equal(&a->s.acts[i], &b->s.acts[i]);
	/* Revision 2 state: jobs by id, the grace, pending attribution, GNSS accounting. */
	assert_int_equal(a->n_jobs, b->n_jobs);
	for (int i = 0; i < a->n_jobs; i++) {
		assert_string_equal(a->jobs[i].id, b->jobs[i].id);
		assert_int_equal(a->jobs[i].accepted_ms, b->jobs[i].accepted_ms);
		assert_int_equal(a->jobs[i].last_ms, b->jobs[i].last_ms);
	}
	assert_int_equal(a->anon_jobs, b->anon_jobs);
	assert_int_equal(a->anon_first_ms, b->anon_first_ms);
	assert_int_equal(a->anon_last_ms, b->anon_last_ms);
	assert_int_equal(a->grace_from_ms, b->grace_from_ms);
	assert_int_equal(a->silence_ended, b->silence_ended);
	assert_int_equal(a->jobs_duplicate_total, b->jobs_duplicate_total);
	assert_int_equal(a->jobs_ignored_total, b->jobs_ignored_total);
	assert_int_equal(a->jobs_timeout_total, b->jobs_timeout_total);
	assert_memory_equal(&a->gnss, &b->gnss, sizeof(a->gnss));
	assert_int_equal(a->pend.at_ms, b->pend.at_ms);
	assert_int_equal(a->pend.jobs, b->pend.jobs);
	assert_int_equal(a->pend.anomalies, b->pend.anomalies);
	assert_int_equal(a->pend.tq, b->pend.tq);
	assert_int_equal(a->snap_grace.valid, b->snap_grace.valid);
	assert_int_equal(a->snap_grace.t_ms, b->snap_grace.t_ms);
	assert_int_equal(a->snap_grace.index, b->snap_grace.index);
	assert_int_equal(a->snap_grace.anomalies, b->snap_grace.anomalies);
	assert_int_equal(a->snap_grace.tq, b->snap_grace.tq);
	assert_int_equal(a->s.jobs_accepted, b->s.jobs_accepted);
}

static void rich_state(struct engine_state *s, int n_acts)
{
	memset(s, 0, sizeof(*s));
	s->version = ENGINE_STATE_VERSION;
	s->started = true;
	s->last_t_ms = T0 + 5 * HOUR_MS + 123;
	s->online = true;
	s->private_mode = false;
	s->ignition_on = true;
	s->has_policy = true;
	s->policy.assign = true;
	snprintf(s->policy.policy_id, sizeof(s->policy.policy_id), "P-\"quoted\"\\x");
	snprintf(s->policy.driver_id, sizeof(s->policy.driver_id), "D-ünïcode");
	snprintf(s->policy.vehicle_id, sizeof(s->policy.vehicle_id), "%s",
	         "V-0123456789012345678901234567890123456789-4567");   /* 47: the longest */
	s->jobs_active = 3;
	s->n_jobs = 2;
	snprintf(s->jobs[0].id, sizeof(s->jobs[0].id), "order-\"42\"");
	s->jobs[0].accepted_ms = T0 + 4 * HOUR_MS;
	s->jobs[0].last_ms = T0 + 4 * HOUR_MS + 60000;
	snprintf(s->jobs[1].id, sizeof(s->jobs[1].id), "%s",
	         "J-0123456789012345678901234567890123456789012345678901234567abc");  /* 63 */
	s->jobs[1].accepted_ms = T0 + 5 * HOUR_MS - 1;
	s->jobs[1].last_ms = T0 + 5 * HOUR_MS - 1;
	s->anon_jobs = 1;
	s->anon_first_ms = T0 + 3 * HOUR_MS;
	s->anon_last_ms = T0 + 3 * HOUR_MS + 5;
	s->grace_from_ms = T0 + 2 * HOUR_MS;
	s->silence_ended = true;
	s->jobs_duplicate_total = 4;
	s->jobs_ignored_total = 5;
	s->jobs_timeout_total = 6;
	s->gnss = (struct engine_gnss_stats){ 100, 2, 3, 4, 5, 654321 };
	s->pend = (struct engine_pending){ T0 + 5 * HOUR_MS, 2, ANOM_CLOCK_STEP, TQ_RTC };
	s->snap_grace = (struct engine_snap){ .valid = true, .t_ms = T0 + 2 * HOUR_MS, .index = 1,
		.distance_m = 12.5, .moving_ms = 77, .pos = { 51.0, -0.1, true },
		.anomalies = ANOM_MOCK_LOCATION, .tq = TQ_NTP };
	s->s.jobs_accepted = 9;
	s->last_job_end_ms = INT64_MIN;
	s->last_app_ms = T0 + 5 * HOUR_MS;
	s->last_move_ms = -1;
	s->have_fix = true;
	s->last_fix_ms = T0 + 5 * HOUR_MS - 7;
	s->last_fix = (struct engine_fix){ .lat = 51.123456789012345, .lon = -0.1 / 3.0,
		                           .speed_mps = NAN, .course_deg = 359.99,
		                           .eph_m = NAN, .mode = 2 };
	s->last_fix_moving = true;
	s->sessions_total = (1ULL << 60) + 3;   /* beyond a JSON number's exact range */
	s->rejected_total = 17;
	s->s.open = true;
	snprintf(s->s.id, sizeof(s->s.id), "dev-1-20261128T090000Z-%llu",
	         (unsigned long long)s->sessions_total);
	s->s.ordinal = s->sessions_total;
	s->s.trigger = TRIGGER_MOTION;
	s->s.start_ms = T0;
	s->s.end_ms = 0;
	s->s.end_reason = END_NONE;
	snprintf(s->s.policy_id, sizeof(s->s.policy_id), "P-1");
	snprintf(s->s.driver_id, sizeof(s->s.driver_id), "D-1");
	snprintf(s->s.vehicle_id, sizeof(s->s.vehicle_id), "V-1");
	s->s.n_acts = n_acts;
	for (int i = 0; i < n_acts; i++) {
		struct engine_activation *a = &s->s.acts[i];
		a->index = i;
		a->status = i + 1 < n_acts ? ACT_CLOSED : ACT_OPEN;
		a->revision = i + 1 < n_acts ? 2 : 1;
		a->start_ms = T0 + i * HOUR_MS;
		a->end_ms = i + 1 < n_acts ? T0 + (i + 1) * HOUR_MS : 0;
		a->end_reason = i + 1 < n_acts ? END_HOUR : END_NONE;
		a->distance_m = 1000.0 / 7.0 * (i + 1);
		a->moving_ms = 1234567 + i;
		a->jobs = i % 3;
		a->start_pos = (struct engine_pos){ 51.5 + i * 1e-9, -0.12, true };
		a->end_pos = (struct engine_pos){ 0, 0, false };
		a->tq = (enum engine_time_quality)(i % 4);
		a->anomalies = (uint32_t)(i % 8);
		a->alive = i == 0 ? ALIVE_START : (i % 4) + 1;
		a->alive_since_ms = T0 + i * 1000;
	}
	/* A slot past n_acts holds leftovers the engine never reads. */
	if (n_acts < ENGINE_MAX_ACTS)
		s->s.acts[n_acts].revision = 99;
}

static void test_state_round_trip(void **state)
{
	struct fx *f = *state;
	static struct engine_state saved, loaded;
	int sizes[] = { 0, 3, ENGINE_MAX_ACTS };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct store *st = open_rw(f);
		rich_state(&saved, sizes[k]);
		assert_int_equal(store_flush(st, &saved), 0);
		store_close(st);

		st = open_rw(f);
		memset(&loaded, 0xa5, sizeof(loaded));
		assert_int_equal(store_load_state(st, &loaded), 0);
		assert_state_equal(&loaded, &saved);
		/* Slots past n_acts come back empty, not as leftovers. */
		if (sizes[k] < ENGINE_MAX_ACTS)
			assert_int_equal(loaded.s.acts[sizes[k]].revision, 0);
		store_close(st);
	}

	/* A damaged state and one from another engine version are refused, not loaded. */
	sqlite3 *db = raw_open(f->db);
	assert_int_equal(sqlite3_exec(db, "UPDATE engine_state SET json = '{\"format\":1,"
	                                  "\"version\":1,\"started\":true}'", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	struct store *st = open_rw(f);
	assert_int_equal(store_load_state(st, &loaded), -EIO);
	assert_non_null(strstr(store_errmsg(st), f->db));
	store_close(st);
	db = raw_open(f->db);
	assert_int_equal(sqlite3_exec(db, "UPDATE engine_state SET json = '{\"format\":1,"
	                                  "\"version\":999}'", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	st = open_rw(f);
	assert_int_equal(store_load_state(st, &loaded), -EPROTO);
	store_close(st);
}

static void test_track_batching(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_state es;
	rich_state(&es, 1);
	struct pts *p = calloc(1, sizeof(*p));
	assert_non_null(p);

	for (int i = 0; i < 300; i++) {
		struct engine_fix fx = {
			.lat = 51.5 + i * 1.234567e-5, .lon = -0.12 - i * 1e-5,
			.speed_mps = i % 10 == 0 ? NAN : i * 0.0137,
			.course_deg = i % 7 == 0 ? NAN : fmod(i * 17.31, 360.0),
			.eph_m = i % 5 == 0 ? NAN : 3.0 + i * 0.05, .mode = 2 + i % 2,
		};
		es.last_t_ms = T0 + i * 1000;
		assert_int_equal(store_track_add(st, &es, T0 + i * 1000, &fx), 0);
		/* The buffer flushes itself when it fills. */
		assert_int_equal(store_track_pending(st), (size_t)((i + 1) % STORE_TRACK_BATCH));
	}
	assert_int_equal(store_track(st, NULL, collect_pt, p), 0);
	assert_int_equal(p->n, STORE_TRACK_BATCH);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM track"), 1);
	struct engine_state mid;
	assert_int_equal(store_load_state(st, &mid), 0);
	assert_int_equal(mid.last_t_ms, T0 + (STORE_TRACK_BATCH - 1) * 1000);

	assert_int_equal(store_flush(st, &es), 0);
	assert_int_equal(store_track_pending(st), 0);
	memset(p, 0, sizeof(*p));
	assert_int_equal(store_track(st, es.s.id, collect_pt, p), 0);
	assert_int_equal(p->n, 300);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(p->t[i], T0 + i * 1000);
		assert_string_equal(p->session[i], es.s.id);
		assert_true(fabs(p->f[i].lat - (51.5 + i * 1.234567e-5)) <= 0.6e-7);
		assert_true(fabs(p->f[i].lon - (-0.12 - i * 1e-5)) <= 0.6e-7);
		if (i % 10 == 0)
			assert_true(isnan(p->f[i].speed_mps));
		else
			assert_true(fabs(p->f[i].speed_mps - i * 0.0137) <= 0.005 + 1e-9);
		if (i % 7 == 0)
			assert_true(isnan(p->f[i].course_deg));
		else
			assert_true(fabs(p->f[i].course_deg - fmod(i * 17.31, 360.0)) <= 0.005 + 1e-9);
		if (i % 5 == 0)
			assert_true(isnan(p->f[i].eph_m));
		else
			assert_true(fabs(p->f[i].eph_m - (3.0 + i * 0.05)) <= 0.05 + 1e-9);
		assert_int_equal(p->f[i].mode, 2 + i % 2);
	}

	/* Points of two sessions in one flush land on their own sessions. */
	struct engine_state other = es;
	snprintf(other.s.id, sizeof(other.s.id), "dev-1-other-2");
	struct engine_fix fx = make_fix(1, 2, 3);
	assert_int_equal(store_track_add(st, &es, T0 + 400000, &fx), 0);
	assert_int_equal(store_track_add(st, &other, T0 + 401000, &fx), 0);
	assert_int_equal(store_track_add(st, &other, T0 + 402000, &fx), 0);
	assert_int_equal(store_flush(st, &other), 0);
	memset(p, 0, sizeof(*p));
	assert_int_equal(store_track(st, "dev-1-other-2", collect_pt, p), 0);
	assert_int_equal(p->n, 2);
	memset(p, 0, sizeof(*p));
	assert_int_equal(store_track(st, es.s.id, collect_pt, p), 0);
	assert_int_equal(p->n, 301);

	/* Closing flushes what is still buffered. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_track_add(st, &other, T0 + 500000 + i * 1000, &fx), 0);
	assert_int_equal(store_track_pending(st), 5);
	store_close(st);
	st = open_rw(f);
	memset(p, 0, sizeof(*p));
	assert_int_equal(store_track(st, "dev-1-other-2", collect_pt, p), 0);
	assert_int_equal(p->n, 7);
	struct engine_state back;
	assert_int_equal(store_load_state(st, &back), 0);
	assert_string_equal(back.s.id, "dev-1-other-2");

	fx.lat = NAN;
	assert_int_equal(store_track_add(st, &es, T0, &fx), -EINVAL);
	free(p);
	store_close(st);
}

/* When flushing fails the buffer keeps what it holds, a point that finds it still full
 * is dropped, and the drop is counted once the store writes again. */
static void test_track_flush_failure(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_state es;
	rich_state(&es, 1);
	assert_int_equal(store_flush(st, &es), 0);
	fault(f->db, "track", true);
	struct engine_fix fx = make_fix(51.5, -0.12, 5);
	for (int i = 0; i < STORE_TRACK_BATCH - 1; i++)
		assert_int_equal(store_track_add(st, &es, T0 + i * 1000, &fx), 0);
	/* The point that fills the buffer is kept; the flush it starts fails. */
	assert_true(store_track_add(st, &es, T0 + 300000, &fx) < 0);
	assert_int_equal(store_track_pending(st), STORE_TRACK_BATCH);
	assert_true(store_track_add(st, &es, T0 + 301000, &fx) < 0);
	assert_int_equal(store_track_pending(st), STORE_TRACK_BATCH);
	assert_true(store_flush(st, &es) < 0);
	assert_int_equal(counter(st, "track.dropped"), 0);

	fault(f->db, "track", false);
	assert_int_equal(store_flush(st, &es), 0);
	assert_int_equal(store_track_pending(st), 0);
	assert_int_equal(counter(st, "track.dropped"), 1);
	struct pts *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(store_track(st, NULL, collect_pt, p), 0);
	assert_int_equal(p->n, STORE_TRACK_BATCH);
	assert_int_equal(p->t[STORE_TRACK_BATCH - 1], T0 + 300000);
	free(p);
	store_close(st);
}

/* A periodic flush with nothing new writes nothing: an idle device does not wear its
 * flash on a timer. */
static void test_idle_flush_writes_nothing(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_state es;
	rich_state(&es, 2);
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_int_equal(store_flush(st, &es), 0);
	off_t w1 = file_size(wal);
	assert_true(w1 > 0);
	assert_int_equal(store_flush(st, &es), 0);
	assert_int_equal(store_flush(st, NULL), 0);
	assert_int_equal(file_size(wal), w1);
	es.last_t_ms += 1000;
	assert_int_equal(store_flush(st, &es), 0);
	assert_true(file_size(wal) > w1);
	store_close(st);
}

/* coverctl --state-dir opens the database read-only, also while the daemon holds it. */
static void test_read_only_beside_writer(void **state)
{
	struct fx *f = *state;
	struct store *w = open_rw(f);
	static struct engine_actions acts;
	struct engine_session_ref s;
	struct engine_state es;
	sess_init(&s, 1, T0, "P-1");
	struct engine_event ev = app_event(T0, APP_JOB_ACCEPTED);
	acts.n = 0;
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, T0, &s);
	add(&acts, ACTION_ACT_OPEN, RULE_START_JOB, T0, &s)->act = act_open(0, T0);
	state_for(&es, &s, true, T0);
	apply_ok(w, f, &ev, "replay", NULL, &es, &acts);

	struct store *ro = NULL;
	char err[512] = "";
	int r = store_open(&ro, f->db, STORE_RO, err, sizeof(err));
	if (r != 0)
		print_error("%s\n", err);
	assert_int_equal(r, 0);
	assert_int_equal(store_ping(ro), 0);
	struct sessions ss = { 0 };
	assert_int_equal(store_sessions(ro, collect_session, &ss), 0);
	assert_int_equal(ss.n, 1);
	assert_true(ss.s[0].r.open);

	/* The reader refuses to write. */
	assert_int_equal(store_apply(ro, &f->cfg, &ev, "ipc", NULL, &es, &acts), -EROFS);
	assert_int_equal(store_count_add(ro, "x", 1), -EROFS);
	assert_int_equal(store_outbox_ack(ro, 1, 0), -EROFS);

	/* The writer carries on while the reader is open, and the reader sees it. */
	ev = app_event(T0 + HOUR_MS / 2, APP_OFFLINE);
	acts.n = 0;
	struct engine_activation a = act_open(0, T0);
	act_close(&a, ev.t_ms, END_OFFLINE);
	s.end_ms = ev.t_ms;
	s.end_reason = END_OFFLINE;
	add(&acts, ACTION_ACT_CLOSE, RULE_OFFLINE, ev.t_ms, &s)->act = a;
	add(&acts, ACTION_SESSION_CLOSE, RULE_OFFLINE, ev.t_ms, &s);
	state_for(&es, &s, false, ev.t_ms);
	apply_ok(w, f, &ev, "ipc", NULL, &es, &acts);
	memset(&ss, 0, sizeof(ss));
	assert_int_equal(store_sessions(ro, collect_session, &ss), 0);
	assert_false(ss.s[0].r.open);
	struct engine_state loaded;
	assert_int_equal(store_load_state(ro, &loaded), 0);
	assert_false(loaded.s.open);
	store_close(ro);
	store_close(w);

	/* And with no writer at all (no -wal or -shm left behind). */
	r = store_open(&ro, f->db, STORE_RO, err, sizeof(err));
	if (r != 0)
		print_error("%s\n", err);
	assert_int_equal(r, 0);
	memset(&ss, 0, sizeof(ss));
	assert_int_equal(store_sessions(ro, collect_session, &ss), 0);
	assert_int_equal(ss.n, 1);
	store_close(ro);
}

static void read_file(const char *path, char **buf, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	long n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	*buf = malloc((size_t)n + 1);
	assert_non_null(*buf);
	assert_int_equal(fread(*buf, 1, (size_t)n, fp), (size_t)n);
	(*buf)[n] = '\0';
	*len = (size_t)n;
	fclose(fp);
}

static void test_migration_from_v1_fixture(void **state)
{
	struct fx *f = *state;
	char *sql;
	size_t len;
	read_file(STORE_TEST_DATA_DIR "/store-v1.sql", &sql, &len);
	sqlite3 *db = raw_open(f->db);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		print_error("%s\n", msg);
	assert_int_equal(rc, SQLITE_OK);
	free(sql);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
	sqlite3_close(db);

	/* Read-only cannot upgrade, and says so. */
	struct store *st = NULL;
	char err[512] = "";
	assert_int_equal(store_open(&st, f->db, STORE_RO, err, sizeof(err)), -EPROTO);
	assert_null(st);
	assert_non_null(strstr(err, f->db));

	st = open_rw(f);
	assert_int_equal(db_int(f->db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'"
	                               " AND name = 'outbox_pending'"), 1);

	const char *sid = "fixture-dev-20261128T090100Z-1";
	struct sessions ss = { 0 };
	assert_int_equal(store_sessions(st, collect_session, &ss), 0);
	assert_int_equal(ss.n, 1);
	assert_string_equal(ss.s[0].id, sid);
	assert_string_equal(ss.s[0].end_reason, "offline");
	assert_int_equal(ss.s[0].r.end_ms, T0 + 4860000);
	assert_int_equal(ss.s[0].r.n_activations, 2);

	struct acts *a = acts_all(st, sid);
	assert_int_equal(a->n, 2);
	assert_int_equal(a->a[0].r.open_event_id, 2);
	assert_int_equal(a->a[0].r.close_event_id, 4);
	assert_true(a->a[0].r.distance_m == 1234.5);
	assert_string_equal(a->a[1].tq, "ntp");
	assert_int_equal(a->a[1].r.anomalies, ANOM_POSITION_JUMP);

	struct ev_copy e;
	assert_int_equal(store_event_get(st, 7, collect_event, &e), 0);
	assert_string_equal(e.reason, "bad_fix");

	/* Schema 2's counters were rebuilt from schema 1's journal. */
	assert_int_equal(counter(st, "rejected.out_of_order"), 2);
	assert_int_equal(counter(st, "rejected.bad_fix"), 1);

	/* The outbox kept its rows, delivery marks and bodies; old rows have no signature. */
	int64_t depth, oldest;
	assert_int_equal(store_outbox_depth(st, &depth, &oldest), 0);
	assert_int_equal(depth, 3);
	assert_int_equal(oldest, T0 + 3660000);
	struct outbox *o = outbox_all(st);
	assert_int_equal(o->n, 3);
	assert_int_equal(o->o[0].seq, 2);
	assert_int_equal(o->o[2].seq, 4);
	assert_int_equal(o->o[2].sig_len, 0);
	char prev4[65];
	sha256_hex(o->o[2].body, o->o[2].body_len, prev4);
	assert_string_equal(prev4,
	                    "59639ef9c80aa3d7be82c44b6518674c91957f6e02c8c648ad407b61b0ef4f64");

	struct pts *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(store_track(st, sid, collect_pt, p), 0);
	assert_int_equal(p->n, 3);
	assert_int_equal(p->t[2], T0 + 63000);
	assert_true(fabs(p->f[1].lat - 51.50005) < 1e-9);
	assert_true(isnan(p->f[2].speed_mps));
	free(p);

	struct engine_state es;
	assert_int_equal(store_load_state(st, &es), 0);
	assert_string_equal(es.s.id, sid);
	assert_int_equal(es.s.n_acts, 2);
	assert_int_equal(es.s.acts[1].end_reason, END_OFFLINE);
	assert_int_equal(es.last_job_end_ms, INT64_MIN);
	assert_true(isnan(es.last_fix.speed_mps));
	assert_int_equal(es.rejected_total, 3);

	/* New records continue the fixture's sequence and hash chain. */
	static struct engine_actions acts;
	struct engine_session_ref s;
	sess_init(&s, 2, T0 + 2 * HOUR_MS, "P-1");
	struct engine_event ev = app_event(T0 + 2 * HOUR_MS, APP_JOB_ACCEPTED);
	acts.n = 0;
	add(&acts, ACTION_SESSION_OPEN, RULE_START_JOB, ev.t_ms, &s);
	add(&acts, ACTION_ACT_OPEN, RULE_START_JOB, ev.t_ms, &s)->act = act_open(0, ev.t_ms);
	state_for(&es, &s, true, ev.t_ms);
	apply_ok(st, f, &ev, "replay", NULL, &es, &acts);
	assert_int_equal(store_last_event_id(st), 8);
	o = outbox_all(st);
	assert_int_equal(o->n, 4);
	assert_int_equal(o->o[3].seq, 5);
	assert_non_null(strstr(o->o[3].body, prev4));
	store_close(st);

	/* Opening again runs no migration and changes nothing. */
	st = open_rw(f);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM outbox"), 5);
	store_close(st);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Both modes refuse a damaged file with a message naming it, and leave it untouched. */
static void assert_refused(struct fx *f, int want, const char *reason)
{
	char *before, *after;
	size_t n1, n2;
	read_file(f->db, &before, &n1);
	enum store_mode modes[] = { STORE_RW, STORE_RO };
	for (int m = 0; m < 2; m++) {
		struct store *st = NULL;
		char err[512] = "";
		int r = store_open(&st, f->db, modes[m], err, sizeof(err));
		assert_int_equal(r, want);
		assert_null(st);
		assert_non_null(strstr(err, f->db));
		if (strstr(err, reason) == NULL)
			print_error("message \"%s\" lacks \"%s\"\n", err, reason);
		assert_non_null(strstr(err, reason));
		assert_string_not_equal(store_strerror(r), "");
	}
	read_file(f->db, &after, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(before, after, n1);
	free(before);
	free(after);
}

static void test_garbage_file(void **state)
{
	struct fx *f = *state;
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)("not a database, just text\n"[i % 26]);
	write_file(f->db, junk, sizeof(junk));
	assert_refused(f, -EIO, "not a database");

	/* Random bytes, and a file shorter than a database header. */
	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(rand() & 0xff);
	write_file(f->db, junk, sizeof(junk));
	assert_refused(f, -EIO, "not a database");
	write_file(f->db, "SQLite format 3", 15);
	assert_refused(f, -EIO, "not a database");
}

/* A real database cut short, at a page boundary and in the middle of a page. */
static void test_truncated_file(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_actions acts;
	struct engine_state es;
	state_for(&es, NULL, false, T0);
	char raw[600];
	memset(raw, 'x', sizeof(raw) - 1);
	raw[sizeof(raw) - 1] = '\0';
	acts.n = 0;
	for (int i = 0; i < 200; i++) {
		struct engine_event ev = app_event(T0 + i, APP_HEARTBEAT);
		apply_ok(st, f, &ev, "ipc", raw, &es, &acts);
	}
	store_close(st);
	off_t size = file_size(f->db);
	assert_true(size >= 100 * 1024);

	assert_int_equal(truncate(f->db, (size / 2) & ~(off_t)4095), 0);
	assert_refused(f, -EIO, "malformed");
	assert_int_equal(truncate(f->db, size / 3 + 1000), 0);
	assert_refused(f, -EIO, "malformed");
}

static void test_newer_schema(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = raw_open(f->db);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 99;",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_refused(f, -EPROTO, "schema version 99 is newer");
	assert_int_equal(db_int(f->db, "PRAGMA user_version"), 99);
	/* A negative version is no coverd's at all, not a newer one (issue 7, item 6). */
	db = raw_open(f->db);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = -1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_refused(f, -EPROTO, "schema version -1 is not one coverd writes");
	assert_int_equal(db_int(f->db, "PRAGMA user_version"), -1);
}

static void test_missing_paths(void **state)
{
	struct fx *f = *state;
	struct store *st = NULL;
	char err[512] = "";
	assert_int_equal(store_open(&st, f->db, STORE_RO, err, sizeof(err)), -ENOENT);
	assert_null(st);
	assert_non_null(strstr(err, f->db));
	assert_int_equal(file_size(f->db), -1);   /* read-only created nothing */

	char deep[PATH_MAX + 32];
	snprintf(deep, sizeof(deep), "%s/no/such/dir/coverd.db", f->dir);
	int r = store_open(&st, deep, STORE_RW, err, sizeof(err));
	assert_true(r < 0);
	assert_null(st);
	assert_non_null(strstr(err, deep));
	assert_int_equal(store_open(&st, "", STORE_RW, err, sizeof(err)), -EINVAL);
}

/* Events given without their raw line are journaled in the scenario format, and read
 * back through the same codec as they came in. */
static void test_normalised_event_json(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_actions acts;
	struct engine_state es;
	state_for(&es, NULL, false, T0);
	acts.n = 0;

	struct engine_event evs[7];
	memset(evs, 0, sizeof(evs));
	evs[0].type = COV_EV_FIX;
	evs[0].u.fix = (struct engine_fix){ .lat = 51.123456789, .lon = -0.5, .speed_mps = 4.25,
		                            .course_deg = NAN, .eph_m = 6, .mode = 2 };
	evs[0].anomalies = ANOM_MOCK_LOCATION;
	evs[1].type = COV_EV_POLICY;
	evs[1].u.policy.assign = true;
	snprintf(evs[1].u.policy.policy_id, ENGINE_ID_MAX, "P-9");
	snprintf(evs[1].u.policy.driver_id, ENGINE_ID_MAX, "D-9");
	evs[2].type = COV_EV_IGNITION;
	evs[2].u.ignition_on = true;
	evs[3].type = COV_EV_POWER;
	evs[3].u.power = POWER_SHUTDOWN;
	evs[4].type = COV_EV_CMD;
	evs[4].u.cmd = CMD_END_COVER;
	evs[5].type = COV_EV_TICK;
	evs[5].tq = TQ_RTC;
	evs[5].anomalies = ANOM_CLOCK_STEP;
	evs[6].type = COV_EV_APP;
	evs[6].u.app = APP_JOB_DELIVERED;
	snprintf(evs[6].job_id, sizeof(evs[6].job_id), "order 17/b");
	for (int i = 0; i < 7; i++) {
		evs[i].t_ms = T0 + i * 1500;
		apply_ok(st, f, &evs[i], "test", NULL, &es, &acts);
		struct ev_copy e;
		assert_int_equal(store_event_get(st, store_last_event_id(st), collect_event, &e), 0);
		struct engine_event back;
		enum evjson_kind kind;
		char err[256] = "";
		int r = evjson_parse(e.json, strlen(e.json), 1, &back, &kind, err, sizeof(err));
		if (r != 0)
			print_error("%s: %s\n", e.json, err);
		assert_int_equal(r, 0);
		assert_int_equal(kind, EVJSON_ENGINE);
		assert_int_equal(back.type, evs[i].type);
		assert_int_equal(back.t_ms, evs[i].t_ms);
		assert_int_equal(back.tq, evs[i].tq);
		assert_int_equal(back.anomalies, evs[i].anomalies);
		assert_string_equal(back.job_id, evs[i].job_id);
	}
	struct ev_copy e;
	assert_int_equal(store_event_get(st, 1, collect_event, &e), 0);
	assert_non_null(strstr(e.json, "\"lat\":51.123456789"));
	assert_null(strstr(e.json, "course"));
	store_close(st);
}

/* ---- socket requests with an id (docs/ipc.md, "Retries") ------------------------------ */

struct reply_ctx {
	int calls;
	bool fail;
};

static int make_reply(void *ctx, int64_t event_id, char *buf, size_t len)
{
	struct reply_ctx *r = ctx;
	r->calls++;
	if (r->fail)
		return -ENOMEM;
	snprintf(buf, len, "{\"ok\":true,\"accepted\":true,\"event_id\":%lld}",
	         (long long)event_id);
	return 0;
}

struct req_copy {
	bool found, same;
	char id[STORE_REQ_ID_MAX + 1], reply[STORE_REQ_REPLY_MAX + 1];
	int64_t t_ms, event_id;
};

static int copy_req(void *ctx, const struct store_request_row *r)
{
	struct req_copy *c = ctx;
	c->found = true;
	c->same = r->same;
	copy_str(c->id, sizeof(c->id), r->id);
	copy_str(c->reply, sizeof(c->reply), r->reply);
	c->t_ms = r->t_ms;
	c->event_id = r->event_id;
	return 0;
}

static int get_req(struct store *st, const char *id, const char *request, int64_t now,
                   struct req_copy *c)
{
	memset(c, 0, sizeof(*c));
	return store_request_get(st, id, request, strlen(request), now, copy_req, c);
}

/* One heartbeat applied with the request armed; returns its journal id. */
static int64_t apply_request(struct store *st, struct fx *f, const char *id, const char *req,
                             int64_t t, struct reply_ctx *rc)
{
	static struct engine_actions acts;
	struct engine_state es;
	state_for(&es, NULL, false, t);
	struct engine_event ev = app_event(t, APP_HEARTBEAT);
	acts.n = 0;
	assert_int_equal(store_request_arm(st, id, req, strlen(req), make_reply, rc), 0);
	apply_ok(st, f, &ev, "ipc", req, &es, &acts);
	return store_last_event_id(st);
}

/*
 * The request and its reply are recorded in the event's own transaction: after a commit
 * both are there, after any failure neither; the record survives a reopen; a different
 * request under the same id is told apart; the window keeps the last STORE_REQ_KEEP ids of
 * the last STORE_REQ_AGE_MS.
 */
static void test_requests(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	static struct engine_actions acts;
	static const char req1[] = "{\"type\":\"app\",\"event\":\"job_accepted\",\"id\":\"r-1\"}";
	struct reply_ctx rc = { 0 };
	struct req_copy c;

	assert_int_equal(get_req(st, "r-1", req1, T0, &c), -ENOENT);
	assert_string_equal(store_request_reply(st), "");

	/* Recorded with the event: the reply names the journal id the event got. */
	int64_t id1 = apply_request(st, f, "r-1", req1, T0, &rc);
	assert_int_equal(rc.calls, 1);
	char want[128];
	snprintf(want, sizeof(want), "{\"ok\":true,\"accepted\":true,\"event_id\":%lld}",
	         (long long)id1);
	assert_string_equal(store_request_reply(st), want);
	assert_int_equal(get_req(st, "r-1", req1, T0 + MIN_MS, &c), 0);
	assert_true(c.found && c.same);
	assert_string_equal(c.id, "r-1");
	assert_string_equal(c.reply, want);
	assert_int_equal(c.event_id, id1);
	assert_int_equal(c.t_ms, T0);
	/* Other bytes under the same id: found, not the same request. */
	assert_int_equal(get_req(st, "r-1", "{\"type\":\"app\",\"event\":\"offline\"}", T0, &c), 0);
	assert_true(c.found && !c.same);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM requests"), 1);

	/* A store_apply without an armed request records none; the next one after an armed
	 * one is not affected by it (consumed), and a disarmed one records nothing. */
	struct engine_state es;
	state_for(&es, NULL, false, T0 + 1000);
	struct engine_event ev = app_event(T0 + 1000, APP_HEARTBEAT);
	acts.n = 0;
	apply_ok(st, f, &ev, "ipc", NULL, &es, &acts);
	assert_string_equal(store_request_reply(st), "");
	assert_int_equal(store_request_arm(st, "r-x", req1, strlen(req1), make_reply, &rc), 0);
	store_request_disarm(st);
	apply_ok(st, f, &ev, "ipc", NULL, &es, &acts);
	assert_int_equal(get_req(st, "r-x", req1, T0, &c), -ENOENT);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM requests"), 1);

	/* Failure 1: the reply cannot be made: nothing of the event is stored. */
	int64_t last = store_last_event_id(st);
	static const char req2[] = "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"r-2\"}";
	rc.fail = true;
	assert_int_equal(store_request_arm(st, "r-2", req2, strlen(req2), make_reply, &rc), 0);
	ev = app_event(T0 + 2000, APP_HEARTBEAT);
	state_for(&es, NULL, false, T0 + 2000);
	assert_int_equal(store_apply(st, &f->cfg, &ev, "ipc", req2, &es, &acts), -ENOMEM);
	assert_non_null(strstr(store_errmsg(st), "r-2"));
	assert_string_equal(store_request_reply(st), "");
	rc.fail = false;
	struct ev_copy e;
	assert_int_equal(store_event_get(st, last + 1, collect_event, &e), -ENOENT);
	assert_int_equal(get_req(st, "r-2", req2, T0 + 2000, &c), -ENOENT);
	/* ...and it was consumed: the same event applied next records no request. */
	apply_ok(st, f, &ev, "ipc", req2, &es, &acts);
	assert_int_equal(get_req(st, "r-2", req2, T0 + 2000, &c), -ENOENT);
	last = store_last_event_id(st);

	/* Failure 2: the request row itself cannot be written: the event is not stored either
	 * (a crash can never apply without recording). */
	fault(f->db, "requests", true);
	assert_int_equal(store_request_arm(st, "r-3", req2, strlen(req2), make_reply, &rc), 0);
	assert_true(store_apply(st, &f->cfg, &ev, "ipc", req2, &es, &acts) < 0);
	assert_non_null(strstr(store_errmsg(st), "injected fault"));
	assert_int_equal(store_event_get(st, last + 1, collect_event, &e), -ENOENT);
	fault(f->db, "requests", false);
	assert_int_equal(get_req(st, "r-3", req2, T0 + 2000, &c), -ENOENT);

	/* Failure 3: the event's own write fails after the request row was made: neither is
	 * stored (nor recorded without applying). */
	fault(f->db, "engine_state", true);
	assert_int_equal(store_request_arm(st, "r-3", req2, strlen(req2), make_reply, &rc), 0);
	assert_true(store_apply(st, &f->cfg, &ev, "ipc", req2, &es, &acts) < 0);
	fault(f->db, "engine_state", false);
	assert_int_equal(store_event_get(st, last + 1, collect_event, &e), -ENOENT);
	assert_int_equal(get_req(st, "r-3", req2, T0 + 2000, &c), -ENOENT);

	/* Bad arguments. */
	char id64[STORE_REQ_ID_MAX + 2];
	memset(id64, 'i', sizeof(id64) - 1);
	id64[sizeof(id64) - 1] = '\0';
	assert_int_equal(store_request_arm(st, "", req1, strlen(req1), make_reply, &rc), -EINVAL);
	assert_int_equal(store_request_arm(st, id64, req1, strlen(req1), make_reply, &rc), -EINVAL);
	assert_int_equal(store_request_arm(st, "r", req1, strlen(req1), NULL, &rc), -EINVAL);
	assert_int_equal(store_request_get(st, id64, req1, strlen(req1), T0, copy_req, &c), -EINVAL);

	/* Persisted: a reopened store answers the same. */
	store_close(st);
	st = open_rw(f);
	assert_int_equal(get_req(st, "r-1", req1, T0 + HOUR_MS, &c), 0);
	assert_true(c.same);
	assert_string_equal(c.reply, want);

	/* The age bound: 24 h after receipt the id is out of the window, even before the row
	 * is pruned, and a new request may use it again. */
	assert_int_equal(get_req(st, "r-1", req1, T0 + STORE_REQ_AGE_MS, &c), 0);
	assert_int_equal(get_req(st, "r-1", req1, T0 + STORE_REQ_AGE_MS + 1, &c), -ENOENT);
	int64_t later = T0 + STORE_REQ_AGE_MS + 1;
	int64_t id_again = apply_request(st, f, "r-1", req2, later, &rc);
	assert_int_equal(get_req(st, "r-1", req2, later, &c), 0);
	assert_true(c.same);
	assert_int_equal(c.event_id, id_again);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM requests"), 1);

	/* The count bound: the most recent STORE_REQ_KEEP ids are kept. */
	char rid[32], body[96];
	for (int i = 0; i < STORE_REQ_KEEP + 3; i++) {
		snprintf(rid, sizeof(rid), "n-%d", i);
		snprintf(body, sizeof(body), "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"%s\"}",
		         rid);
		(void)apply_request(st, f, rid, body, later + 1 + i, &rc);
	}
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM requests"), STORE_REQ_KEEP);
	int64_t now = later + STORE_REQ_KEEP + 3;
	assert_int_equal(get_req(st, "r-1", req2, now, &c), -ENOENT);
	for (int i = 0; i < STORE_REQ_KEEP + 3; i++) {
		snprintf(rid, sizeof(rid), "n-%d", i);
		snprintf(body, sizeof(body), "{\"type\":\"app\",\"event\":\"heartbeat\",\"id\":\"%s\"}",
		         rid);
		int r = get_req(st, rid, body, now, &c);
		if (i < 3)
			assert_int_equal(r, -ENOENT);
		else
			assert_true(r == 0 && c.same);
	}
	store_close(st);
}

/* The 3 -> 4 migration adds the requests table to a database of schema 3. */
static void test_requests_migration(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	struct shift sh;
	run_shift(st, f, &sh);
	store_close(st);
	sqlite3 *db = raw_open(f->db);
	/* A database of schema 3 had neither the requests table nor schema 5's columns. */
	assert_int_equal(sqlite3_exec(db, "DROP TABLE requests;"
	                              " ALTER TABLE activations DROP COLUMN alive;"
	                              " ALTER TABLE activations DROP COLUMN alive_since;"
	                              " PRAGMA user_version = 3;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_rw(f);
	assert_int_equal(db_int(f->db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM requests"), 0);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM sessions"), 1);
	struct reply_ctx rc = { 0 };
	static const char req[] = "{\"type\":\"app\",\"event\":\"online\",\"id\":\"m-1\"}";
	int64_t id = apply_request(st, f, "m-1", req, T0 + 3 * HOUR_MS, &rc);
	struct req_copy c;
	assert_int_equal(get_req(st, "m-1", req, T0 + 3 * HOUR_MS, &c), 0);
	assert_int_equal(c.event_id, id);
	store_close(st);
}

/*
 * What kept cover alive when each hour began is written with the activation and read
 * back; the 4 -> 5 migration adds the columns to a database of schema 4, whose rows then
 * say "not recorded" (-1, INT64_MIN), and new rows are recorded again.
 */
static void test_alive_columns(void **state)
{
	struct fx *f = *state;
	struct store *st = open_rw(f);
	struct shift sh;
	run_shift(st, f, &sh);
	struct acts *a = acts_all(st, sh.s.id);
	assert_int_equal(a->n, 2);
	assert_int_equal(a->a[0].r.alive, ALIVE_START);
	assert_int_equal(a->a[0].r.alive_since_ms, sh.s.start_ms);
	/* Opened as a job in progress since the session's start; its close kept that. */
	assert_string_equal(a->a[1].status, "closed");
	assert_int_equal(a->a[1].r.alive, ALIVE_JOB);
	assert_int_equal(a->a[1].r.alive_since_ms, sh.s.start_ms);
	assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM activations WHERE alive = 'job'"), 1);
	store_close(st);

	sqlite3 *db = raw_open(f->db);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE activations DROP COLUMN alive;"
	                              " ALTER TABLE activations DROP COLUMN alive_since;"
	                              " PRAGMA user_version = 4;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_rw(f);
	assert_int_equal(db_int(f->db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	a = acts_all(st, sh.s.id);
	assert_int_equal(a->n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(a->a[i].r.alive, -1);
		assert_int_equal(a->a[i].r.alive_since_ms, INT64_MIN);
	}
	/* The column refuses a name the engine does not have. */
	db = raw_open(f->db);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE activations SET alive = 'bogus'", NULL,
	                                  NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_and_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_and_open_in_one_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_track_batching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_track_flush_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_flush_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_beside_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v1_fixture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alive_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_normalised_event_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests_migration, setup, teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
