/*
 * store.c - the SQLite store (see store.h for the contract).
 *
 * What a power cut can lose. Billing state never: every store_apply() is one transaction
 * committed with synchronous=FULL in WAL mode, so the journal row, the session and
 * activation changes, the outbox rows and the engine state of one event are on disk
 * together or not at all. Track points are different: store_track_add() only buffers
 * them, and store_flush() commits the buffer together with the engine state. The daemon
 * calls store_flush() every track_flush_ms of its timeline (config [store] track_flush,
 * default 30 s) and store_track_add() flushes by itself when STORE_TRACK_BATCH (256)
 * points are waiting. So a power cut loses at most the track points of the last
 * track_flush_ms or STORE_TRACK_BATCH points, whichever is fewer, and the motion state
 * the engine learnt from them (last fix, last movement); the restarted engine resumes
 * from the state committed with the last flush or event. Any store_apply() also commits
 * every point buffered before it, so a billing event never leaves older track behind.
 *
 * Track points are stored packed: one row per batch (per flush and session) with the
 * points in a blob of TRACK_REC_SIZE bytes each (see track_pack()). A flush of thirty
 * 1 Hz points then touches one table leaf page, not thirty rows plus their b-tree
 * pages, which keeps the bytes written per hour of tracking small (tests/bench reports
 * the figure against a commit-every-fix writer). The packed form keeps 1e-7 degree
 * positions (about 1 cm), speed in cm/s, course in 0.01 degree and eph in 0.1 m.
 *
 * Page size. New databases use 2 KiB pages instead of SQLite's 4 KiB. A 30 s flush
 * rewrites two pages (the track table's last leaf and the engine_state row, about
 * 1.3 KiB of JSON while a session has a few activations), and every few flushes a new
 * leaf, its parent and page 1 (whose header holds the page count). In WAL mode each
 * rewritten page is a whole frame, so halving the page halves what a flush writes: in
 * tests/bench, an hour of 1 Hz tracking wrote 1/17 of a commit-every-fix writer's bytes
 * with 4 KiB pages and 1/24 with 2 KiB (1 KiB pages push the state row into overflow
 * pages and do worse). Billing transactions shrink the same way; the cost is one more
 * b-tree level on a large table, which matters little at this database's sizes.
 *
 * Outbox rows are never deleted by this module. Should pruning of delivered rows ever be
 * added, it must keep the newest row: the next seq and prev_hash are taken from it.
 *
 * Memory is bounded: the track buffer is a fixed array in struct store, JSON is printed
 * into fixed buffers (cJSON_PrintPreallocated gives the same bytes as
 * cJSON_PrintUnformatted), and every statement is prepared once at open.
 */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <mbedtls/sha256.h>
#include <sqlite3.h>

#include "evjson.h"

#define STORE_ERR_MAX 512
#define STORE_PAGE_SIZE_STR "2048"   /* see "Page size" at the top */
#define STORE_BUSY_TIMEOUT_MS 5000
#define STATE_JSON_MAX 65536   /* a full state (48 activations) prints to about 18 KiB */
#define BODY_JSON_MAX 4096     /* an activation record prints to about 700 bytes */
#define TRACK_REC_SIZE 19
#define TRACK_FMT 1
#define STATE_FORMAT 2         /* the store's JSON layout of struct engine_state */
#define STATE_FORMAT_V1 1      /* revision 1 engine's layout: still read, migrated on load */
#define JSON_INT_MAX 9007199254740992LL   /* 2^53: larger integers are kept as strings */

/* ------------------------------------------------------------------------------------ */
/* Schema. Each entry moves the database from version i to i + 1 in one transaction.
 * Entries are never edited once released: a change is a new entry. tests/data/store-v1.sql
 * is a database made by the first entry, kept to test the upgrade path. */

static const char *const migrations[] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  t_ms INTEGER NOT NULL,"
	"  source TEXT NOT NULL,"
	"  type TEXT NOT NULL,"
	"  json TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),"
	"  reason TEXT);"
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY,"
	"  ordinal INTEGER NOT NULL,"
	"  trigger TEXT NOT NULL,"
	"  policy_id TEXT NOT NULL,"
	"  driver_id TEXT NOT NULL,"
	"  vehicle_id TEXT NOT NULL,"
	"  start_ms INTEGER NOT NULL,"
	"  end_ms INTEGER,"
	"  end_reason TEXT,"
	"  open_event_id INTEGER REFERENCES events(id),"
	"  close_event_id INTEGER REFERENCES events(id));"
	"CREATE TABLE activations ("
	"  id TEXT PRIMARY KEY,"
	"  session_id TEXT NOT NULL REFERENCES sessions(id),"
	"  idx INTEGER NOT NULL,"
	"  revision INTEGER NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('open', 'closed', 'voided')),"
	"  start_ms INTEGER NOT NULL,"
	"  end_ms INTEGER,"
	"  end_reason TEXT,"
	"  distance_m REAL NOT NULL,"
	"  moving_ms INTEGER NOT NULL,"
	"  jobs INTEGER NOT NULL,"
	"  start_lat REAL, start_lon REAL, end_lat REAL, end_lon REAL,"
	"  time_quality TEXT NOT NULL,"
	"  anomalies INTEGER NOT NULL,"
	"  open_event_id INTEGER REFERENCES events(id),"
	"  close_event_id INTEGER REFERENCES events(id),"
	"  open_rule TEXT,"
	"  close_rule TEXT,"
	"  UNIQUE (session_id, idx));"
	"CREATE TABLE outbox ("
	"  seq INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  record_id TEXT NOT NULL,"
	"  revision INTEGER NOT NULL,"
	"  body TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  delivered_ms INTEGER);"
	"CREATE TABLE track ("
	"  id INTEGER PRIMARY KEY,"
	"  session_id TEXT NOT NULL,"
	"  t0_ms INTEGER NOT NULL,"
	"  t1_ms INTEGER NOT NULL,"
	"  n INTEGER NOT NULL,"
	"  fmt INTEGER NOT NULL,"
	"  points BLOB NOT NULL);"
	"CREATE TABLE engine_state ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  json TEXT NOT NULL);",

	/* 1 -> 2: outbox signatures, persistent counters, and an index for the sync pump's
	 * lookup of undelivered records. Schema 1 kept no counters, but its journal holds
	 * every rejection, so the rejected.* counters are rebuilt from it rather than
	 * restarting at zero. */
	"ALTER TABLE outbox ADD COLUMN sig BLOB;"
	"CREATE TABLE counters ("
	"  name TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO counters (name, value)"
	"  SELECT 'rejected.' || reason, COUNT(*) FROM events"
	"  WHERE status = 'rejected' AND reason IS NOT NULL GROUP BY reason;"
	"CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_ms IS NULL;",

	/* 2 -> 3: backend commands (docs/protocol.md, "Commands"). Each command applied is
	 * recorded with its reply, so a redelivered one is answered without being applied
	 * again, even after a restart; a command that produced an engine event is recorded
	 * in that event's transaction. config_overlay keeps the configuration keys set by
	 * the backend, applied over the file at every start and reload. */
	"CREATE TABLE commands ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  cmd TEXT NOT NULL,"
	"  t_ms INTEGER NOT NULL,"
	"  event_id INTEGER REFERENCES events(id),"
	"  reply TEXT NOT NULL);"
	"CREATE TABLE config_overlay ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL,"
	"  cmd_id TEXT NOT NULL,"
	"  t_ms INTEGER NOT NULL) WITHOUT ROWID;",

	/* 3 -> 4: socket requests with a client-chosen id (docs/ipc.md, "Retries"). Each is
	 * recorded with the reply it was given, in its event's transaction, so a retry is
	 * answered from here and not applied again, even after a restart. hash is the
	 * SHA-256 of the request's bytes; t_ms its receipt time on the daemon's timeline. */
	"CREATE TABLE requests ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  hash BLOB NOT NULL,"
	"  t_ms INTEGER NOT NULL,"
	"  event_id INTEGER REFERENCES events(id),"
	"  reply TEXT NOT NULL);",

	/* 4 -> 5: what kept cover alive when each activation's hour began, for explain
	 * (struct engine_activation's alive and alive_since_ms): the reason by name and the
	 * time it refers to. Rows written before this schema have neither: NULL, "not
	 * recorded". */
	"ALTER TABLE activations ADD COLUMN alive TEXT"
	"  CHECK (alive IN ('start', 'job', 'grace', 'movement', 'online'));"
	"ALTER TABLE activations ADD COLUMN alive_since INTEGER;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION must equal the number of migrations");

/* ------------------------------------------------------------------------------------ */
/* Prepared statements, all prepared at open. */

enum stmt_id {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_EVENT_INS, Q_SESSION_INS, Q_SESSION_CLOSE, Q_ACT_UPSERT, Q_OUTBOX_LAST, Q_OUTBOX_INS,
	Q_TRACK_INS, Q_STATE_SAVE, Q_STATE_LOAD,
	Q_COUNT_ADD, Q_COUNTERS, Q_SESSIONS, Q_ACTS_ALL, Q_ACTS_SESSION, Q_ACT_GET, Q_EVENT_GET,
	Q_OUTBOX_NEXT, Q_OUTBOX_ACK, Q_OUTBOX_DEPTH, Q_PING, Q_TRACK_ALL, Q_TRACK_SESSION,
	Q_OUTBOX_MAX, Q_TRACK_PRUNE_SUM, Q_TRACK_PRUNE, Q_CMD_GET, Q_CMD_INS, Q_CMD_PRUNE,
	Q_OVERLAY_SET, Q_OVERLAY_ALL,
	Q_REQ_GET, Q_REQ_INS, Q_REQ_PRUNE,
	Q_EVENTS_BACK,
	Q_COUNT
};

#define ACT_COLUMNS \
	"a.id, a.session_id, s.policy_id, s.driver_id, s.vehicle_id, a.status, a.end_reason," \
	" a.time_quality, a.open_rule, a.close_rule, a.idx, a.revision, a.jobs, a.start_ms," \
	" a.end_ms, a.distance_m, a.moving_ms, a.start_lat, a.start_lon, a.end_lat," \
	" a.end_lon, a.anomalies, a.open_event_id, a.close_event_id, a.alive, a.alive_since" \
	" FROM activations a JOIN sessions s ON s.id = a.session_id"

static const char *const stmt_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_EVENT_INS] = "INSERT INTO events (t_ms, source, type, json, status, reason)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_SESSION_INS] = "INSERT INTO sessions (id, ordinal, trigger, policy_id, driver_id,"
	                  " vehicle_id, start_ms, open_event_id)"
	                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[Q_SESSION_CLOSE] = "UPDATE sessions SET end_ms = ?2, end_reason = ?3,"
	                    " close_event_id = ?4 WHERE id = ?1",
	[Q_ACT_UPSERT] =
	    "INSERT INTO activations (id, session_id, idx, revision, status, start_ms, end_ms,"
	    " end_reason, distance_m, moving_ms, jobs, start_lat, start_lon, end_lat, end_lon,"
	    " time_quality, anomalies, open_event_id, close_event_id, open_rule, close_rule,"
	    " alive, alive_since)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
	    " ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
	    " ON CONFLICT (id) DO UPDATE SET revision = excluded.revision,"
	    " status = excluded.status, start_ms = excluded.start_ms, end_ms = excluded.end_ms,"
	    " end_reason = excluded.end_reason, distance_m = excluded.distance_m,"
	    " moving_ms = excluded.moving_ms, jobs = excluded.jobs,"
	    " start_lat = excluded.start_lat, start_lon = excluded.start_lon,"
	    " end_lat = excluded.end_lat, end_lon = excluded.end_lon,"
	    " time_quality = excluded.time_quality, anomalies = excluded.anomalies,"
	    " open_event_id = COALESCE(activations.open_event_id, excluded.open_event_id),"
	    " close_event_id = COALESCE(excluded.close_event_id, activations.close_event_id),"
	    " open_rule = COALESCE(activations.open_rule, excluded.open_rule),"
	    " close_rule = COALESCE(excluded.close_rule, activations.close_rule),"
	    " alive = COALESCE(excluded.alive, activations.alive),"
	    " alive_since = COALESCE(excluded.alive_since, activations.alive_since)",
	[Q_OUTBOX_LAST] = "SELECT seq, body FROM outbox ORDER BY seq DESC LIMIT 1",
	[Q_OUTBOX_INS] = "INSERT INTO outbox (seq, kind, record_id, revision, body, sig,"
	                 " created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[Q_TRACK_INS] = "INSERT INTO track (session_id, t0_ms, t1_ms, n, fmt, points)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_STATE_SAVE] = "INSERT INTO engine_state (id, json) VALUES (1, ?1)"
	                 " ON CONFLICT (id) DO UPDATE SET json = excluded.json",
	[Q_STATE_LOAD] = "SELECT json FROM engine_state WHERE id = 1",
	[Q_COUNT_ADD] = "INSERT INTO counters (name, value) VALUES (?1, ?2)"
	                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
	[Q_COUNTERS] = "SELECT name, value FROM counters ORDER BY name",
	[Q_SESSIONS] = "SELECT s.id, s.policy_id, s.driver_id, s.vehicle_id, s.trigger,"
	               " s.end_reason, s.start_ms, s.end_ms,"
	               " (SELECT COUNT(*) FROM activations a"
	               "  WHERE a.session_id = s.id AND a.status <> 'voided')"
	               " FROM sessions s ORDER BY s.start_ms, s.ordinal",
	[Q_ACTS_ALL] = "SELECT " ACT_COLUMNS " ORDER BY s.start_ms, s.ordinal, a.idx",
	[Q_ACTS_SESSION] = "SELECT " ACT_COLUMNS " WHERE a.session_id = ?1 ORDER BY a.idx",
	[Q_ACT_GET] = "SELECT " ACT_COLUMNS " WHERE a.id = ?1",
	[Q_EVENT_GET] = "SELECT id, t_ms, source, type, json, status, reason FROM events"
	                " WHERE id = ?1",
	[Q_EVENTS_BACK] = "SELECT id, t_ms, source, type, json, status, reason FROM events"
	                  " WHERE id BETWEEN ?1 AND ?2 AND type = ?3 ORDER BY id DESC",
	[Q_OUTBOX_NEXT] = "SELECT seq, kind, record_id, revision, body, sig, created_ms"
	                  " FROM outbox WHERE seq > ?1 AND delivered_ms IS NULL"
	                  " ORDER BY seq LIMIT ?2",
	[Q_OUTBOX_ACK] = "UPDATE outbox SET delivered_ms = ?2"
	                 " WHERE seq <= ?1 AND delivered_ms IS NULL",
	[Q_OUTBOX_DEPTH] = "SELECT COUNT(*), MIN(created_ms) FROM outbox"
	                   " WHERE delivered_ms IS NULL",
	[Q_PING] = "SELECT 1",
	[Q_TRACK_ALL] = "SELECT session_id, t0_ms, n, fmt, points FROM track ORDER BY id",
	[Q_TRACK_SESSION] = "SELECT session_id, t0_ms, n, fmt, points FROM track"
	                    " WHERE session_id = ?1 ORDER BY id",
	[Q_OUTBOX_MAX] = "SELECT COALESCE(MAX(seq), 0) FROM outbox",
	/* Track rows are inserted in time order, so the lowest ids are the oldest
	 * sessions' detail. */
	[Q_TRACK_PRUNE_SUM] = "SELECT COALESCE(SUM(n), 0), COUNT(*) FROM (SELECT n FROM track"
	                      " WHERE session_id <> ?1 ORDER BY id LIMIT ?2)",
	[Q_TRACK_PRUNE] = "DELETE FROM track WHERE id IN (SELECT id FROM track"
	                  " WHERE session_id <> ?1 ORDER BY id LIMIT ?2)",
	[Q_CMD_GET] = "SELECT id, cmd, t_ms, event_id, reply FROM commands WHERE id = ?1",
	[Q_CMD_INS] = "INSERT INTO commands (id, cmd, t_ms, event_id, reply)"
	              " VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_CMD_PRUNE] = "DELETE FROM commands"
	                " WHERE seq <= (SELECT MAX(seq) FROM commands) - ?1",
	[Q_OVERLAY_SET] = "INSERT INTO config_overlay (key, value, cmd_id, t_ms)"
	                  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET"
	                  " value = excluded.value, cmd_id = excluded.cmd_id,"
	                  " t_ms = excluded.t_ms",
	[Q_OVERLAY_ALL] = "SELECT key, value, cmd_id, t_ms FROM config_overlay ORDER BY key",
	[Q_REQ_GET] = "SELECT id, hash, t_ms, event_id, reply FROM requests"
	              " WHERE id = ?1 AND t_ms >= ?2",
	/* An id still stored but out of the window (older than the age bound, not yet
	 * pruned) is a new request: it replaces the old row. */
	[Q_REQ_INS] = "INSERT OR REPLACE INTO requests (id, hash, t_ms, event_id, reply)"
	              " VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_REQ_PRUNE] = "DELETE FROM requests"
	                " WHERE seq <= (SELECT MAX(seq) FROM requests) - ?1 OR t_ms < ?2",
};

/* ------------------------------------------------------------------------------------ */

struct track_pt {
	int64_t t_ms;
	struct engine_fix fix;
	char session_id[ENGINE_SESSION_ID_MAX];
};

struct store {
	sqlite3 *db;
	enum store_mode mode;
	char path[512];
	char err[STORE_ERR_MAX];
	sqlite3_stmt *q[Q_COUNT];

	store_sign_fn sign;
	void *sign_ctx;

	int64_t last_event_id;

	/* The latest state given to store_apply/track_add/flush, for flushes the store
	 * starts itself (a full buffer, close). */
	bool have_state;
	struct engine_state state;
	bool saved_valid;                  /* saved_hash holds the last committed state */
	unsigned char saved_hash[32];

	size_t n_track;
	struct track_pt track[STORE_TRACK_BATCH];
	/* Track points of the event being applied: kept apart from track[] so that a
	 * failed store_apply leaves the buffer exactly as it was. */
	size_t n_extra;
	struct track_pt extra[ENGINE_MAX_ACTIONS];
	uint64_t track_dropped;            /* not yet counted in track.dropped */

	/* A backend command to record in the next store_apply() (store_command_arm). */
	bool cmd_armed;
	char cmd_id[STORE_CMD_ID_MAX + 1];
	char cmd_json[STORE_CMD_JSON_MAX + 1];
	char cmd_reply[STORE_CMD_REPLY_MAX + 1];

	/* A socket request to record in the next store_apply() (store_request_arm). */
	bool req_armed;
	char req_id[STORE_REQ_ID_MAX + 1];
	unsigned char req_hash[32];
	store_reply_fn req_reply_fn;
	void *req_reply_ctx;
	char req_reply[STORE_REQ_REPLY_MAX + 1];   /* the reply the last commit recorded */

	unsigned char blob[STORE_TRACK_BATCH * TRACK_REC_SIZE];
	char state_json[STATE_JSON_MAX];
	char body_json[BODY_JSON_MAX];
};

/* ------------------------------------------------------------------------------------ */
/* Errors. */

static void set_err(struct store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(struct store *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
}

/* Maps a SQLite result to the store's errno-style codes. */
static int sql_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* Records the connection's error for what was being done and returns its code. */
static int sql_fail(struct store *st, int rc, const char *what)
{
	set_err(st, "%s: %s: %s", st->path, what,
	        st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	int code = sql_code(rc);
	return code != 0 ? code : -EIO;
}

const char *store_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case -EIO:
		return "database error";
	case -EPROTO:
		return "incompatible database schema";
	case -ENOENT:
		return "not found";
	case -EINVAL:
		return "invalid argument";
	case -ENOSPC:
		return "disk full";
	case -ENOMEM:
		return "out of memory";
	case -EROFS:
		return "database opened read-only";
	default:
		return code < 0 ? strerror(-code) : "unknown error";
	}
}

const char *store_errmsg(const struct store *st)
{
	return st != NULL ? st->err : "no store";
}

/* ------------------------------------------------------------------------------------ */
/* Small statement helpers. Every statement is reset before it is used, so a callback
 * that stopped an earlier iteration leaves nothing pending. */

static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->q[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Runs a statement that returns no rows. */
static int run(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		rc = sql_fail(st, rc, what);
		sqlite3_reset(s);
		return rc;
	}
	sqlite3_reset(s);
	return 0;
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static int64_t col_i64_or0(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, i);
}

static int tx_begin(struct store *st)
{
	if (st->mode == STORE_RO) {
		set_err(st, "%s: opened read-only", st->path);
		return -EROFS;
	}
	return run(st, stmt(st, Q_BEGIN), "begin transaction");
}

static int tx_commit(struct store *st)
{
	return run(st, stmt(st, Q_COMMIT), "commit");
}

static void tx_rollback(struct store *st)
{
	/* A failed COMMIT or a statement error may already have ended the transaction;
	 * ROLLBACK then fails harmlessly, and autocommit tells us there is nothing left. */
	if (!sqlite3_get_autocommit(st->db)) {
		sqlite3_stmt *s = stmt(st, Q_ROLLBACK);
		(void)sqlite3_step(s);
		sqlite3_reset(s);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Names. */

static const char *act_status_name(enum engine_act_status s)
{
	switch (s) {
	case ACT_OPEN:
		return "open";
	case ACT_CLOSED:
		return "closed";
	case ACT_VOID:
		return "voided";
	case ACT_EMPTY:
		break;
	}
	return "empty";
}

static const char *event_type_name(enum engine_event_type t)
{
	switch (t) {
	case COV_EV_TICK:
		return "tick";
	case COV_EV_APP:
		return "app";
	case COV_EV_FIX:
		return "fix";
	case COV_EV_POLICY:
		return "policy";
	case COV_EV_IGNITION:
		return "ignition";
	case COV_EV_POWER:
		return "power";
	case COV_EV_CMD:
		return "cmd";
	}
	return "unknown";
}

static const struct {
	uint32_t bit;
	const char *name;
} anomaly_names[] = {
	{ ANOM_POSITION_JUMP, "position_jump" },
	{ ANOM_MOCK_LOCATION, "mock_location" },
	{ ANOM_CLOCK_STEP, "clock_step" },
};

/* ------------------------------------------------------------------------------------ */
/* Engine state as JSON. The state must come back bit for bit, and cJSON's printer does
 * not promise that: it prints 15 significant digits and accepts them when they read back
 * merely close to the value. Numbers are therefore printed here, exactly, and added as
 * raw JSON: doubles in the shortest form that reads back identical, integers in full.
 * Integers beyond 2^53 are written as decimal strings, because cJSON reads every number
 * into a double. INT64_MIN (the engine's "never") is null, and so is a NaN double
 * (unknown speed, course, eph). Only the session's n_acts activations are written: the
 * engine reads no slot beyond n_acts, and loading zeroes them. */

static bool put_raw(cJSON *o, const char *k, const char *num)
{
	return cJSON_AddRawToObject(o, k, num) != NULL;
}

static bool put_i64(cJSON *o, const char *k, int64_t v)
{
	char buf[24];
	if (v == INT64_MIN)
		return cJSON_AddNullToObject(o, k) != NULL;
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	if (v >= -JSON_INT_MAX && v <= JSON_INT_MAX)
		return put_raw(o, k, buf);
	return cJSON_AddStringToObject(o, k, buf) != NULL;
}

static bool put_u64(cJSON *o, const char *k, uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	if (v <= (uint64_t)JSON_INT_MAX)
		return put_raw(o, k, buf);
	return cJSON_AddStringToObject(o, k, buf) != NULL;
}

static bool put_dbl(cJSON *o, const char *k, double v)
{
	if (!isfinite(v))   /* the engine keeps no infinities; NaN means unknown */
		return cJSON_AddNullToObject(o, k) != NULL;
	char buf[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return put_raw(o, k, buf);
}

static bool put_bool(cJSON *o, const char *k, bool v)
{
	return cJSON_AddBoolToObject(o, k, v) != NULL;
}

static bool put_int(cJSON *o, const char *k, int v)
{
	return put_i64(o, k, v);
}

static bool put_str(cJSON *o, const char *k, const char *v)
{
	return cJSON_AddStringToObject(o, k, v) != NULL;
}

static bool put_pos(cJSON *o, const char *k, const struct engine_pos *p)
{
	cJSON *j = cJSON_AddObjectToObject(o, k);
	return j != NULL && put_dbl(j, "lat", p->lat) && put_dbl(j, "lon", p->lon) &&
	       put_bool(j, "valid", p->valid);
}

static bool put_fix(cJSON *o, const char *k, const struct engine_fix *f)
{
	cJSON *j = cJSON_AddObjectToObject(o, k);
	return j != NULL && put_dbl(j, "lat", f->lat) && put_dbl(j, "lon", f->lon) &&
	       put_dbl(j, "speed_mps", f->speed_mps) && put_dbl(j, "course_deg", f->course_deg) &&
	       put_dbl(j, "eph_m", f->eph_m) && put_int(j, "mode", f->mode);
}

static bool put_act(cJSON *arr, const struct engine_activation *a)
{
	cJSON *j = cJSON_CreateObject();
	if (j == NULL)
		return false;
	if (!cJSON_AddItemToArray(arr, j)) {
		cJSON_Delete(j);
		return false;
	}
	return put_int(j, "index", a->index) && put_int(j, "status", (int)a->status) &&
	       put_int(j, "revision", a->revision) && put_i64(j, "start_ms", a->start_ms) &&
	       put_i64(j, "end_ms", a->end_ms) && put_int(j, "end_reason", (int)a->end_reason) &&
	       put_dbl(j, "distance_m", a->distance_m) && put_i64(j, "moving_ms", a->moving_ms) &&
	       put_int(j, "jobs", a->jobs) && put_pos(j, "start_pos", &a->start_pos) &&
	       put_pos(j, "end_pos", &a->end_pos) && put_int(j, "tq", (int)a->tq) &&
	       put_u64(j, "anomalies", a->anomalies) && put_int(j, "alive", a->alive) &&
	       put_i64(j, "alive_since_ms", a->alive_since_ms);
}

static bool put_snap(cJSON *o, const char *k, const struct engine_snap *sn)
{
	cJSON *j = cJSON_AddObjectToObject(o, k);
	return j != NULL && put_bool(j, "valid", sn->valid) && put_i64(j, "t_ms", sn->t_ms) &&
	       put_int(j, "index", sn->index) && put_dbl(j, "distance_m", sn->distance_m) &&
	       put_i64(j, "moving_ms", sn->moving_ms) && put_pos(j, "pos", &sn->pos) &&
	       put_u64(j, "anomalies", sn->anomalies) && put_int(j, "tq", (int)sn->tq);
}

static bool put_jobs(cJSON *o, const struct engine_state *s)
{
	cJSON *arr = cJSON_AddArrayToObject(o, "jobs");
	if (arr == NULL || s->n_jobs < 0 || s->n_jobs > ENGINE_MAX_JOBS)
		return false;
	for (int i = 0; i < s->n_jobs; i++) {
		cJSON *j = cJSON_CreateObject();
		if (j == NULL)
			return false;
		if (!cJSON_AddItemToArray(arr, j)) {
			cJSON_Delete(j);
			return false;
		}
		if (!put_str(j, "id", s->jobs[i].id) || !put_i64(j, "accepted_ms", s->jobs[i].accepted_ms) ||
		    !put_i64(j, "last_ms", s->jobs[i].last_ms))
			return false;
	}
	return true;
}

static bool put_gnss(cJSON *o, const struct engine_gnss_stats *g)
{
	cJSON *j = cJSON_AddObjectToObject(o, "gnss");
	return j != NULL && put_u64(j, "accepted", g->accepted) && put_u64(j, "no_fix", g->no_fix) &&
	       put_u64(j, "eph", g->eph) && put_u64(j, "bad_value", g->bad_value) &&
	       put_u64(j, "out_of_order", g->out_of_order) && put_i64(j, "moving_ms", g->moving_ms);
}

static bool put_pend(cJSON *o, const struct engine_pending *p)
{
	cJSON *j = cJSON_AddObjectToObject(o, "pend");
	return j != NULL && put_i64(j, "at_ms", p->at_ms) && put_int(j, "jobs", p->jobs) &&
	       put_u64(j, "anomalies", p->anomalies) && put_int(j, "tq", (int)p->tq);
}

static cJSON *state_to_json(const struct engine_state *s)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	const struct engine_session *ss = &s->s;
	bool ok = put_int(o, "format", STATE_FORMAT) && put_int(o, "version", s->version) &&
	          put_bool(o, "started", s->started) && put_i64(o, "last_t_ms", s->last_t_ms) &&
	          put_bool(o, "online", s->online) &&
	          put_bool(o, "private_mode", s->private_mode) &&
	          put_bool(o, "ignition_on", s->ignition_on) &&
	          put_bool(o, "has_policy", s->has_policy);
	cJSON *p = ok ? cJSON_AddObjectToObject(o, "policy") : NULL;
	ok = p != NULL && put_bool(p, "assign", s->policy.assign) &&
	     put_str(p, "policy_id", s->policy.policy_id) &&
	     put_str(p, "driver_id", s->policy.driver_id) &&
	     put_str(p, "vehicle_id", s->policy.vehicle_id) &&
	     put_int(o, "jobs_active", s->jobs_active) &&
	     put_i64(o, "last_job_end_ms", s->last_job_end_ms) &&
	     put_i64(o, "last_app_ms", s->last_app_ms) &&
	     put_i64(o, "last_move_ms", s->last_move_ms) && put_bool(o, "have_fix", s->have_fix) &&
	     put_i64(o, "last_fix_ms", s->last_fix_ms) && put_fix(o, "last_fix", &s->last_fix) &&
	     put_bool(o, "last_fix_moving", s->last_fix_moving) &&
	     put_u64(o, "sessions_total", s->sessions_total) &&
	     put_u64(o, "rejected_total", s->rejected_total) &&
	     put_snap(o, "snap_job", &s->snap_job) && put_snap(o, "snap_app", &s->snap_app) &&
	     put_snap(o, "snap_move", &s->snap_move) && put_snap(o, "snap_grace", &s->snap_grace) &&
	     put_jobs(o, s) && put_int(o, "anon_jobs", s->anon_jobs) &&
	     put_i64(o, "anon_first_ms", s->anon_first_ms) &&
	     put_i64(o, "anon_last_ms", s->anon_last_ms) &&
	     put_i64(o, "grace_from_ms", s->grace_from_ms) &&
	     put_bool(o, "silence_ended", s->silence_ended) &&
	     put_u64(o, "jobs_duplicate_total", s->jobs_duplicate_total) &&
	     put_u64(o, "jobs_ignored_total", s->jobs_ignored_total) &&
	     put_u64(o, "jobs_timeout_total", s->jobs_timeout_total) &&
	     put_gnss(o, &s->gnss) && put_pend(o, &s->pend);
	cJSON *j = ok ? cJSON_AddObjectToObject(o, "s") : NULL;
	ok = j != NULL && put_bool(j, "open", ss->open) && put_str(j, "id", ss->id) &&
	     put_u64(j, "ordinal", ss->ordinal) && put_int(j, "trigger", (int)ss->trigger) &&
	     put_i64(j, "start_ms", ss->start_ms) && put_i64(j, "end_ms", ss->end_ms) &&
	     put_int(j, "end_reason", (int)ss->end_reason) &&
	     put_str(j, "policy_id", ss->policy_id) && put_str(j, "driver_id", ss->driver_id) &&
	     put_str(j, "vehicle_id", ss->vehicle_id) && put_int(j, "n_acts", ss->n_acts) &&
	     put_int(j, "jobs_accepted", ss->jobs_accepted);
	cJSON *arr = ok ? cJSON_AddArrayToObject(j, "acts") : NULL;
	ok = arr != NULL && ss->n_acts >= 0 && ss->n_acts <= ENGINE_MAX_ACTS;
	for (int i = 0; ok && i < ss->n_acts; i++)
		ok = put_act(arr, &ss->acts[i]);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Readers: each returns false when the member is missing, of the wrong type or out of
 * range, so a damaged state is refused rather than half loaded. */

static bool get_i64(const cJSON *o, const char *k, int64_t *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (cJSON_IsNull(j)) {
		*out = INT64_MIN;
		return true;
	}
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		if (d != floor(d) || d < (double)-JSON_INT_MAX || d > (double)JSON_INT_MAX)
			return false;
		*out = (int64_t)d;
		return true;
	}
	if (cJSON_IsString(j)) {
		char *end;
		errno = 0;
		long long v = strtoll(j->valuestring, &end, 10);
		if (errno != 0 || end == j->valuestring || *end != '\0')
			return false;
		*out = v;
		return true;
	}
	return false;
}

static bool get_u64(const cJSON *o, const char *k, uint64_t *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		if (d != floor(d) || d < 0 || d > (double)JSON_INT_MAX)
			return false;
		*out = (uint64_t)d;
		return true;
	}
	if (cJSON_IsString(j)) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(j->valuestring, &end, 10);
		if (errno != 0 || end == j->valuestring || *end != '\0' ||
		    j->valuestring[0] == '-')
			return false;
		*out = v;
		return true;
	}
	return false;
}

static bool get_int(const cJSON *o, const char *k, int lo, int hi, int *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(j))
		return false;
	double d = j->valuedouble;
	if (d != floor(d) || d < lo || d > hi)
		return false;
	*out = (int)d;
	return true;
}

static bool get_dbl(const cJSON *o, const char *k, double *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (cJSON_IsNull(j)) {
		*out = NAN;
		return true;
	}
	if (!cJSON_IsNumber(j))
		return false;
	*out = j->valuedouble;
	return true;
}

static bool get_bool(const cJSON *o, const char *k, bool *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsBool(j))
		return false;
	*out = cJSON_IsTrue(j);
	return true;
}

static bool get_str(const cJSON *o, const char *k, char *buf, size_t cap)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(j))
		return false;
	size_t n = strlen(j->valuestring);
	if (n >= cap)
		return false;
	memcpy(buf, j->valuestring, n + 1);
	return true;
}

static bool get_enum(const cJSON *o, const char *k, int hi, int *out)
{
	return get_int(o, k, 0, hi, out);
}

static bool get_pos(const cJSON *o, const char *k, struct engine_pos *p)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsObject(j) && get_dbl(j, "lat", &p->lat) && get_dbl(j, "lon", &p->lon) &&
	       get_bool(j, "valid", &p->valid);
}

static bool get_fix(const cJSON *o, const char *k, struct engine_fix *f)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsObject(j) && get_dbl(j, "lat", &f->lat) && get_dbl(j, "lon", &f->lon) &&
	       get_dbl(j, "speed_mps", &f->speed_mps) &&
	       get_dbl(j, "course_deg", &f->course_deg) && get_dbl(j, "eph_m", &f->eph_m) &&
	       get_int(j, "mode", INT_MIN, INT_MAX, &f->mode);
}

static bool get_act(const cJSON *j, struct engine_activation *a, bool v1)
{
	int status, end_reason, tq;
	uint64_t anom;
	if (!cJSON_IsObject(j) || !get_int(j, "index", 0, ENGINE_MAX_ACTS - 1, &a->index) ||
	    !get_enum(j, "status", ACT_VOID, &status) ||
	    !get_int(j, "revision", INT_MIN, INT_MAX, &a->revision) ||
	    !get_i64(j, "start_ms", &a->start_ms) || !get_i64(j, "end_ms", &a->end_ms) ||
	    !get_enum(j, "end_reason", END_JOB_TIMEOUT, &end_reason) ||
	    !get_dbl(j, "distance_m", &a->distance_m) ||
	    !get_i64(j, "moving_ms", &a->moving_ms) ||
	    !get_int(j, "jobs", INT_MIN, INT_MAX, &a->jobs) ||
	    !get_pos(j, "start_pos", &a->start_pos) || !get_pos(j, "end_pos", &a->end_pos) ||
	    !get_enum(j, "tq", TQ_UNSYNCED, &tq) || !get_u64(j, "anomalies", &anom) ||
	    anom > UINT32_MAX)
		return false;
	if (v1) {
		/* Revision 1 did not record what kept cover alive: "not recorded". */
		a->alive = ALIVE_START;
		a->alive_since_ms = INT64_MIN;
	} else if (!get_enum(j, "alive", ALIVE_ONLINE, &a->alive) ||
	           !get_i64(j, "alive_since_ms", &a->alive_since_ms)) {
		return false;
	}
	a->status = (enum engine_act_status)status;
	a->end_reason = (enum engine_end_reason)end_reason;
	a->tq = (enum engine_time_quality)tq;
	a->anomalies = (uint32_t)anom;
	return true;
}

/* Returns 0, -EPROTO for a state of another format or engine version, -EIO when damaged. */
static bool get_snap(const cJSON *o, const char *k, struct engine_snap *sn)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	/* States saved before snapshots existed load with none: a backdated end then keeps
	 * the activation's figures as they stand, as the engine did when they were saved. */
	if (j == NULL) {
		memset(sn, 0, sizeof(*sn));
		return true;
	}
	int tq = 0;
	uint64_t anom = 0;
	bool ok = cJSON_IsObject(j) && get_bool(j, "valid", &sn->valid) &&
	          get_int(j, "index", 0, ENGINE_MAX_ACTS - 1, &sn->index) &&
	          get_dbl(j, "distance_m", &sn->distance_m) &&
	          get_i64(j, "moving_ms", &sn->moving_ms) && get_pos(j, "pos", &sn->pos);
	/* Format 1 snapshots carry no time, anomalies or time quality; the migration in
	 * state_from_json() fills them in. */
	if (ok && cJSON_GetObjectItemCaseSensitive(j, "t_ms") != NULL)
		ok = get_i64(j, "t_ms", &sn->t_ms) && get_u64(j, "anomalies", &anom) &&
		     anom <= UINT32_MAX && get_enum(j, "tq", TQ_UNSYNCED, &tq);
	sn->anomalies = (uint32_t)anom;
	sn->tq = (enum engine_time_quality)tq;
	return ok;
}

static bool get_jobs(const cJSON *o, struct engine_state *s)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "jobs");
	int n = cJSON_GetArraySize(arr);
	if (!cJSON_IsArray(arr) || n > ENGINE_MAX_JOBS)
		return false;
	s->n_jobs = 0;
	for (const cJSON *j = arr->child; j != NULL; j = j->next) {
		struct engine_job *jb = &s->jobs[s->n_jobs++];
		if (!cJSON_IsObject(j) || !get_str(j, "id", jb->id, sizeof(jb->id)) || jb->id[0] == '\0' ||
		    !get_i64(j, "accepted_ms", &jb->accepted_ms) || !get_i64(j, "last_ms", &jb->last_ms))
			return false;
	}
	return true;
}

static bool get_gnss(const cJSON *o, struct engine_gnss_stats *g)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "gnss");
	return cJSON_IsObject(j) && get_u64(j, "accepted", &g->accepted) &&
	       get_u64(j, "no_fix", &g->no_fix) && get_u64(j, "eph", &g->eph) &&
	       get_u64(j, "bad_value", &g->bad_value) &&
	       get_u64(j, "out_of_order", &g->out_of_order) && get_i64(j, "moving_ms", &g->moving_ms);
}

static bool get_pend(const cJSON *o, struct engine_pending *p)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "pend");
	int tq;
	uint64_t anom;
	bool ok = cJSON_IsObject(j) && get_i64(j, "at_ms", &p->at_ms) &&
	          get_int(j, "jobs", 0, ENGINE_MAX_JOBS * 64, &p->jobs) &&
	          get_u64(j, "anomalies", &anom) && anom <= UINT32_MAX &&
	          get_enum(j, "tq", TQ_UNSYNCED, &tq);
	if (ok) {
		p->anomalies = (uint32_t)anom;
		p->tq = (enum engine_time_quality)tq;
	}
	return ok;
}

/*
 * A format-1 state (the revision 1 engine) as revision 2 needs it. Jobs were only
 * counted: they become jobs without id, whose job_timeout counts from the last app event
 * (no job event can be later, so no job is ended early). The grace ran from the last job
 * end. Snapshots are dated by the moment each refers to and keep the figures they hold;
 * anomalies and time quality stay as the activation has them.
 */
static void state_migrate_v1(struct engine_state *s)
{
	struct engine_session *ss = &s->s;
	s->version = ENGINE_STATE_VERSION;
	s->n_jobs = 0;
	s->anon_jobs = s->jobs_active > 0 ? s->jobs_active : 0;
	if (s->anon_jobs > ENGINE_MAX_JOBS)
		s->anon_jobs = ENGINE_MAX_JOBS;
	s->jobs_active = s->anon_jobs;
	s->anon_last_ms = s->anon_jobs > 0 ? s->last_app_ms : INT64_MIN;
	s->anon_first_ms = s->anon_jobs > 0 ? (ss->open ? ss->start_ms : s->last_app_ms) : INT64_MIN;
	s->grace_from_ms = s->last_job_end_ms;
	s->silence_ended = false;
	s->pend.at_ms = INT64_MIN;
	struct { struct engine_snap *sn; int64_t t; } sn[3] = {
		{ &s->snap_job, s->last_job_end_ms }, { &s->snap_app, s->last_app_ms },
		{ &s->snap_move, s->last_move_ms },
	};
	for (int i = 0; i < 3; i++) {
		sn[i].sn->t_ms = sn[i].t;
		if (sn[i].sn->valid && sn[i].sn->index < ss->n_acts) {
			sn[i].sn->anomalies = ss->acts[sn[i].sn->index].anomalies;
			sn[i].sn->tq = ss->acts[sn[i].sn->index].tq;
		}
	}
	memset(&s->snap_grace, 0, sizeof(s->snap_grace));
	ss->jobs_accepted = 0;
	for (int i = 0; i < ss->n_acts; i++)
		ss->jobs_accepted += ss->acts[i].jobs;
}

static int state_from_json(const cJSON *o, struct engine_state *s)
{
	int format = 0, trigger, end_reason;
	memset(s, 0, sizeof(*s));
	if (!cJSON_IsObject(o) || !get_int(o, "format", INT_MIN, INT_MAX, &format) ||
	    !get_int(o, "version", INT_MIN, INT_MAX, &s->version))
		return -EIO;
	bool v1 = format == STATE_FORMAT_V1 && s->version == 1;
	if (!v1 && (format != STATE_FORMAT || s->version != ENGINE_STATE_VERSION))
		return -EPROTO;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "policy");
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "s");
	struct engine_session *ss = &s->s;
	if (!get_bool(o, "started", &s->started) || !get_i64(o, "last_t_ms", &s->last_t_ms) ||
	    !get_bool(o, "online", &s->online) || !get_bool(o, "private_mode", &s->private_mode) ||
	    !get_bool(o, "ignition_on", &s->ignition_on) ||
	    !get_bool(o, "has_policy", &s->has_policy) || !cJSON_IsObject(p) ||
	    !get_bool(p, "assign", &s->policy.assign) ||
	    !get_str(p, "policy_id", s->policy.policy_id, sizeof(s->policy.policy_id)) ||
	    !get_str(p, "driver_id", s->policy.driver_id, sizeof(s->policy.driver_id)) ||
	    !get_str(p, "vehicle_id", s->policy.vehicle_id, sizeof(s->policy.vehicle_id)) ||
	    !get_int(o, "jobs_active", INT_MIN, INT_MAX, &s->jobs_active) ||
	    !get_i64(o, "last_job_end_ms", &s->last_job_end_ms) ||
	    !get_i64(o, "last_app_ms", &s->last_app_ms) ||
	    !get_i64(o, "last_move_ms", &s->last_move_ms) ||
	    !get_bool(o, "have_fix", &s->have_fix) ||
	    !get_i64(o, "last_fix_ms", &s->last_fix_ms) ||
	    !get_fix(o, "last_fix", &s->last_fix) ||
	    !get_bool(o, "last_fix_moving", &s->last_fix_moving) ||
	    !get_u64(o, "sessions_total", &s->sessions_total) ||
	    !get_u64(o, "rejected_total", &s->rejected_total) ||
	    !get_snap(o, "snap_job", &s->snap_job) || !get_snap(o, "snap_app", &s->snap_app) ||
	    !get_snap(o, "snap_move", &s->snap_move) || !cJSON_IsObject(j) ||
	    !get_bool(j, "open", &ss->open) || !get_str(j, "id", ss->id, sizeof(ss->id)) ||
	    !get_u64(j, "ordinal", &ss->ordinal) ||
	    !get_enum(j, "trigger", TRIGGER_MOTION, &trigger) ||
	    !get_i64(j, "start_ms", &ss->start_ms) || !get_i64(j, "end_ms", &ss->end_ms) ||
	    !get_enum(j, "end_reason", END_JOB_TIMEOUT, &end_reason) ||
	    !get_str(j, "policy_id", ss->policy_id, sizeof(ss->policy_id)) ||
	    !get_str(j, "driver_id", ss->driver_id, sizeof(ss->driver_id)) ||
	    !get_str(j, "vehicle_id", ss->vehicle_id, sizeof(ss->vehicle_id)) ||
	    !get_int(j, "n_acts", 0, ENGINE_MAX_ACTS, &ss->n_acts))
		return -EIO;
	if (!v1 &&
	    (!get_snap(o, "snap_grace", &s->snap_grace) || !get_jobs(o, s) ||
	     !get_int(o, "anon_jobs", 0, ENGINE_MAX_JOBS, &s->anon_jobs) ||
	     !get_i64(o, "anon_first_ms", &s->anon_first_ms) ||
	     !get_i64(o, "anon_last_ms", &s->anon_last_ms) ||
	     !get_i64(o, "grace_from_ms", &s->grace_from_ms) ||
	     !get_bool(o, "silence_ended", &s->silence_ended) ||
	     !get_u64(o, "jobs_duplicate_total", &s->jobs_duplicate_total) ||
	     !get_u64(o, "jobs_ignored_total", &s->jobs_ignored_total) ||
	     !get_u64(o, "jobs_timeout_total", &s->jobs_timeout_total) ||
	     !get_gnss(o, &s->gnss) || !get_pend(o, &s->pend) ||
	     !get_int(j, "jobs_accepted", 0, INT_MAX, &ss->jobs_accepted) ||
	     s->jobs_active != s->n_jobs + s->anon_jobs || s->n_jobs + s->anon_jobs > ENGINE_MAX_JOBS))
		return -EIO;
	ss->trigger = (enum engine_trigger)trigger;
	ss->end_reason = (enum engine_end_reason)end_reason;
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "acts");
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != ss->n_acts)
		return -EIO;
	int i = 0;
	for (const cJSON *a = arr->child; a != NULL; a = a->next, i++)
		if (!get_act(a, &ss->acts[i], v1))
			return -EIO;
	if (v1)
		state_migrate_v1(s);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Open, migrate, close. */

static int exec_sql(struct store *st, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		set_err(st, "%s: %s: %s", st->path, what,
		        msg != NULL ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return sql_code(rc) != 0 ? sql_code(rc) : -EIO;
	}
	return 0;
}

/* Reads a single-integer pragma. */
static int pragma_int(struct store *st, const char *sql, int64_t *out, const char *what)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(s, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		int code = sql_fail(st, rc, what);
		sqlite3_finalize(s);
		return code;
	}
	sqlite3_finalize(s);
	return 0;
}

/* PRAGMA quick_check: reads every page and checks the b-trees' structure (not the index
 * contents, which integrity_check would add at several times the cost). */
static int quick_check(struct store *st)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check(4)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(st, rc, "integrity check (PRAGMA quick_check)");
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		int code = sql_fail(st, rc, "integrity check (PRAGMA quick_check)");
		sqlite3_finalize(s);
		return code;
	}
	const char *first = col_text(s, 0);
	if (first == NULL || strcmp(first, "ok") != 0) {
		set_err(st, "%s: integrity check (PRAGMA quick_check) failed: %s", st->path,
		        first != NULL ? first : "(no result)");
		sqlite3_finalize(s);
		return -EIO;
	}
	sqlite3_finalize(s);
	return 0;
}

static int migrate(struct store *st, int64_t from)
{
	for (int64_t v = from; v < STORE_SCHEMA_VERSION; v++) {
		char what[96], sql[64];
		snprintf(what, sizeof(what), "migration to schema %lld", (long long)v + 1);
		int r = exec_sql(st, "BEGIN IMMEDIATE", what);
		if (r < 0)
			return r;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)v + 1);
		r = exec_sql(st, migrations[v], what);
		if (r == 0)
			r = exec_sql(st, sql, what);
		if (r == 0)
			r = exec_sql(st, "COMMIT", what);
		if (r < 0) {
			char keep[STORE_ERR_MAX];
			memcpy(keep, st->err, sizeof(keep));
			if (!sqlite3_get_autocommit(st->db))
				(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			memcpy(st->err, keep, sizeof(keep));
			return r;
		}
	}
	return 0;
}

static void store_free(struct store *st)
{
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(st->q[i]);
	if (st->db != NULL)
		sqlite3_close(st->db);
	free(st);
}

static void copy_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

int store_open(struct store **out, const char *path, enum store_mode mode, char *err,
               size_t errlen)
{
	if (out == NULL || path == NULL || path[0] == '\0' ||
	    (mode != STORE_RW && mode != STORE_RO)) {
		copy_err(err, errlen, "store_open: invalid argument");
		return -EINVAL;
	}
	struct store *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		copy_err(err, errlen, "store_open: out of memory");
		return -ENOMEM;
	}
	st->mode = mode;
	if (snprintf(st->path, sizeof(st->path), "%s", path) >= (int)sizeof(st->path)) {
		snprintf(st->err, sizeof(st->err), "%.64s...: path too long", path);
		copy_err(err, errlen, st->err);
		free(st);
		return -ENAMETOOLONG;
	}

	int r;
	if (mode == STORE_RO) {
		/* SQLite would report only "unable to open database file"; say which. */
		struct stat sb;
		if (stat(path, &sb) != 0) {
			r = -errno;
			set_err(st, "%s: cannot open database: %s", path, strerror(errno));
			goto fail;
		}
	}
	int flags = mode == STORE_RO ? SQLITE_OPEN_READONLY
	                             : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc = sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int e = st->db != NULL ? sqlite3_system_errno(st->db) : 0;
		set_err(st, "%s: cannot open database: %s%s%s", path,
		        st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc),
		        e != 0 ? ": " : "", e != 0 ? strerror(e) : "");
		r = e != 0 ? -e : -EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	/* SQLite opens a file it may not write read-only, without an error; every commit
	 * would then fail while the daemon looked healthy. A writer refuses at once. */
	if (mode == STORE_RW && sqlite3_db_readonly(st->db, "main") == 1) {
		set_err(st, "%s: the database file is not writable (read-only file, directory or "
		        "filesystem, or owned by another user): coverd cannot record cover here",
		        path);
		r = -EROFS;
		goto fail;
	}

	/* The first read of the header is where a file that is not a database, or one cut
	 * short (its header promises more pages than the file has), is noticed. */
	int64_t version = 0;
	r = pragma_int(st, "PRAGMA user_version", &version, "not a readable coverd database");
	if (r < 0) {
		r = -EIO;
		goto fail;
	}
	/* SQLite reads a file shorter than one page as an empty database, and a writer
	 * would then build a new schema over it. Only a zero-length file is new (the state
	 * of a first start cut short); anything else without a page is a damaged database. */
	int64_t pages = 0;
	struct stat sb;
	r = pragma_int(st, "PRAGMA page_count", &pages, "not a readable coverd database");
	if (r < 0) {
		r = -EIO;
		goto fail;
	}
	if (pages == 0 && stat(path, &sb) == 0 && sb.st_size > 0) {
		set_err(st, "%s: not a database: %lld bytes, shorter than one page (truncated?)",
		        path, (long long)sb.st_size);
		r = -EIO;
		goto fail;
	}
	r = quick_check(st);
	if (r < 0) {
		r = -EIO;
		goto fail;
	}
	if (version < 0) {
		/* No coverd ever writes a negative user_version: another program's file, or a
		 * damaged header. Calling it "newer" would send the operator the wrong way. */
		set_err(st, "%s: schema version %lld is not one coverd writes (damaged, or not a"
		        " coverd database); refusing to open it", path, (long long)version);
		r = -EPROTO;
		goto fail;
	}
	if (version > STORE_SCHEMA_VERSION) {
		set_err(st, "%s: schema version %lld is newer than this coverd supports (%d);"
		        " refusing to open it (was a newer coverd installed and then removed?)",
		        path, (long long)version, STORE_SCHEMA_VERSION);
		r = -EPROTO;
		goto fail;
	}
	if (mode == STORE_RO && version == 0) {
		set_err(st, "%s: no coverd database here yet (empty file)", path);
		r = -ENOENT;
		goto fail;
	}
	if (mode == STORE_RO && version < STORE_SCHEMA_VERSION) {
		set_err(st, "%s: schema version %lld is older than %d and cannot be upgraded"
		        " read-only; start coverd once to migrate it", path, (long long)version,
		        STORE_SCHEMA_VERSION);
		r = -EPROTO;
		goto fail;
	}
	/* A new database gets STORE_PAGE_SIZE pages; it can be set only before the first
	 * table, and before WAL mode. An existing database keeps the size it was made with. */
	if (mode == STORE_RW && pages == 0 &&
	    (r = exec_sql(st, "PRAGMA page_size = " STORE_PAGE_SIZE_STR, "set page_size")) < 0)
		goto fail;
	if (mode == STORE_RW) {
		char jm[16] = "";
		sqlite3_stmt *s = NULL;
		rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			snprintf(jm, sizeof(jm), "%s", col_text(s, 0) ? col_text(s, 0) : "");
			rc = SQLITE_OK;
		}
		if (rc != SQLITE_OK) {
			r = sql_fail(st, rc, "set journal_mode=WAL");
			sqlite3_finalize(s);
			goto fail;
		}
		sqlite3_finalize(s);
		if (strcmp(jm, "wal") != 0) {
			set_err(st, "%s: cannot use WAL mode (journal_mode is %s)", path, jm);
			r = -EIO;
			goto fail;
		}
		if ((r = exec_sql(st, "PRAGMA synchronous = FULL", "set synchronous=FULL")) < 0)
			goto fail;
	}
	if ((r = exec_sql(st, "PRAGMA foreign_keys = ON", "enable foreign keys")) < 0)
		goto fail;
	if (mode == STORE_RW && (r = migrate(st, version)) < 0)
		goto fail;

	for (int i = 0; i < Q_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &st->q[i], NULL);
		if (rc != SQLITE_OK) {
			r = sql_fail(st, rc, "prepare statement");
			goto fail;
		}
	}
	st->err[0] = '\0';
	*out = st;
	return 0;
fail:
	copy_err(err, errlen, st->err);
	store_free(st);
	return r;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->mode == STORE_RW && st->have_state)
		(void)store_flush(st, &st->state);
	store_free(st);
}

int store_set_max_size(struct store *st, int64_t max_bytes)
{
	if (st == NULL || max_bytes < 0)
		return -EINVAL;
	if (max_bytes == 0)
		return 0;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "PRAGMA page_size", -1, &s, NULL);
	int64_t page = 0;
	if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		page = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (page <= 0)
		return sql_fail(st, rc == SQLITE_OK ? SQLITE_ERROR : rc, "PRAGMA page_size");
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
	         (long long)(max_bytes / page > 0 ? max_bytes / page : 1));
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_OK)
		return sql_fail(st, rc, "PRAGMA max_page_count");
	return 0;
}

int store_ping(struct store *st)
{
	if (st == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_PING);
	int rc = sqlite3_step(s);
	int ok = rc == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
	sqlite3_reset(s);
	if (!ok)
		return sql_fail(st, rc == SQLITE_ROW ? SQLITE_ERROR : rc, "ping");
	return 0;
}

void store_set_signer(struct store *st, store_sign_fn fn, void *ctx)
{
	if (st == NULL)
		return;
	st->sign = fn;
	st->sign_ctx = ctx;
}

int64_t store_last_event_id(const struct store *st)
{
	return st != NULL ? st->last_event_id : 0;
}

size_t store_track_pending(const struct store *st)
{
	return st != NULL ? st->n_track : 0;
}

/* ------------------------------------------------------------------------------------ */
/* State. */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	/* mbedtls_sha256_ret fails only on hardware-accelerator errors, which this build
	 * does not use; a zeroed digest then still gives a defined result. */
	if (mbedtls_sha256_ret(data, len, out, 0) != 0)
		memset(out, 0, 32);
}

/* Prints state into st->state_json. Returns its length or a negative code. */
static int state_print(struct store *st, const struct engine_state *state)
{
	cJSON *o = state_to_json(state);
	if (o == NULL) {
		set_err(st, "%s: engine_state: cannot serialise the state", st->path);
		return -ENOMEM;
	}
	bool ok = cJSON_PrintPreallocated(o, st->state_json, sizeof(st->state_json), 0);
	cJSON_Delete(o);
	if (!ok) {
		set_err(st, "%s: engine_state: serialised state exceeds %d bytes", st->path,
		        STATE_JSON_MAX);
		return -ENOSPC;
	}
	return (int)strlen(st->state_json);
}

/* Writes the state JSON already printed into st->state_json (n bytes) inside the
 * caller's transaction. */
static int state_save(struct store *st, int n)
{
	sqlite3_stmt *s = stmt(st, Q_STATE_SAVE);
	sqlite3_bind_text(s, 1, st->state_json, n, SQLITE_STATIC);
	return run(st, s, "engine_state: save");
}

/* Steps a statement expected to give at most one row: 0 with the row ready (the caller
 * resets s when done with it), -ENOENT when there is none, or the failure, s reset. */
static int step_row(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		return 0;
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? -ENOENT : sql_fail(st, rc, what);
}

int store_load_state(struct store *st, struct engine_state *out)
{
	if (st == NULL || out == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_STATE_LOAD);
	int rc = step_row(st, s, "engine_state: load");
	if (rc != 0) {
		if (rc == -ENOENT)
			set_err(st, "%s: engine_state: no state saved yet", st->path);
		return rc;
	}
	const char *txt = (const char *)sqlite3_column_blob(s, 0);
	int n = sqlite3_column_bytes(s, 0);
	cJSON *o = txt != NULL ? cJSON_ParseWithLength(txt, (size_t)n) : NULL;
	struct engine_state tmp;
	int r = o != NULL ? state_from_json(o, &tmp) : -EIO;
	cJSON_Delete(o);
	sqlite3_reset(s);
	if (r == -EPROTO) {
		set_err(st, "%s: engine_state: saved by another engine state version (this is %d)",
		        st->path, ENGINE_STATE_VERSION);
		return r;
	}
	if (r < 0) {
		set_err(st, "%s: engine_state: the saved state is damaged", st->path);
		return -EIO;
	}
	*out = tmp;
	return 0;
}

static int count_add(struct store *st, const char *name, int64_t delta)
{
	sqlite3_stmt *s = stmt(st, Q_COUNT_ADD);
	bind_text(s, 1, name);
	sqlite3_bind_int64(s, 2, delta);
	return run(st, s, "counters: add");
}

/* Points dropped while the store could not flush become the counter track.dropped, in
 * the first transaction that succeeds again. */
static int dropped_save(struct store *st)
{
	if (st->track_dropped == 0)
		return 0;
	return count_add(st, "track.dropped", (int64_t)st->track_dropped);
}

/* ------------------------------------------------------------------------------------ */
/* Track points. */

static void put_u16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned u16_at(const unsigned char *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t u32_at(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* A quantity in units of scale, clamped into 0..0xfffe; NaN (unknown) is 0xffff. */
static unsigned quant16(double v, double scale)
{
	if (isnan(v))
		return 0xffff;
	double q = round(v * scale);
	if (q < 0)
		q = 0;
	if (q > 0xfffe)
		q = 0xfffe;
	return (unsigned)q;
}

static double unquant16(unsigned q, double scale)
{
	return q == 0xffff ? NAN : q / scale;
}

static int32_t deg_e7(double deg)
{
	double q = round(deg * 1e7);
	if (q > INT32_MAX)
		q = INT32_MAX;
	if (q < -INT32_MAX)
		q = -INT32_MAX;
	return (int32_t)q;
}

/*
 * Record layout (TRACK_FMT 1), little-endian, TRACK_REC_SIZE bytes:
 *   u32 dt_ms from the row's t0_ms | i32 lat 1e-7 deg | i32 lon 1e-7 deg |
 *   u16 speed cm/s | u16 course 0.01 deg | u16 eph dm | u8 mode
 * with 0xffff for an unknown speed, course or eph.
 */
static void track_pack(unsigned char *p, int64_t t0_ms, const struct track_pt *pt)
{
	double course = pt->fix.course_deg;
	if (!isnan(course)) {
		course = fmod(course, 360.0);
		if (course < 0)
			course += 360.0;
	}
	put_u32(p, (uint32_t)(pt->t_ms - t0_ms));
	put_u32(p + 4, (uint32_t)deg_e7(pt->fix.lat));
	put_u32(p + 8, (uint32_t)deg_e7(pt->fix.lon));
	put_u16(p + 12, quant16(pt->fix.speed_mps, 100.0));
	unsigned c = quant16(course, 100.0);
	put_u16(p + 14, c == 36000 ? 0 : c);
	put_u16(p + 16, quant16(pt->fix.eph_m, 10.0));
	p[18] = (unsigned char)(pt->fix.mode < 0 ? 0 : pt->fix.mode > 255 ? 255 : pt->fix.mode);
}

static void track_unpack(const unsigned char *p, int64_t t0_ms, int64_t *t_ms,
                         struct engine_fix *f)
{
	*t_ms = t0_ms + u32_at(p);
	f->lat = (int32_t)u32_at(p + 4) / 1e7;
	f->lon = (int32_t)u32_at(p + 8) / 1e7;
	f->speed_mps = unquant16(u16_at(p + 12), 100.0);
	f->course_deg = unquant16(u16_at(p + 14), 100.0);
	f->eph_m = unquant16(u16_at(p + 16), 10.0);
	f->mode = p[18];
}

static const struct track_pt *track_at(const struct store *st, size_t i, size_t na)
{
	return i < na ? &st->track[i] : &st->extra[i - na];
}

/*
 * Writes the buffered points followed by the current event's points, inside the
 * caller's transaction: one row per run of points of the same session, at most
 * STORE_TRACK_BATCH points, and a time span that fits the u32 offsets.
 */
static int track_write(struct store *st, size_t na, size_t nb)
{
	size_t n = na + nb, i = 0;
	while (i < n) {
		const struct track_pt *first = track_at(st, i, na);
		int64_t t0 = first->t_ms, t1 = t0;
		size_t k = 0;
		while (i + k < n && k < STORE_TRACK_BATCH) {
			const struct track_pt *pt = track_at(st, i + k, na);
			if (strcmp(pt->session_id, first->session_id) != 0 || pt->t_ms < t0 ||
			    pt->t_ms - t0 > (int64_t)UINT32_MAX)
				break;
			track_pack(st->blob + k * TRACK_REC_SIZE, t0, pt);
			if (pt->t_ms > t1)
				t1 = pt->t_ms;
			k++;
		}
		sqlite3_stmt *s = stmt(st, Q_TRACK_INS);
		bind_text(s, 1, first->session_id);
		sqlite3_bind_int64(s, 2, t0);
		sqlite3_bind_int64(s, 3, t1);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)k);
		sqlite3_bind_int(s, 5, TRACK_FMT);
		sqlite3_bind_blob(s, 6, st->blob, (int)(k * TRACK_REC_SIZE), SQLITE_STATIC);
		int r = run(st, s, "track: insert");
		if (r < 0)
			return r;
		i += k;
	}
	return 0;
}

static void track_fill(struct track_pt *pt, const char *session_id, int64_t t_ms,
                       const struct engine_fix *fix)
{
	pt->t_ms = t_ms;
	pt->fix = *fix;
	snprintf(pt->session_id, sizeof(pt->session_id), "%s", session_id);
}

int store_flush(struct store *st, const struct engine_state *state)
{
	if (st == NULL)
		return -EINVAL;
	if (state == NULL) {
		if (!st->have_state)
			return st->n_track == 0 ? 0 : -EINVAL;
		state = &st->state;
	}
	if (st->mode == STORE_RO) {
		set_err(st, "%s: opened read-only", st->path);
		return -EROFS;
	}
	/* An idle device flushes on its timer with nothing new: writing the same state
	 * again would cost a page and an fsync for nothing. */
	int n = state_print(st, state);
	if (n < 0)
		return n;
	unsigned char hash[32];
	sha256(st->state_json, (size_t)n, hash);
	if (st->n_track == 0 && st->track_dropped == 0 && st->saved_valid &&
	    memcmp(hash, st->saved_hash, 32) == 0) {
		if (state != &st->state) {
			st->state = *state;
			st->have_state = true;
		}
		return 0;
	}
	int r = tx_begin(st);
	if (r < 0)
		return r;
	if ((r = track_write(st, st->n_track, 0)) < 0 || (r = dropped_save(st)) < 0 ||
	    (r = state_save(st, n)) < 0 || (r = tx_commit(st)) < 0) {
		tx_rollback(st);
		return r;
	}
	st->n_track = 0;
	st->track_dropped = 0;
	memcpy(st->saved_hash, hash, 32);
	st->saved_valid = true;
	if (state != &st->state)
		st->state = *state;
	st->have_state = true;
	return 0;
}

int store_track_add(struct store *st, const struct engine_state *state, int64_t t_ms,
                    const struct engine_fix *fix)
{
	if (st == NULL || state == NULL || fix == NULL || !isfinite(fix->lat) ||
	    !isfinite(fix->lon))
		return -EINVAL;
	if (st->mode == STORE_RO)
		return -EROFS;
	st->state = *state;
	st->have_state = true;
	if (st->n_track == STORE_TRACK_BATCH) {
		/* The last flush failed (disk full, I/O error) and the buffer is still full:
		 * try again, and when that fails too, drop this point rather than grow. Track
		 * detail is the first thing to go when the store cannot keep up. (A failed
		 * flush after a point was buffered returns its error below, but the point
		 * stays buffered for the next attempt.) */
		int r = store_flush(st, state);
		if (r < 0) {
			st->track_dropped++;
			return r;
		}
	}
	track_fill(&st->track[st->n_track++], state->s.id, t_ms, fix);
	if (st->n_track == STORE_TRACK_BATCH)
		return store_flush(st, state);
	return 0;
}

int store_track(struct store *st, const char *session_id,
                int (*cb)(void *ctx, const char *session_id, int64_t t_ms,
                          const struct engine_fix *fix),
                void *ctx)
{
	if (st == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, session_id != NULL ? Q_TRACK_SESSION : Q_TRACK_ALL);
	if (session_id != NULL)
		bind_text(s, 1, session_id);
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *sid = col_text(s, 0);
		int64_t t0 = sqlite3_column_int64(s, 1), n = sqlite3_column_int64(s, 2);
		int fmt = sqlite3_column_int(s, 3);
		const unsigned char *blob = sqlite3_column_blob(s, 4);
		int bytes = sqlite3_column_bytes(s, 4);
		if (fmt != TRACK_FMT || n < 0 || n > STORE_TRACK_BATCH ||
		    (int64_t)bytes != n * TRACK_REC_SIZE || (n > 0 && blob == NULL)) {
			set_err(st, "%s: track: batch starting at %lld has a bad format", st->path,
			        (long long)t0);
			sqlite3_reset(s);
			return -EIO;
		}
		for (int64_t i = 0; ret == 0 && i < n; i++) {
			int64_t t;
			struct engine_fix f;
			track_unpack(blob + i * TRACK_REC_SIZE, t0, &t, &f);
			ret = cb(ctx, sid, t, &f);
		}
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "track: read");
	sqlite3_reset(s);
	return ret;
}

/* ------------------------------------------------------------------------------------ */
/* Backend commands, inside the caller's transaction. */

static int command_insert(struct store *st, const char *id, const char *cmd_json,
                          const char *reply, int64_t t_ms, int64_t event_id)
{
	sqlite3_stmt *s = stmt(st, Q_CMD_INS);
	bind_text(s, 1, id);
	bind_text(s, 2, cmd_json);
	sqlite3_bind_int64(s, 3, t_ms);
	if (event_id > 0)
		sqlite3_bind_int64(s, 4, event_id);
	else
		sqlite3_bind_null(s, 4);
	bind_text(s, 5, reply);
	int r = run(st, s, "commands: insert");
	if (r < 0)
		return r;
	/* Only the recent ids need remembering: the backend does not redeliver a command
	 * thousands of commands later. The overlay keeps config changes for good. */
	s = stmt(st, Q_CMD_PRUNE);
	sqlite3_bind_int(s, 1, STORE_CMD_KEEP);
	return run(st, s, "commands: prune");
}

/* Socket requests, inside the caller's transaction (the event's journal id is known). */
static int request_insert(struct store *st, int64_t t_ms, int64_t event_id)
{
	st->req_reply[0] = '\0';
	int r = st->req_reply_fn(st->req_reply_ctx, event_id, st->req_reply, sizeof(st->req_reply));
	if (r < 0 || memchr(st->req_reply, '\0', sizeof(st->req_reply)) == NULL ||
	    st->req_reply[0] == '\0') {
		st->req_reply[0] = '\0';
		set_err(st, "%s: requests: no reply for request %s", st->path, st->req_id);
		return r < 0 ? r : -EINVAL;
	}
	sqlite3_stmt *s = stmt(st, Q_REQ_INS);
	bind_text(s, 1, st->req_id);
	sqlite3_bind_blob(s, 2, st->req_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, t_ms);
	if (event_id > 0)
		sqlite3_bind_int64(s, 4, event_id);
	else
		sqlite3_bind_null(s, 4);
	bind_text(s, 5, st->req_reply);
	r = run(st, s, "requests: insert");
	if (r < 0)
		return r;
	/* The window is bounded both ways: an app retries within seconds or minutes, never
	 * a thousand requests or a day later. */
	s = stmt(st, Q_REQ_PRUNE);
	sqlite3_bind_int(s, 1, STORE_REQ_KEEP);
	sqlite3_bind_int64(s, 2, t_ms - STORE_REQ_AGE_MS);
	return run(st, s, "requests: prune");
}

/* ------------------------------------------------------------------------------------ */
/* store_apply. */

static cJSON *pos_json(const struct engine_pos *p)
{
	if (!p->valid)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddNumberToObject(o, "lat", p->lat) == NULL ||
	    cJSON_AddNumberToObject(o, "lon", p->lon) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static bool add_item(cJSON *o, const char *k, cJSON *item)
{
	if (item == NULL)
		return false;
	if (!cJSON_AddItemToObject(o, k, item)) {
		cJSON_Delete(item);
		return false;
	}
	return true;
}

static bool add_time_or_null(cJSON *o, const char *k, int64_t ms, bool present)
{
	if (!present)
		return cJSON_AddNullToObject(o, k) != NULL;
	char buf[EVJSON_TIME_MAX];
	evjson_format_time(ms, buf, sizeof(buf));
	return cJSON_AddStringToObject(o, k, buf) != NULL;
}

/* The outbox record of one activation change, in its documented key order. */
static cJSON *activation_record(const struct engine_config *cfg,
                                const struct engine_session_ref *c, const char *act_id,
                                const char *event, int64_t seq,
                                const char *prev_hash, const struct engine_activation *a)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	bool open = a->status == ACT_OPEN;
	cJSON *anom = cJSON_CreateArray();
	bool ok = anom != NULL;
	for (size_t i = 0; ok && i < sizeof(anomaly_names) / sizeof(anomaly_names[0]); i++) {
		if ((a->anomalies & anomaly_names[i].bit) == 0)
			continue;
		cJSON *n = cJSON_CreateString(anomaly_names[i].name);
		ok = n != NULL && cJSON_AddItemToArray(anom, n);
		if (!ok)
			cJSON_Delete(n);
	}
	if (!ok) {
		cJSON_Delete(anom);
		cJSON_Delete(o);
		return NULL;
	}
	ok = cJSON_AddNumberToObject(o, "v", 1) != NULL &&
	     cJSON_AddStringToObject(o, "kind", "activation") != NULL &&
	     cJSON_AddStringToObject(o, "event", event) != NULL &&
	     cJSON_AddNumberToObject(o, "seq", (double)seq) != NULL &&
	     cJSON_AddStringToObject(o, "prev_hash", prev_hash) != NULL &&
	     cJSON_AddStringToObject(o, "device_id", cfg->device_id) != NULL &&
	     cJSON_AddStringToObject(o, "id", act_id) != NULL &&
	     cJSON_AddNumberToObject(o, "revision", a->revision) != NULL &&
	     cJSON_AddStringToObject(o, "session_id", c->id) != NULL &&
	     cJSON_AddNumberToObject(o, "index", a->index) != NULL &&
	     cJSON_AddStringToObject(o, "policy_id", c->policy_id) != NULL &&
	     cJSON_AddStringToObject(o, "driver_id", c->driver_id) != NULL &&
	     cJSON_AddStringToObject(o, "vehicle_id", c->vehicle_id) != NULL &&
	     add_time_or_null(o, "start", a->start_ms, true) &&
	     add_time_or_null(o, "end", a->end_ms, !open) &&
	     (open ? cJSON_AddNullToObject(o, "end_reason") != NULL
	           : cJSON_AddStringToObject(o, "end_reason",
	                                     engine_end_reason_name(a->end_reason)) != NULL) &&
	     cJSON_AddNumberToObject(o, "distance_m", round(a->distance_m * 10.0) / 10.0) !=
	         NULL &&
	     cJSON_AddNumberToObject(o, "moving_s", (double)a->moving_ms / 1000.0) != NULL &&
	     cJSON_AddNumberToObject(o, "jobs", a->jobs) != NULL &&
	     add_item(o, "start_pos", pos_json(&a->start_pos)) &&
	     add_item(o, "end_pos", pos_json(&a->end_pos)) &&
	     cJSON_AddStringToObject(o, "time_quality", engine_tq_name(a->tq)) != NULL;
	if (!ok) {
		cJSON_Delete(anom);
		cJSON_Delete(o);
		return NULL;
	}
	if (!add_item(o, "anomalies", anom)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int outbox_append(struct store *st, const struct engine_config *cfg,
                         const struct engine_session_ref *c, const char *act_id,
                         const char *event,
                         const struct engine_activation *a, int64_t created_ms)
{
	int64_t seq = 1;
	char prev[65];
	memset(prev, '0', 64);
	prev[64] = '\0';
	sqlite3_stmt *s = stmt(st, Q_OUTBOX_LAST);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		unsigned char d[32];
		seq = sqlite3_column_int64(s, 0) + 1;
		const void *body = sqlite3_column_blob(s, 1);
		sha256(body != NULL ? body : "", (size_t)sqlite3_column_bytes(s, 1), d);
		hex(d, 32, prev);
	} else if (rc != SQLITE_DONE) {
		int r = sql_fail(st, rc, "outbox: read the last record");
		sqlite3_reset(s);
		return r;
	}
	sqlite3_reset(s);

	cJSON *o = activation_record(cfg, c, act_id, event, seq, prev, a);
	if (o == NULL) {
		set_err(st, "%s: outbox: cannot build the record for %s", st->path, act_id);
		return -ENOMEM;
	}
	bool ok = cJSON_PrintPreallocated(o, st->body_json, sizeof(st->body_json), 0);
	cJSON_Delete(o);
	if (!ok) {
		set_err(st, "%s: outbox: the record for %s exceeds %d bytes", st->path, act_id,
		        BODY_JSON_MAX);
		return -ENOSPC;
	}
	size_t len = strlen(st->body_json);
	unsigned char sig[STORE_SIG_MAX];
	size_t sig_len = 0;
	if (st->sign != NULL) {
		int r = st->sign(st->sign_ctx, (const unsigned char *)st->body_json, len, sig,
		                 sizeof(sig), &sig_len);
		if (r < 0 || sig_len > sizeof(sig)) {
			set_err(st, "%s: outbox: signing the record for %s failed (%d)", st->path,
			        act_id, r);
			return r < 0 ? r : -EIO;
		}
	}
	s = stmt(st, Q_OUTBOX_INS);
	sqlite3_bind_int64(s, 1, seq);
	bind_text(s, 2, "activation");
	bind_text(s, 3, act_id);
	sqlite3_bind_int(s, 4, a->revision);
	sqlite3_bind_text(s, 5, st->body_json, (int)len, SQLITE_STATIC);
	if (sig_len > 0)
		sqlite3_bind_blob(s, 6, sig, (int)sig_len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_int64(s, 7, created_ms);
	return run(st, s, "outbox: insert");
}

/* The names of enum engine_alive in the activations table; NULL for none recorded. */
static const char *const alive_names[] = {
	[ALIVE_START] = "start", [ALIVE_JOB] = "job", [ALIVE_GRACE] = "grace",
	[ALIVE_MOVEMENT] = "movement", [ALIVE_ONLINE] = "online",
};

static const char *alive_name(int alive)
{
	if (alive < 0 || (size_t)alive >= sizeof(alive_names) / sizeof(alive_names[0]))
		return NULL;
	return alive_names[alive];
}

static int alive_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(alive_names) / sizeof(alive_names[0]); i++)
		if (alive_names[i] != NULL && strcmp(alive_names[i], name) == 0)
			return (int)i;
	return -1;
}

static int act_upsert(struct store *st, const struct engine_session_ref *c,
                      const char *act_id, const struct engine_action *ac, int64_t event_id)
{
	const struct engine_activation *a = &ac->act;
	bool open = ac->type == ACTION_ACT_OPEN;
	sqlite3_stmt *s = stmt(st, Q_ACT_UPSERT);
	bind_text(s, 1, act_id);
	bind_text(s, 2, c->id);
	sqlite3_bind_int(s, 3, a->index);
	sqlite3_bind_int(s, 4, a->revision);
	bind_text(s, 5, act_status_name(a->status));
	sqlite3_bind_int64(s, 6, a->start_ms);
	if (a->status == ACT_OPEN)
		sqlite3_bind_null(s, 7);
	else
		sqlite3_bind_int64(s, 7, a->end_ms);
	bind_text(s, 8, a->end_reason != END_NONE ? engine_end_reason_name(a->end_reason) : NULL);
	sqlite3_bind_double(s, 9, a->distance_m);
	sqlite3_bind_int64(s, 10, a->moving_ms);
	sqlite3_bind_int(s, 11, a->jobs);
	if (a->start_pos.valid) {
		sqlite3_bind_double(s, 12, a->start_pos.lat);
		sqlite3_bind_double(s, 13, a->start_pos.lon);
	}
	if (a->end_pos.valid) {
		sqlite3_bind_double(s, 14, a->end_pos.lat);
		sqlite3_bind_double(s, 15, a->end_pos.lon);
	}
	bind_text(s, 16, engine_tq_name(a->tq));
	sqlite3_bind_int64(s, 17, a->anomalies);
	/* Unbound parameters are NULL: an activation of a state migrated from revision 1
	 * has no time there (INT64_MIN), and then its reason is not a record either. */
	if (a->alive_since_ms != INT64_MIN) {
		bind_text(s, 22, alive_name(a->alive));
		sqlite3_bind_int64(s, 23, a->alive_since_ms);
	}
	if (open) {
		sqlite3_bind_int64(s, 18, event_id);
		bind_text(s, 20, engine_rule_name(ac->rule));
	} else {
		sqlite3_bind_int64(s, 19, event_id);
		bind_text(s, 21, engine_rule_name(ac->rule));
	}
	return run(st, s, "activations: upsert");
}

/* The event in the scenario format (docs/scenario-format.md), for events that arrive
 * without their raw JSON (ticks the daemon makes, tests). */
static cJSON *event_json(const struct engine_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	char t[EVJSON_TIME_MAX];
	evjson_format_time(ev->t_ms, t, sizeof(t));
	bool ok = put_str(o, "t", t) && put_str(o, "type", event_type_name(ev->type));
	switch (ev->type) {
	case COV_EV_TICK:
		break;
	case COV_EV_APP:
		ok = ok && put_str(o, "event", engine_app_event_name(ev->u.app)) &&
		     (ev->job_id[0] == '\0' || put_str(o, "job_id", ev->job_id));
		break;
	case COV_EV_FIX: {
		const struct engine_fix *f = &ev->u.fix;
		ok = ok && cJSON_AddNumberToObject(o, "lat", f->lat) != NULL &&
		     cJSON_AddNumberToObject(o, "lon", f->lon) != NULL &&
		     (!isfinite(f->speed_mps) ||
		      cJSON_AddNumberToObject(o, "speed", f->speed_mps) != NULL) &&
		     (!isfinite(f->course_deg) ||
		      cJSON_AddNumberToObject(o, "course", f->course_deg) != NULL) &&
		     (!isfinite(f->eph_m) || cJSON_AddNumberToObject(o, "eph", f->eph_m) != NULL) &&
		     put_int(o, "mode", f->mode);
		break;
	}
	case COV_EV_POLICY: {
		const struct engine_policy *p = &ev->u.policy;
		ok = ok && put_str(o, "event", p->assign ? "assign" : "revoke") &&
		     (p->policy_id[0] == '\0' || put_str(o, "policy_id", p->policy_id)) &&
		     (!p->assign || p->driver_id[0] == '\0' ||
		      put_str(o, "driver_id", p->driver_id)) &&
		     (!p->assign || p->vehicle_id[0] == '\0' ||
		      put_str(o, "vehicle_id", p->vehicle_id));
		break;
	}
	case COV_EV_IGNITION:
		ok = ok && put_bool(o, "on", ev->u.ignition_on);
		break;
	case COV_EV_POWER:
		ok = ok && put_str(o, "event", ev->u.power == POWER_LOW        ? "low"
		                                 : ev->u.power == POWER_SHUTDOWN ? "shutdown"
		                                                                 : "restored");
		break;
	case COV_EV_CMD:
		ok = ok && put_str(o, "event", "end_cover");
		break;
	}
	if (ok && ev->tq != TQ_GNSS)
		ok = put_str(o, "tq", engine_tq_name(ev->tq));
	if (ok && (ev->anomalies & ANOM_CLOCK_STEP))
		ok = put_bool(o, "clock_step", true);
	if (ok && (ev->anomalies & ANOM_MOCK_LOCATION) &&
	    (ev->type == COV_EV_APP || ev->type == COV_EV_FIX))
		ok = put_bool(o, "mock", true);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int journal(struct store *st, const struct engine_event *ev, const char *source,
                   const char *raw_json, enum engine_reject reject, int64_t *id)
{
	const char *json = raw_json;
	if (json == NULL) {
		cJSON *o = event_json(ev);
		bool ok = o != NULL && cJSON_PrintPreallocated(o, st->body_json,
		                                               sizeof(st->body_json), 0);
		cJSON_Delete(o);
		if (!ok) {
			set_err(st, "%s: events: cannot serialise the event", st->path);
			return -ENOMEM;
		}
		json = st->body_json;
	}
	sqlite3_stmt *s = stmt(st, Q_EVENT_INS);
	sqlite3_bind_int64(s, 1, ev->t_ms);
	bind_text(s, 2, source != NULL ? source : "unknown");
	bind_text(s, 3, event_type_name(ev->type));
	/* The raw line is the caller's and lives through the call: no copy needed. */
	bind_text(s, 4, json);
	bind_text(s, 5, reject != REJECT_NONE ? "rejected" : "applied");
	bind_text(s, 6, reject != REJECT_NONE ? engine_reject_name(reject) : NULL);
	int r = run(st, s, "events: insert");
	if (r == 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return r;
}

static int session_insert(struct store *st, const struct engine_session_ref *ss,
                          int64_t event_id)
{
	sqlite3_stmt *s = stmt(st, Q_SESSION_INS);
	bind_text(s, 1, ss->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)ss->ordinal);
	bind_text(s, 3, engine_trigger_name(ss->trigger));
	bind_text(s, 4, ss->policy_id);
	bind_text(s, 5, ss->driver_id);
	bind_text(s, 6, ss->vehicle_id);
	sqlite3_bind_int64(s, 7, ss->start_ms);
	sqlite3_bind_int64(s, 8, event_id);
	return run(st, s, "sessions: insert");
}

static int session_close(struct store *st, const struct engine_session_ref *ss,
                         int64_t event_id)
{
	sqlite3_stmt *s = stmt(st, Q_SESSION_CLOSE);
	bind_text(s, 1, ss->id);
	sqlite3_bind_int64(s, 2, ss->end_ms);
	bind_text(s, 3, engine_end_reason_name(ss->end_reason));
	sqlite3_bind_int64(s, 4, event_id);
	int r = run(st, s, "sessions: close");
	if (r == 0 && sqlite3_changes(st->db) != 1) {
		set_err(st, "%s: sessions: no session %s to close", st->path, ss->id);
		r = -EIO;
	}
	return r;
}

/* Session fields come from each action's sess, not from state->s: one step can close a
 * session and open the next, and the state then holds only the new one. */
static int apply_actions(struct store *st, const struct engine_config *cfg,
                         const struct engine_event *ev, const struct engine_actions *acts,
                         int64_t event_id)
{
	char act_id[ENGINE_ACT_ID_MAX];
	for (size_t i = 0; i < acts->n; i++) {
		const struct engine_action *ac = &acts->a[i];
		int r = 0;
		if (ac->type != ACTION_REJECT && ac->type != ACTION_TRACK && ac->type != ACTION_NOTE &&
		    ac->sess.id[0] == '\0') {
			set_err(st, "%s: action %d of event at %lld names no session", st->path,
			        (int)ac->type, (long long)ev->t_ms);
			return -EINVAL;
		}
		switch (ac->type) {
		case ACTION_SESSION_OPEN:
			r = session_insert(st, &ac->sess, event_id);
			break;
		case ACTION_SESSION_CLOSE:
			r = session_close(st, &ac->sess, event_id);
			break;
		case ACTION_ACT_OPEN:
		case ACTION_ACT_CLOSE:
		case ACTION_ACT_VOID: {
			engine_activation_id(act_id, sizeof(act_id), ac->sess.id, ac->act.index);
			const char *what = ac->type == ACTION_ACT_OPEN    ? "opened"
			                   : ac->type == ACTION_ACT_CLOSE ? "closed"
			                                                  : "voided";
			r = act_upsert(st, &ac->sess, act_id, ac, event_id);
			if (r == 0)
				r = outbox_append(st, cfg, &ac->sess, act_id, what, &ac->act, ev->t_ms);
			break;
		}
		case ACTION_TRACK:
			/* A fix outside any session has nothing to belong to. */
			if (ac->sess.id[0] != '\0' && st->n_extra < ENGINE_MAX_ACTIONS)
				track_fill(&st->extra[st->n_extra++], ac->sess.id, ac->at_ms, &ac->fix);
			break;
		case ACTION_REJECT: {
			char name[64];
			snprintf(name, sizeof(name), "rejected.%s", engine_reject_name(ac->reject));
			r = count_add(st, name, 1);
			break;
		}
		case ACTION_NOTE: {
			char name[64];
			snprintf(name, sizeof(name), "jobs.%s", engine_note_name(ac->note));
			r = count_add(st, name, 1);
			break;
		}
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int store_apply(struct store *st, const struct engine_config *cfg,
                const struct engine_event *ev, const char *source, const char *raw_json,
                const struct engine_state *state, const struct engine_actions *acts)
{
	/* An armed command or request belongs to this call only, whatever its outcome. */
	bool cmd = st != NULL && st->cmd_armed;
	bool req = st != NULL && st->req_armed;
	if (st != NULL) {
		st->cmd_armed = false;
		st->req_armed = false;
		st->req_reply[0] = '\0';
	}
	if (st == NULL || cfg == NULL || ev == NULL || state == NULL || acts == NULL ||
	    acts->n > ENGINE_MAX_ACTIONS)
		return -EINVAL;
	enum engine_reject reject = REJECT_NONE;
	for (size_t i = 0; i < acts->n; i++)
		if (acts->a[i].type == ACTION_REJECT && reject == REJECT_NONE)
			reject = acts->a[i].reject != REJECT_NONE ? acts->a[i].reject
			                                          : REJECT_BAD_EVENT;
	/* The state is printed first: journal() reuses body_json, never state_json. */
	int n = state_print(st, state);
	if (n < 0)
		return n;
	unsigned char hash[32];
	sha256(st->state_json, (size_t)n, hash);
	int r = tx_begin(st);
	if (r < 0)
		return r;
	int64_t id = 0;
	st->n_extra = 0;
	if ((r = journal(st, ev, source, raw_json, reject, &id)) < 0 ||
	    (r = apply_actions(st, cfg, ev, acts, id)) < 0 ||
	    (cmd && (r = command_insert(st, st->cmd_id, st->cmd_json, st->cmd_reply, ev->t_ms,
	                                id)) < 0) ||
	    (req && (r = request_insert(st, ev->t_ms, id)) < 0) ||
	    (r = track_write(st, st->n_track, st->n_extra)) < 0 || (r = dropped_save(st)) < 0 ||
	    (r = state_save(st, n)) < 0 || (r = tx_commit(st)) < 0) {
		tx_rollback(st);
		st->n_extra = 0;
		st->req_reply[0] = '\0';
		return r;
	}
	st->n_track = 0;
	st->track_dropped = 0;
	st->n_extra = 0;
	st->last_event_id = id;
	memcpy(st->saved_hash, hash, 32);
	st->saved_valid = true;
	st->state = *state;
	st->have_state = true;
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Counters. */

int store_count_add(struct store *st, const char *name, int64_t delta)
{
	if (st == NULL || name == NULL || name[0] == '\0')
		return -EINVAL;
	if (st->mode == STORE_RO) {
		set_err(st, "%s: opened read-only", st->path);
		return -EROFS;
	}
	return count_add(st, name, delta);
}

int store_counters(struct store *st, int (*cb)(void *ctx, const char *name, int64_t value),
                   void *ctx)
{
	if (st == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_COUNTERS);
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		ret = cb(ctx, col_text(s, 0), sqlite3_column_int64(s, 1));
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "counters: read");
	sqlite3_reset(s);
	return ret;
}

/* ------------------------------------------------------------------------------------ */
/* Read side. */

int store_sessions(struct store *st, int (*cb)(void *ctx, const struct store_session_row *r),
                   void *ctx)
{
	if (st == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_SESSIONS);
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_session_row r = {
			.id = col_text(s, 0),
			.policy_id = col_text(s, 1),
			.driver_id = col_text(s, 2),
			.vehicle_id = col_text(s, 3),
			.trigger = col_text(s, 4),
			.end_reason = col_text(s, 5),
			.start_ms = sqlite3_column_int64(s, 6),
			.end_ms = col_i64_or0(s, 7),
			.open = sqlite3_column_type(s, 7) == SQLITE_NULL,
			.n_activations = sqlite3_column_int(s, 8),
		};
		ret = cb(ctx, &r);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "sessions: read");
	sqlite3_reset(s);
	return ret;
}

static void pos_cols(sqlite3_stmt *s, int i, struct engine_pos *p)
{
	p->valid = sqlite3_column_type(s, i) != SQLITE_NULL &&
	           sqlite3_column_type(s, i + 1) != SQLITE_NULL;
	p->lat = p->valid ? sqlite3_column_double(s, i) : 0;
	p->lon = p->valid ? sqlite3_column_double(s, i + 1) : 0;
}

static int act_rows(struct store *st, sqlite3_stmt *s,
                    int (*cb)(void *ctx, const struct store_activation_row *r), void *ctx,
                    int *count)
{
	int rc, ret = 0;
	*count = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_activation_row r = {
			.id = col_text(s, 0),
			.session_id = col_text(s, 1),
			.policy_id = col_text(s, 2),
			.driver_id = col_text(s, 3),
			.vehicle_id = col_text(s, 4),
			.status = col_text(s, 5),
			.end_reason = col_text(s, 6),
			.time_quality = col_text(s, 7),
			.open_rule = col_text(s, 8),
			.close_rule = col_text(s, 9),
			.index = sqlite3_column_int(s, 10),
			.revision = sqlite3_column_int(s, 11),
			.jobs = sqlite3_column_int(s, 12),
			.start_ms = sqlite3_column_int64(s, 13),
			.end_ms = col_i64_or0(s, 14),
			.distance_m = sqlite3_column_double(s, 15),
			.moving_ms = sqlite3_column_int64(s, 16),
			.anomalies = (uint32_t)sqlite3_column_int64(s, 21),
			.open_event_id = col_i64_or0(s, 22),
			.close_event_id = col_i64_or0(s, 23),
			.alive = alive_parse(col_text(s, 24)),
			.alive_since_ms = sqlite3_column_type(s, 25) == SQLITE_NULL
			                      ? INT64_MIN : sqlite3_column_int64(s, 25),
		};
		pos_cols(s, 17, &r.start_pos);
		pos_cols(s, 19, &r.end_pos);
		(*count)++;
		ret = cb(ctx, &r);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "activations: read");
	sqlite3_reset(s);
	return ret;
}

int store_activations(struct store *st, const char *session_id,
                      int (*cb)(void *ctx, const struct store_activation_row *r), void *ctx)
{
	if (st == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, session_id != NULL ? Q_ACTS_SESSION : Q_ACTS_ALL);
	if (session_id != NULL)
		bind_text(s, 1, session_id);
	int n;
	return act_rows(st, s, cb, ctx, &n);
}

int store_activation_get(struct store *st, const char *id,
                         int (*cb)(void *ctx, const struct store_activation_row *r), void *ctx)
{
	if (st == NULL || id == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_ACT_GET);
	bind_text(s, 1, id);
	int n;
	int r = act_rows(st, s, cb, ctx, &n);
	if (r == 0 && n == 0) {
		set_err(st, "%s: activations: no activation %s", st->path, id);
		return -ENOENT;
	}
	return r;
}

/* A journal row from Q_EVENT_GET or Q_EVENTS_BACK (the same columns, in the same order);
 * strings valid until the statement steps again. */
static void event_row(sqlite3_stmt *s, struct store_event_row *r)
{
	*r = (struct store_event_row){
		.id = sqlite3_column_int64(s, 0),
		.t_ms = sqlite3_column_int64(s, 1),
		.source = col_text(s, 2),
		.type = col_text(s, 3),
		.json = col_text(s, 4),
		.status = col_text(s, 5),
		.reason = col_text(s, 6),
	};
}

int store_event_get(struct store *st, int64_t id,
                    int (*cb)(void *ctx, const struct store_event_row *r), void *ctx)
{
	if (st == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_EVENT_GET);
	sqlite3_bind_int64(s, 1, id);
	int rc = step_row(st, s, "events: read");
	if (rc != 0) {
		if (rc == -ENOENT)
			set_err(st, "%s: events: no event %lld", st->path, (long long)id);
		return rc;
	}
	struct store_event_row r;
	event_row(s, &r);
	int ret = cb(ctx, &r);
	sqlite3_reset(s);
	return ret;
}

int store_events_back(struct store *st, int64_t from_id, int64_t to_id, const char *type,
                      int (*cb)(void *ctx, const struct store_event_row *r), void *ctx)
{
	if (st == NULL || type == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_EVENTS_BACK);
	sqlite3_bind_int64(s, 1, from_id);
	sqlite3_bind_int64(s, 2, to_id);
	bind_text(s, 3, type);
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_event_row r;
		event_row(s, &r);
		ret = cb(ctx, &r);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "events: read");
	sqlite3_reset(s);
	return ret;
}

int store_outbox_next(struct store *st, int64_t after_seq, int limit,
                      int (*cb)(void *ctx, const struct store_outbox_row *r), void *ctx)
{
	if (st == NULL || cb == NULL || limit < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_OUTBOX_NEXT);
	sqlite3_bind_int64(s, 1, after_seq);
	sqlite3_bind_int(s, 2, limit);
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_outbox_row r = {
			.seq = sqlite3_column_int64(s, 0),
			.kind = col_text(s, 1),
			.record_id = col_text(s, 2),
			.revision = sqlite3_column_int(s, 3),
			.body = (const char *)sqlite3_column_text(s, 4),
			.body_len = (size_t)sqlite3_column_bytes(s, 4),
			.sig = sqlite3_column_blob(s, 5),
			.sig_len = (size_t)sqlite3_column_bytes(s, 5),
			.created_ms = sqlite3_column_int64(s, 6),
		};
		if (r.sig_len == 0)
			r.sig = NULL;
		ret = cb(ctx, &r);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "outbox: read");
	sqlite3_reset(s);
	return ret;
}

int store_outbox_ack(struct store *st, int64_t upto, int64_t now_ms)
{
	if (st == NULL || upto < 0)
		return -EINVAL;
	if (st->mode == STORE_RO) {
		set_err(st, "%s: opened read-only", st->path);
		return -EROFS;
	}
	sqlite3_stmt *s = stmt(st, Q_OUTBOX_ACK);
	sqlite3_bind_int64(s, 1, upto);
	sqlite3_bind_int64(s, 2, now_ms);
	return run(st, s, "outbox: acknowledge");
}

int store_outbox_depth(struct store *st, int64_t *depth, int64_t *oldest_ms)
{
	if (st == NULL || depth == NULL || oldest_ms == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_OUTBOX_DEPTH);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		int r = sql_fail(st, rc, "outbox: depth");
		sqlite3_reset(s);
		return r;
	}
	*depth = sqlite3_column_int64(s, 0);
	*oldest_ms = col_i64_or0(s, 1);
	sqlite3_reset(s);
	return 0;
}

int store_outbox_last_seq(struct store *st, int64_t *seq)
{
	if (st == NULL || seq == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_OUTBOX_MAX);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		int r = sql_fail(st, rc, "outbox: last seq");
		sqlite3_reset(s);
		return r;
	}
	*seq = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Making room: track detail goes first. */

int store_track_prune(struct store *st, const char *keep_session, int max_batches,
                      int64_t *points)
{
	if (st == NULL || max_batches <= 0 || points == NULL)
		return -EINVAL;
	*points = 0;
	const char *keep = keep_session != NULL ? keep_session : "";
	int r = tx_begin(st);
	if (r < 0)
		return r;
	sqlite3_stmt *s = stmt(st, Q_TRACK_PRUNE_SUM);
	bind_text(s, 1, keep);
	sqlite3_bind_int(s, 2, max_batches);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		r = sql_fail(st, rc, "track: count for pruning");
		sqlite3_reset(s);
		tx_rollback(st);
		return r;
	}
	int64_t n = sqlite3_column_int64(s, 0), rows = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	if (rows == 0) {
		tx_rollback(st);
		return -ENOENT;
	}
	s = stmt(st, Q_TRACK_PRUNE);
	bind_text(s, 1, keep);
	sqlite3_bind_int(s, 2, max_batches);
	if ((r = run(st, s, "track: prune")) < 0 || (r = count_add(st, "track.pruned", n)) < 0 ||
	    (r = tx_commit(st)) < 0) {
		tx_rollback(st);
		return r;
	}
	*points = n;
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Backend commands. */

static bool cmd_args_ok(const char *id, const char *cmd_json, const char *reply)
{
	return id != NULL && id[0] != '\0' && strlen(id) <= STORE_CMD_ID_MAX &&
	       cmd_json != NULL && strlen(cmd_json) <= STORE_CMD_JSON_MAX && reply != NULL &&
	       strlen(reply) <= STORE_CMD_REPLY_MAX;
}

int store_command_get(struct store *st, const char *id,
                      int (*cb)(void *ctx, const struct store_command_row *r), void *ctx)
{
	if (st == NULL || id == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_CMD_GET);
	bind_text(s, 1, id);
	int rc = step_row(st, s, "commands: read");
	if (rc != 0) {
		return rc;
	}
	struct store_command_row row = {
		.id = col_text(s, 0),
		.cmd = col_text(s, 1),
		.t_ms = sqlite3_column_int64(s, 2),
		.event_id = col_i64_or0(s, 3),
		.reply = col_text(s, 4),
	};
	int ret = cb(ctx, &row);
	sqlite3_reset(s);
	return ret;
}

int store_command_arm(struct store *st, const char *id, const char *cmd_json,
                      const char *reply_json)
{
	if (st == NULL || !cmd_args_ok(id, cmd_json, reply_json))
		return -EINVAL;
	snprintf(st->cmd_id, sizeof(st->cmd_id), "%s", id);
	snprintf(st->cmd_json, sizeof(st->cmd_json), "%s", cmd_json);
	snprintf(st->cmd_reply, sizeof(st->cmd_reply), "%s", reply_json);
	st->cmd_armed = true;
	return 0;
}

void store_command_disarm(struct store *st)
{
	if (st != NULL)
		st->cmd_armed = false;
}

int store_command_put(struct store *st, const char *id, const char *cmd_json,
                      const char *reply_json, int64_t t_ms,
                      const struct store_overlay_kv *kv, size_t n)
{
	if (st == NULL || !cmd_args_ok(id, cmd_json, reply_json) || (n > 0 && kv == NULL))
		return -EINVAL;
	int r = tx_begin(st);
	if (r < 0)
		return r;
	r = command_insert(st, id, cmd_json, reply_json, t_ms, 0);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (kv[i].key == NULL || kv[i].value == NULL) {
			set_err(st, "%s: config_overlay: key %zu is empty", st->path, i);
			r = -EINVAL;
			break;
		}
		sqlite3_stmt *s = stmt(st, Q_OVERLAY_SET);
		bind_text(s, 1, kv[i].key);
		bind_text(s, 2, kv[i].value);
		bind_text(s, 3, id);
		sqlite3_bind_int64(s, 4, t_ms);
		r = run(st, s, "config_overlay: set");
	}
	if (r == 0)
		r = tx_commit(st);
	if (r < 0)
		tx_rollback(st);
	return r;
}

/* ------------------------------------------------------------------------------------ */
/* Socket requests. */

static bool req_id_ok(const char *id)
{
	return id != NULL && id[0] != '\0' && strlen(id) <= STORE_REQ_ID_MAX;
}

int store_request_get(struct store *st, const char *id, const char *request, size_t len,
                      int64_t now_ms,
                      int (*cb)(void *ctx, const struct store_request_row *r), void *ctx)
{
	if (st == NULL || !req_id_ok(id) || request == NULL || cb == NULL)
		return -EINVAL;
	unsigned char hash[32];
	sha256(request, len, hash);
	sqlite3_stmt *s = stmt(st, Q_REQ_GET);
	bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, now_ms > INT64_MIN + STORE_REQ_AGE_MS ? now_ms - STORE_REQ_AGE_MS
	                                                              : INT64_MIN);
	int rc = step_row(st, s, "requests: read");
	if (rc != 0) {
		return rc;
	}
	const void *h = sqlite3_column_blob(s, 1);
	struct store_request_row row = {
		.id = col_text(s, 0),
		.same = h != NULL && sqlite3_column_bytes(s, 1) == 32 && memcmp(h, hash, 32) == 0,
		.t_ms = sqlite3_column_int64(s, 2),
		.event_id = col_i64_or0(s, 3),
		.reply = col_text(s, 4),
	};
	int ret = cb(ctx, &row);
	sqlite3_reset(s);
	return ret;
}

int store_request_arm(struct store *st, const char *id, const char *request, size_t len,
                      store_reply_fn reply, void *ctx)
{
	if (st == NULL || !req_id_ok(id) || request == NULL || reply == NULL)
		return -EINVAL;
	snprintf(st->req_id, sizeof(st->req_id), "%s", id);
	sha256(request, len, st->req_hash);
	st->req_reply_fn = reply;
	st->req_reply_ctx = ctx;
	st->req_armed = true;
	return 0;
}

void store_request_disarm(struct store *st)
{
	if (st != NULL)
		st->req_armed = false;
}

const char *store_request_reply(const struct store *st)
{
	return st != NULL ? st->req_reply : "";
}

int store_config_overlay(struct store *st,
                         int (*cb)(void *ctx, const char *key, const char *value,
                                   const char *cmd_id, int64_t t_ms),
                         void *ctx)
{
	if (st == NULL || cb == NULL)
		return -EINVAL;
	sqlite3_stmt *s = stmt(st, Q_OVERLAY_ALL);
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		ret = cb(ctx, col_text(s, 0), col_text(s, 1), col_text(s, 2),
		         sqlite3_column_int64(s, 3));
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sql_fail(st, rc, "config_overlay: read");
	sqlite3_reset(s);
	return ret;
}
