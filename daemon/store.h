/*
 * store.h - the SQLite store: event journal, sessions, activations, outbox, track points
 * and the persisted engine state.
 *
 * Durability. The database runs in WAL mode with synchronous=FULL. store_apply() commits
 * one transaction per processed event: the journal row, every session and activation
 * change, the outbox rows, the engine state and, for a socket request with an id, the id
 * and its reply, so a power cut leaves either all of an event or none of it. Fixes that
 * cause no billing action are not committed one by one: store_track_add() buffers track
 * points in memory (at most STORE_TRACK_BATCH) and store_flush() commits them with the
 * engine state. The daemon flushes at least every track_flush_ms (config, default 30 s)
 * and whenever the buffer is full, so a power cut loses at most that much track detail
 * and motion state, never a billing record.
 *
 * Errors: functions return 0 or a negative errno-style code (-EIO for SQLite failures,
 * -EINVAL for bad arguments, -ENOENT for nothing found, -ENOSPC when the disk is full)
 * and, where an err buffer is given, a NUL-terminated message naming the path or table.
 * store_strerror() names a code.
 */
#ifndef COVERD_STORE_H
#define COVERD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define STORE_TRACK_BATCH 256
#define STORE_SCHEMA_VERSION 5   /* raised by each forward-only migration */

struct store;

enum store_mode { STORE_RW = 0, STORE_RO };

/*
 * Opens (creating when RW and missing) the database at path, runs PRAGMA quick_check and,
 * when RW, the pending migrations in one transaction each. A garbage, truncated or newer-
 * schema file gives -EIO / -EPROTO with err naming the path and the reason. *out is set
 * only on success; free with store_close().
 */
int store_open(struct store **out, const char *path, enum store_mode mode,
               char *err, size_t errlen);
/* Flushes buffered track points (with the last state given to store_apply/flush), closes. */
void store_close(struct store *st);
const char *store_strerror(int code);
/* The message of the last failure on st (naming the path and table), "" when none. */
const char *store_errmsg(const struct store *st);

/* Loads the persisted engine state. 0, -ENOENT when none was ever saved, -EIO. */
int store_load_state(struct store *st, struct engine_state *out);

/*
 * One transaction for one processed event: journals ev (with its source, "replay",
 * "ipc", "gpsd", "timer", and the raw JSON when given, else a normalised form), records
 * each action (sessions, activations with the journal id as the opening or closing event,
 * outbox rows for activation opened / closed / voided records with the next per-device
 * sequence number), writes any buffered track points and saves state. A rejected event is
 * journaled with its reason. Returns 0 or a negative code; on failure nothing is written.
 */
int store_apply(struct store *st, const struct engine_config *cfg,
                const struct engine_event *ev, const char *source, const char *raw_json,
                const struct engine_state *state, const struct engine_actions *acts);
/* The journal id of the event the last successful store_apply() wrote (0 before any). */
int64_t store_last_event_id(const struct store *st);

/* Buffers one track point (session id from state). Flushes itself when the buffer fills. */
int store_track_add(struct store *st, const struct engine_state *state, int64_t t_ms,
                    const struct engine_fix *fix);
/* Commits buffered track points and the engine state in one transaction. */
int store_flush(struct store *st, const struct engine_state *state);
size_t store_track_pending(const struct store *st);
/*
 * Calls cb for each stored track point of session_id (NULL: every session), in the order
 * they were flushed. Positions come back to 1e-7 degree, speed to 1 cm/s, course to
 * 0.01 degree and eph to 0.1 m; unknown values as NaN. Stops and returns cb's value when
 * it is non-zero.
 */
int store_track(struct store *st, const char *session_id,
                int (*cb)(void *ctx, const char *session_id, int64_t t_ms,
                          const struct engine_fix *fix),
                void *ctx);

/* Counters kept in the database (table counters), e.g. "rejected.out_of_order",
 * "ipc.malformed", "scenario.bad_line". store_count_add is its own transaction. */
int store_count_add(struct store *st, const char *name, int64_t delta);
/* Calls cb for each counter; stops and returns cb's value when it is non-zero. */
int store_counters(struct store *st, int (*cb)(void *ctx, const char *name, int64_t value),
                   void *ctx);

/* Read side: rows as the CLI and the socket show them. Strings are valid during cb. */
struct store_session_row {
	const char *id, *policy_id, *driver_id, *vehicle_id, *trigger, *end_reason;
	int64_t start_ms, end_ms;        /* end_ms 0 while open */
	bool open;
	int n_activations;               /* not voided */
};
struct store_activation_row {
	const char *id, *session_id, *policy_id, *driver_id, *vehicle_id, *status, *end_reason,
	    *time_quality, *open_rule, *close_rule;
	int index, revision, jobs;
	int64_t start_ms, end_ms;        /* end_ms 0 while open */
	double distance_m;
	int64_t moving_ms;
	struct engine_pos start_pos, end_pos;
	uint32_t anomalies;
	int64_t open_event_id, close_event_id;   /* journal ids; 0 if none */
	/* What kept cover alive when its hour began (enum engine_alive) and the time that
	 * refers to; -1 and INT64_MIN when not recorded (rows older than schema 5). */
	int alive;
	int64_t alive_since_ms;
};
struct store_event_row {
	int64_t id, t_ms;
	const char *source, *type, *json, *status, *reason;
};

int store_sessions(struct store *st, int (*cb)(void *ctx, const struct store_session_row *r),
                   void *ctx);
/* session_id NULL for all sessions; ordered by start and index. */
int store_activations(struct store *st, const char *session_id,
                      int (*cb)(void *ctx, const struct store_activation_row *r), void *ctx);
int store_activation_get(struct store *st, const char *id,
                         int (*cb)(void *ctx, const struct store_activation_row *r), void *ctx);
/* The journal row with this id. -ENOENT when absent. */
int store_event_get(struct store *st, int64_t id,
                    int (*cb)(void *ctx, const struct store_event_row *r), void *ctx);
/*
 * The journal rows of one type ("app", "fix", "policy", "tick", ...) with ids from from_id
 * to to_id inclusive, newest first, for explain's "last delivery, last app event" (the
 * daemon journals every event but the fixes and ticks that change nothing billable).
 * Stops and returns cb's value when it is non-zero.
 */
int store_events_back(struct store *st, int64_t from_id, int64_t to_id, const char *type,
                      int (*cb)(void *ctx, const struct store_event_row *r), void *ctx);

/*
 * Outbox records. Each row's body is the record's JSON bytes, fixed at commit time and
 * never rewritten, so a re-send is byte-identical: it carries "seq" (the per-device
 * sequence number, 1, 2, 3, ...) and "prev_hash" (lowercase hex SHA-256 of the previous
 * row's body; 64 zeros for seq 1), so the backend can see a gap or a rewrite. When a
 * signer is set, sig holds its signature over exactly the body bytes, made in the same
 * transaction; without one sig is empty (sig_len 0).
 */
typedef int (*store_sign_fn)(void *ctx, const unsigned char *body, size_t body_len,
                             unsigned char *sig, size_t sig_cap, size_t *sig_len);
#define STORE_SIG_MAX 160
void store_set_signer(struct store *st, store_sign_fn fn, void *ctx);

/* Outbox: rows in sequence order from after_seq; delivered rows are skipped. */
struct store_outbox_row {
	int64_t seq;
	const char *kind, *record_id;
	int revision;
	const char *body;
	size_t body_len;
	const unsigned char *sig;
	size_t sig_len;
	int64_t created_ms;
};
int store_outbox_next(struct store *st, int64_t after_seq, int limit,
                      int (*cb)(void *ctx, const struct store_outbox_row *r), void *ctx);
/* Marks every row with seq <= upto delivered (cumulative ack). Idempotent. */
int store_outbox_ack(struct store *st, int64_t upto, int64_t now_ms);
/* Depth (undelivered rows) and created_ms of the oldest undelivered row (0 when none). */
int store_outbox_depth(struct store *st, int64_t *depth, int64_t *oldest_ms);

/* The highest seq ever written to the outbox (0 before the first record). An ack above it
 * cannot be genuine. */
int store_outbox_last_seq(struct store *st, int64_t *seq);

/*
 * Making room when the outbox reaches its bound (docs/protocol.md, "Outbox bound"): deletes
 * the stored track detail of the oldest sessions, at most max_batches track rows (each up
 * to STORE_TRACK_BATCH points), never those of keep_session (the open session; NULL keeps
 * none), in one transaction that also adds the points deleted to the counter
 * "track.pruned". Billing records are never touched. *points gets the number of points
 * deleted. 0, -ENOENT when there is no track detail left to delete, or an error.
 */
int store_track_prune(struct store *st, const char *keep_session, int max_batches,
                      int64_t *points);

/*
 * Backend commands (docs/protocol.md, "Commands"). Every command the device decided is
 * recorded with its reply JSON under its id (the most recent STORE_CMD_KEEP commands are
 * kept), so a redelivered command is answered from here and never applied twice, even
 * after a restart. A command that produces an engine event is recorded in the same
 * transaction as that event: store_command_arm() before the store_apply() of the event.
 * Strings are valid during cb.
 */
#define STORE_CMD_ID_MAX 64        /* the protocol's id: 1 to 64 of [A-Za-z0-9._:-] */
#define STORE_CMD_JSON_MAX 4096    /* the protocol's bound on a cmd payload */
#define STORE_CMD_REPLY_MAX 1024
#define STORE_CMD_KEEP 1024
struct store_command_row {
	const char *id, *cmd, *reply;
	int64_t t_ms;
	int64_t event_id;              /* journal id of the event it produced; 0 if none */
};
/* The recorded command with this id: cb's value, or -ENOENT when there is none. */
int store_command_get(struct store *st, const char *id,
                      int (*cb)(void *ctx, const struct store_command_row *r), void *ctx);
/* Makes the next store_apply() record this command (strings copied) in its transaction,
 * with the event's journal id. store_apply() consumes it whether it succeeds or not. */
int store_command_arm(struct store *st, const char *id, const char *cmd_json,
                      const char *reply_json);
void store_command_disarm(struct store *st);
/* A configuration key set by the backend: "section.key" and its JSON value text. */
struct store_overlay_kv {
	const char *key, *value;
};
/* Records a command that produces no engine event (config, ping, or one refused), with
 * for config its overlay entries, in one transaction. -EINVAL for an oversized string. */
int store_command_put(struct store *st, const char *id, const char *cmd_json,
                      const char *reply_json, int64_t t_ms,
                      const struct store_overlay_kv *kv, size_t n);
/* Calls cb for every configuration key the backend set, ordered by key. */
int store_config_overlay(struct store *st,
                         int (*cb)(void *ctx, const char *key, const char *value,
                                   const char *cmd_id, int64_t t_ms),
                         void *ctx);

/*
 * Socket requests with a client-chosen id (docs/ipc.md, "Retries"). A request that carries
 * an id is recorded with the reply it was given, in the transaction of its event
 * (store_request_arm() before the store_apply()), so a crash can neither apply it without
 * recording it nor record it without applying it; a retry is answered from here and not
 * applied again, even after a restart. The window: the most recent STORE_REQ_KEEP ids,
 * and none received more than STORE_REQ_AGE_MS before (on the daemon's timeline). Each id
 * keeps a SHA-256 of the request's bytes, so a reuse of the id for another request can be
 * told from a retry. Strings are valid during cb.
 */
#define STORE_REQ_ID_MAX 63        /* evjson's "id": 1 to 63 printable ASCII characters */
#define STORE_REQ_REPLY_MAX 1024
#define STORE_REQ_KEEP 1024
#define STORE_REQ_AGE_MS (24LL * 3600 * 1000)
struct store_request_row {
	const char *id, *reply;
	bool same;                     /* the request's bytes are those recorded with the id */
	int64_t t_ms;                  /* when it was received */
	int64_t event_id;              /* journal id of its event */
};
/*
 * The request recorded under id within the window at now_ms (request, len: the request
 * as received now, compared with the recorded one): cb's value, or -ENOENT when none.
 */
int store_request_get(struct store *st, const char *id, const char *request, size_t len,
                      int64_t now_ms,
                      int (*cb)(void *ctx, const struct store_request_row *r), void *ctx);
/*
 * Makes the next store_apply() record this request (id copied, request hashed) in its
 * transaction, received at the event's time. The reply is made there, once the event's
 * journal id is known: reply(ctx, event_id, buf, len) writes it NUL-terminated, at most
 * STORE_REQ_REPLY_MAX bytes, or returns a negative code, which fails the whole
 * transaction. store_apply() consumes the request whether it succeeds or not.
 */
typedef int (*store_reply_fn)(void *ctx, int64_t event_id, char *buf, size_t len);
int store_request_arm(struct store *st, const char *id, const char *request, size_t len,
                      store_reply_fn reply, void *ctx);
void store_request_disarm(struct store *st);
/* The reply the last successful store_apply() recorded for its request ("" when none). */
const char *store_request_reply(const struct store *st);

/*
 * Bounds the database file to about max_bytes (PRAGMA max_page_count; 0 leaves it
 * unbounded). When the bound is reached a write fails with -ENOSPC like a full disk, and
 * the caller makes room with store_track_prune() and tries again: billing records are
 * never dropped to make room (design invariant 5). SQLite never sets the bound below the
 * pages already in use. 0 or -EIO.
 */
int store_set_max_size(struct store *st, int64_t max_bytes);

/* SELECT 1 against the database: the health check's touch. 0 or -EIO. */
int store_ping(struct store *st);

#endif
