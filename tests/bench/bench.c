/*
 * bench.c - coverd-bench: the two store figures of issue 2, from one run.
 *
 *  (a) Bytes written per hour of 1 Hz on-cover tracking: 3600 fixes through the engine
 *      and the store exactly as daemon/core.c feeds them (a fix with nothing billable
 *      goes to store_track_add, anything else to store_apply, store_flush every 30 s of
 *      the timeline), against a naive writer that commits every fix as its own row and
 *      transaction in a plain SQLite database with the same durability (WAL,
 *      synchronous=FULL). Target: the store writes at most 1/20 of the naive writer.
 *
 *  (b) Replay throughput: a synthetic shift of N scenario lines (fixes at 1 Hz, app
 *      events, heartbeats) parsed by evjson, stepped by the engine and stored, which is
 *      what `coverd --replay FILE --speed max` does per line, against a raw SQLite insert
 *      of the same N lines as rows, with the same durability and the same commits (the
 *      raw writer commits after exactly the lines after which the store committed).
 *      Target: the store reaches at least 0.5 of the raw rate.
 *
 * Usage: coverd-bench [--dir DIR] [--events N] [--rounds R]
 * DIR must be on the storage the figures are meant for: /proc's write_bytes counts
 * nothing on tmpfs. The default is a fresh directory under $TMPDIR or /var/tmp, removed
 * afterwards. Not a test: it asserts nothing and is not registered with ctest.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "engine.h"
#include "evjson.h"
#include "store.h"

#define T0 1795856400000LL   /* 2026-11-28T09:00:00Z */
#define FLUSH_MS 30000       /* track_flush_ms, the daemon's default */
#define LINE_MAX_LEN 256
#define TMPFS_MAGIC_NUM 0x01021994
#define MAX_ROUNDS 15

struct io {
	long long write_bytes, wchar;
};

static int read_io(struct io *io)
{
	FILE *fp = fopen("/proc/self/io", "r");
	if (fp == NULL)
		return -errno;
	char key[64];
	long long v;
	io->write_bytes = io->wchar = -1;
	while (fscanf(fp, "%63[^:]: %lld\n", key, &v) == 2) {
		if (strcmp(key, "write_bytes") == 0)
			io->write_bytes = v;
		else if (strcmp(key, "wchar") == 0)
			io->wchar = v;
	}
	fclose(fp);
	return io->write_bytes >= 0 && io->wchar >= 0 ? 0 : -EIO;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

static long long db_files_size(const char *db)
{
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", db);
	return file_size(db) + file_size(wal);
}

static void remove_db(const char *db)
{
	char p[PATH_MAX + 8];
	unlink(db);
	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
}

static void die(const char *what, int r, const char *msg)
{
	fprintf(stderr, "coverd-bench: %s: %s%s%s\n", what, r < 0 ? strerror(-r) : "error",
	        msg != NULL ? ": " : "", msg != NULL ? msg : "");
	exit(1);
}

static void sql_ok(sqlite3 *db, int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "coverd-bench: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

/* ---- the daemon's per-event path (daemon/core.c, submit and core_flush) ------------ */

struct runner {
	struct store *st;
	struct engine_config cfg;
	struct engine_state es;
	struct engine_actions acts;
	bool dirty;
	int64_t last_flush_ms;
	long commits;
};

/* Returns true when the event committed a transaction (store_apply, or a track buffer
 * that filled and flushed itself). */
static bool submit(struct runner *r, const struct engine_event *ev, const char *raw)
{
	int rj = engine_step(&r->cfg, &r->es, ev, &r->acts);
	bool billing = false;
	for (size_t i = 0; i < r->acts.n; i++)
		if (r->acts.a[i].type != ACTION_TRACK)
			billing = true;
	int rc = 0;
	bool committed = false;
	if (rj == 0 && !billing && (ev->type == COV_EV_FIX || ev->type == COV_EV_TICK)) {
		for (size_t i = 0; i < r->acts.n && rc == 0; i++) {
			rc = store_track_add(r->st, &r->es, r->acts.a[i].at_ms, &r->acts.a[i].fix);
			if (rc == 0 && store_track_pending(r->st) == 0)
				committed = true;   /* the buffer filled and was flushed */
		}
		r->dirty = true;
	} else {
		rc = store_apply(r->st, &r->cfg, ev, "replay", raw, &r->es, &r->acts);
		r->dirty = false;
		committed = true;
	}
	if (rc != 0)
		die("store", rc, store_errmsg(r->st));
	if (committed)
		r->commits++;
	return committed;
}

/* The flush timer: every FLUSH_MS of the timeline, when anything is unsaved. */
static bool maybe_flush(struct runner *r, int64_t t_ms, bool force)
{
	if (!force && t_ms - r->last_flush_ms < FLUSH_MS)
		return false;
	r->last_flush_ms = t_ms;
	if (!r->dirty && store_track_pending(r->st) == 0)
		return false;
	int rc = store_flush(r->st, &r->es);
	if (rc != 0)
		die("store_flush", rc, store_errmsg(r->st));
	r->dirty = false;
	r->commits++;
	return true;
}

static void runner_open(struct runner *r, const char *db)
{
	char err[512];
	memset(r, 0, sizeof(*r));
	engine_config_defaults(&r->cfg);
	snprintf(r->cfg.device_id, sizeof(r->cfg.device_id), "bench-dev");
	engine_state_init(&r->es);
	int rc = store_open(&r->st, db, STORE_RW, err, sizeof(err));
	if (rc != 0)
		die("store_open", rc, err);
}

static struct engine_event app_ev(int64_t t, enum engine_app_event e)
{
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.t_ms = t;
	ev.type = COV_EV_APP;
	ev.u.app = e;
	return ev;
}

/* A vehicle driving a slow circle through central London at about 8 m/s. */
static struct engine_fix fix_at(long i)
{
	double a = (double)i / 600.0;
	struct engine_fix f = {
		.lat = 51.5 + 0.02 * sin(a), .lon = -0.12 + 0.03 * cos(a),
		.speed_mps = 8.0 + (double)(i % 7) * 0.1, .course_deg = fmod((double)i * 0.6, 360.0),
		.eph_m = 4.0 + (double)(i % 5), .mode = 3,
	};
	return f;
}

/* ---- (a) bytes written per hour of tracking --------------------------------------- */

struct bytes {
	struct io d;        /* /proc/self/io deltas */
	long long growth;   /* database + WAL size after the hour minus before */
	long commits;
};

static void io_delta(struct io *d, const struct io *a, const struct io *b)
{
	d->write_bytes = b->write_bytes - a->write_bytes;
	d->wchar = b->wchar - a->wchar;
}

static void bytes_store(const char *dir, struct bytes *out)
{
	char db[PATH_MAX];
	snprintf(db, sizeof(db), "%s/store.db", dir);
	remove_db(db);
	static struct runner r;
	runner_open(&r, db);

	/* Setup, not measured: a policy, online, a job accepted; the session is open. */
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.t_ms = T0;
	ev.type = COV_EV_POLICY;
	ev.u.policy.assign = true;
	snprintf(ev.u.policy.policy_id, ENGINE_ID_MAX, "P-1");
	snprintf(ev.u.policy.driver_id, ENGINE_ID_MAX, "D-1");
	snprintf(ev.u.policy.vehicle_id, ENGINE_ID_MAX, "V-1");
	submit(&r, &ev, NULL);
	ev = app_ev(T0 + 1000, APP_ONLINE);
	submit(&r, &ev, NULL);
	ev = app_ev(T0 + 2000, APP_JOB_ACCEPTED);
	submit(&r, &ev, NULL);
	if (!r.es.s.open)
		die("setup", -EINVAL, "no session opened");
	r.last_flush_ms = T0 + 2000;
	r.commits = 0;

	struct io a, b;
	long long size0 = db_files_size(db);
	if (read_io(&a) != 0)
		die("/proc/self/io", -EIO, NULL);
	for (long i = 1; i <= 3600; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.t_ms = T0 + 2000 + i * 1000;
		ev.type = COV_EV_FIX;
		ev.u.fix = fix_at(i);
		submit(&r, &ev, NULL);
		maybe_flush(&r, ev.t_ms, false);
	}
	maybe_flush(&r, T0 + 2000 + 3600 * 1000, true);
	out->growth = db_files_size(db) - size0;
	store_close(r.st);
	if (read_io(&b) != 0)
		die("/proc/self/io", -EIO, NULL);
	io_delta(&out->d, &a, &b);
	out->commits = r.commits;
	remove_db(db);
}

static void bytes_naive(const char *dir, struct bytes *out)
{
	char db[PATH_MAX];
	snprintf(db, sizeof(db), "%s/naive.db", dir);
	remove_db(db);
	sqlite3 *h = NULL;
	if (sqlite3_open(db, &h) != SQLITE_OK)
		die("naive open", -EIO, db);
	sql_ok(h, sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	                          "CREATE TABLE fixes (t_ms INTEGER NOT NULL, lat REAL, lon REAL,"
	                          " speed REAL, course REAL, eph REAL, mode INTEGER);",
	                       NULL, NULL, NULL),
	       "naive schema");
	sqlite3_stmt *ins = NULL;
	sql_ok(h, sqlite3_prepare_v2(h, "INSERT INTO fixes VALUES (?, ?, ?, ?, ?, ?, ?)", -1,
	                             &ins, NULL),
	       "naive prepare");

	struct io a, b;
	long long size0 = db_files_size(db);
	if (read_io(&a) != 0)
		die("/proc/self/io", -EIO, NULL);
	for (long i = 1; i <= 3600; i++) {
		struct engine_fix f = fix_at(i);
		sqlite3_bind_int64(ins, 1, T0 + 2000 + i * 1000);
		sqlite3_bind_double(ins, 2, f.lat);
		sqlite3_bind_double(ins, 3, f.lon);
		sqlite3_bind_double(ins, 4, f.speed_mps);
		sqlite3_bind_double(ins, 5, f.course_deg);
		sqlite3_bind_double(ins, 6, f.eph_m);
		sqlite3_bind_int(ins, 7, f.mode);
		/* Autocommit: every INSERT is its own transaction, fsynced. */
		sql_ok(h, sqlite3_step(ins), "naive insert");
		sqlite3_reset(ins);
	}
	out->growth = db_files_size(db) - size0;
	sqlite3_finalize(ins);
	sqlite3_close(h);
	if (read_io(&b) != 0)
		die("/proc/self/io", -EIO, NULL);
	io_delta(&out->d, &a, &b);
	out->commits = 3600;
	remove_db(db);
}

/* ---- (b) replay throughput --------------------------------------------------------- */

/*
 * A courier's shift as scenario lines: policy, online, then a fix every second, a
 * heartbeat every 30 s and a job every 20 minutes (accepted, picked up 8 minutes later,
 * delivered 10 minutes after that), and offline at the end: n lines in all.
 */
static char (*make_shift(long n))[LINE_MAX_LEN]
{
	char (*lines)[LINE_MAX_LEN] = calloc((size_t)n, LINE_MAX_LEN);
	if (lines == NULL)
		die("calloc", -ENOMEM, NULL);
	char ts[EVJSON_TIME_MAX];
	long k = 0;
	evjson_format_time(T0, ts, sizeof(ts));
	snprintf(lines[k++], LINE_MAX_LEN,
	         "{\"t\":\"%s\",\"type\":\"policy\",\"event\":\"assign\",\"policy_id\":\"P-1\","
	         "\"driver_id\":\"D-1\",\"vehicle_id\":\"V-1\"}", ts);
	evjson_format_time(T0 + 1000, ts, sizeof(ts));
	snprintf(lines[k++], LINE_MAX_LEN, "{\"t\":\"%s\",\"type\":\"app\",\"event\":\"online\"}",
	         ts);
	for (long s = 2; k < n - 1; s++) {
		int64_t t = T0 + s * 1000;
		evjson_format_time(t, ts, sizeof(ts));
		long in_job = s % 1200;
		const char *app = in_job == 5     ? "job_accepted"
		                  : in_job == 485 ? "job_picked_up"
		                  : in_job == 1085 ? "job_delivered"
		                  : s % 30 == 0    ? "heartbeat"
		                                   : NULL;
		if (app != NULL) {
			snprintf(lines[k++], LINE_MAX_LEN,
			         "{\"t\":\"%s\",\"type\":\"app\",\"event\":\"%s\"}", ts, app);
			if (k >= n - 1)
				break;
		}
		struct engine_fix f = fix_at(s);
		snprintf(lines[k++], LINE_MAX_LEN,
		         "{\"t\":\"%s\",\"type\":\"fix\",\"lat\":%.7f,\"lon\":%.7f,\"speed\":%.2f,"
		         "\"course\":%.1f,\"eph\":%.1f,\"mode\":3}",
		         ts, f.lat, f.lon, f.speed_mps, f.course_deg, f.eph_m);
	}
	evjson_format_time(T0 + (int64_t)n * 1000, ts, sizeof(ts));
	snprintf(lines[k++], LINE_MAX_LEN, "{\"t\":\"%s\",\"type\":\"app\",\"event\":\"offline\"}",
	         ts);
	return lines;
}

struct tput {
	double seconds;
	double parse_s, engine_store_s;   /* the store run's time in evjson_parse, the rest */
	long commits;
	long sessions, activations;
};

static void replay_store(const char *dir, char (*lines)[LINE_MAX_LEN], long n,
                         bool *commit_after, struct tput *out)
{
	char db[PATH_MAX];
	snprintf(db, sizeof(db), "%s/replay.db", dir);
	remove_db(db);
	static struct runner r;
	runner_open(&r, db);
	r.last_flush_ms = T0;
	long sessions = 0, acts = 0;

	double t0 = now_s(), parse = 0;
	for (long i = 0; i < n; i++) {
		struct engine_event ev;
		enum evjson_kind kind;
		char err[256];
		double p0 = now_s();
		int rc = evjson_parse(lines[i], strlen(lines[i]), 1, &ev, &kind, err, sizeof(err));
		parse += now_s() - p0;
		if (rc != 0)
			die("evjson_parse", rc, err);
		commit_after[i] = submit(&r, &ev, lines[i]);
		for (size_t j = 0; j < r.acts.n; j++) {
			sessions += r.acts.a[j].type == ACTION_SESSION_OPEN;
			acts += r.acts.a[j].type == ACTION_ACT_OPEN;
		}
		if (maybe_flush(&r, ev.t_ms, i == n - 1))
			commit_after[i] = true;
	}
	store_close(r.st);
	out->seconds = now_s() - t0;
	out->parse_s = parse;
	out->engine_store_s = out->seconds - parse;
	out->commits = r.commits;
	out->sessions = sessions;
	out->activations = acts;
	remove_db(db);
}

/* The same lines as rows of one table, committed after the same lines as the store. */
static void replay_raw(const char *dir, char (*lines)[LINE_MAX_LEN], long n,
                       const bool *commit_after, bool one_txn, struct tput *out)
{
	char db[PATH_MAX];
	snprintf(db, sizeof(db), "%s/raw.db", dir);
	remove_db(db);
	sqlite3 *h = NULL;
	if (sqlite3_open(db, &h) != SQLITE_OK)
		die("raw open", -EIO, db);
	sql_ok(h, sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	                          "CREATE TABLE events (id INTEGER PRIMARY KEY,"
	                          " t_ms INTEGER NOT NULL, json TEXT NOT NULL);",
	                       NULL, NULL, NULL),
	       "raw schema");
	sqlite3_stmt *ins = NULL, *begin = NULL, *commit = NULL;
	sql_ok(h, sqlite3_prepare_v2(h, "INSERT INTO events (t_ms, json) VALUES (?, ?)", -1, &ins,
	                             NULL), "raw prepare");
	sql_ok(h, sqlite3_prepare_v2(h, "BEGIN", -1, &begin, NULL), "raw prepare");
	sql_ok(h, sqlite3_prepare_v2(h, "COMMIT", -1, &commit, NULL), "raw prepare");

	long commits = 0;
	double t0 = now_s();
	bool open = false;
	for (long i = 0; i < n; i++) {
		if (!open) {
			sql_ok(h, sqlite3_step(begin), "raw begin");
			sqlite3_reset(begin);
			open = true;
		}
		sqlite3_bind_int64(ins, 1, T0 + i);
		sqlite3_bind_text(ins, 2, lines[i], -1, SQLITE_STATIC);
		sql_ok(h, sqlite3_step(ins), "raw insert");
		sqlite3_reset(ins);
		if (one_txn ? i == n - 1 : (commit_after[i] || i == n - 1)) {
			sql_ok(h, sqlite3_step(commit), "raw commit");
			sqlite3_reset(commit);
			open = false;
			commits++;
		}
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_close(h);
	out->seconds = now_s() - t0;
	out->commits = commits;
	remove_db(db);
}

/* ---- main -------------------------------------------------------------------------- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];
	memcpy(s, v, (size_t)n * sizeof(double));
	qsort(s, (size_t)n, sizeof(double), cmp_dbl);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
}

static double min_of(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double max_of(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

static const char *human(long long b, char *buf, size_t len)
{
	if (b >= 10LL * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
	else if (b >= 10 * 1024)
		snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
	else
		snprintf(buf, len, "%lld B", b);
	return buf;
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX] = "";
	long n = 20000;
	int rounds = 3;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			snprintf(dir, sizeof(dir), "%s/coverd-bench-XXXXXX", argv[++i]);
		} else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
			n = strtol(argv[++i], NULL, 10);
			if (n < 100 || n > 10000000) {
				fprintf(stderr, "coverd-bench: --events must be 100..10000000\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
			if (rounds < 1 || rounds > MAX_ROUNDS) {
				fprintf(stderr, "coverd-bench: --rounds must be 1..%d\n", MAX_ROUNDS);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: coverd-bench [--dir DIR] [--events N] [--rounds R]\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (dir[0] == '\0') {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s/coverd-bench-XXXXXX",
		         tmp != NULL && tmp[0] != '\0' ? tmp : "/var/tmp");
	}
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "coverd-bench: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	struct statfs sfs;
	bool tmpfs = statfs(dir, &sfs) == 0 && (unsigned long)sfs.f_type == TMPFS_MAGIC_NUM;

	printf("coverd-bench (SQLite %s), files in %s%s\n\n", sqlite3_libversion(), dir,
	       tmpfs ? " (tmpfs: write_bytes will be 0)" : "");

	/* (a) */
	struct bytes st, nv;
	bytes_store(dir, &st);
	bytes_naive(dir, &nv);
	bool use_wb = st.d.write_bytes > 0 && nv.d.write_bytes > 0;
	long long s_b = use_wb ? st.d.write_bytes : st.d.wchar;
	long long n_b = use_wb ? nv.d.write_bytes : nv.d.wchar;
	char h1[32], h2[32];
	printf("(a) bytes written per hour of 1 Hz on-cover tracking (3600 fixes)\n");
	printf("    store: engine + store_track_add, store_flush every %d s "
	       "(daemon/core.c's path)\n", FLUSH_MS / 1000);
	printf("    naive: one INSERT + COMMIT per fix; both WAL, synchronous=FULL, "
	       "closed (checkpointed) at the end\n");
	printf("    (the growth row understates the naive writer: its WAL is checkpointed and "
	       "reused every 1000 pages)\n");
	printf("    %-28s %14s %14s %10s\n", "measure", "store", "naive", "store/naive");
	printf("    %-28s %14lld %14lld %10.4f\n", "/proc write_bytes", st.d.write_bytes,
	       nv.d.write_bytes,
	       nv.d.write_bytes > 0 ? (double)st.d.write_bytes / (double)nv.d.write_bytes : NAN);
	printf("    %-28s %14lld %14lld %10.4f\n", "/proc wchar (write calls)", st.d.wchar,
	       nv.d.wchar, (double)st.d.wchar / (double)nv.d.wchar);
	printf("    %-28s %14lld %14lld %10.4f\n", "db+WAL growth in the hour", st.growth,
	       nv.growth, nv.growth > 0 ? (double)st.growth / (double)nv.growth : NAN);
	printf("    %-28s %14ld %14ld\n", "commits (fsynced)", st.commits, nv.commits);
	printf("    => measure used: %s; store %s/h, naive %s/h, ratio 1/%.1f "
	       "(target <= 1/20): %s\n\n",
	       use_wb ? "write_bytes" : "wchar (write_bytes is 0 here)", human(s_b, h1, sizeof(h1)),
	       human(n_b, h2, sizeof(h2)), (double)n_b / (double)s_b,
	       (double)s_b * 20.0 <= (double)n_b ? "met" : "NOT met");

	/* (b) */
	char (*lines)[LINE_MAX_LEN] = make_shift(n);
	bool *commit_after = calloc((size_t)n, sizeof(bool));
	if (commit_after == NULL)
		die("calloc", -ENOMEM, NULL);
	/* Storage latency drifts (a VM's disk most of all), so store and raw runs alternate
	 * and the medians are compared. */
	struct tput ts[MAX_ROUNDS] = { { 0 } }, tr[MAX_ROUNDS] = { { 0 } }, t1;
	double rs_v[MAX_ROUNDS], rr_v[MAX_ROUNDS];
	for (int k = 0; k < rounds; k++) {
		replay_store(dir, lines, n, commit_after, &ts[k]);
		replay_raw(dir, lines, n, commit_after, false, &tr[k]);
		rs_v[k] = (double)n / ts[k].seconds;
		rr_v[k] = (double)n / tr[k].seconds;
	}
	replay_raw(dir, lines, n, commit_after, true, &t1);
	double rs = median(rs_v, rounds), rr = median(rr_v, rounds);
	double parse = 0, rest = 0;
	for (int k = 0; k < rounds; k++) {
		parse += ts[k].parse_s / rounds;
		rest += ts[k].engine_store_s / rounds;
	}
	printf("(b) replay throughput, %ld scenario lines of a synthetic shift "
	       "(%ld sessions, %ld activations opened), %d alternating rounds\n", n,
	       ts[0].sessions, ts[0].activations, rounds);
	printf("    store: evjson_parse + engine_step + store_apply / store_track_add, flush\n"
	       "           every %d s of the timeline (what coverd --replay --speed max does per "
	       "line)\n", FLUSH_MS / 1000);
	printf("    raw:   the same %ld lines as rows (t_ms, json) of one table, WAL,\n"
	       "           synchronous=FULL, committed after exactly the lines the store "
	       "committed after\n", n);
	printf("    %-8s %8s %12s %12s %12s\n", "", "commits", "median ev/s", "min ev/s",
	       "max ev/s");
	printf("    %-8s %8ld %12.0f %12.0f %12.0f\n", "store", ts[0].commits, rs,
	       min_of(rs_v, rounds), max_of(rs_v, rounds));
	printf("    %-8s %8ld %12.0f %12.0f %12.0f\n", "raw", tr[0].commits, rr,
	       min_of(rr_v, rounds), max_of(rr_v, rounds));
	printf("    => store/raw = %.2f (medians; target >= 0.5): %s\n", rs / rr,
	       rs >= 0.5 * rr ? "met" : "NOT met");
	printf("    the store run's mean time: %.3f s parsing lines (evjson_parse), %.3f s engine "
	       "and store\n", parse, rest);
	printf("    for scale only, not the target's baseline: raw with ONE commit for all %ld\n"
	       "    rows (no per-event durability) runs at %.0f rows/s\n", n, (double)n / t1.seconds);
	printf("\nreproduce: coverd-bench --dir DIR --events %ld --rounds %d "
	       "(DIR on the device's storage)\n", n, rounds);

	free(lines);
	free(commit_after);
	rm_dir(dir);
	return 0;
}
