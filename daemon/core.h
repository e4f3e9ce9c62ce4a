/*
 * core.h - the daemon's heart: the configuration, the engine state and the store, and the
 * one path every event takes (core_submit: engine_step, then one store transaction).
 *
 * Live input, replayed scenarios and the local socket all submit here, so they give the
 * same sessions and activations. The core also keeps the engine's deadline armed on the
 * loop (a TICK event when it comes due) and flushes buffered track points every
 * [store] track_flush, so a power cut loses at most that much track detail and never a
 * billing record.
 *
 * Time. The core reads "now" through a struct core_timebase: the live daemon's is the hal
 * clock (timeline = CLOCK_BOOTTIME + offset, see hal/clock.h); a replay's runs at the
 * recorded pace times --speed. to_loop maps a timeline instant to loop time (also
 * CLOCK_BOOTTIME) for arming timers, or returns INT64_MAX when deadlines must not be
 * armed (a replay at --speed max: engine_step fires them itself before each event).
 *
 * Errors: 0 or a negative errno; the ones from the store are store_strerror()'s.
 */
#ifndef COVERD_CORE_H
#define COVERD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "loop.h"
#include "store.h"

struct core;

struct core_timebase {
	int64_t (*now)(void *ctx);
	int64_t (*to_loop)(void *ctx, int64_t t_ms);
	/* Optional: stamps a live event (t_ms, tq, clock-step anomaly); NULL uses now(). */
	void (*stamp)(void *ctx, struct engine_event *ev, int64_t gnss_time_ms);
	void *ctx;
};

struct core_result {
	bool accepted;             /* the engine applied the event */
	enum engine_reject reject; /* why not, when !accepted */
	bool journaled;            /* a journal row was written (not for a buffered fix) */
	int64_t event_id;          /* its journal id when the store tells it, else 0 */
};

/* Totals since start, for the replay summary and the status reply. */
struct core_stats {
	uint64_t applied, rejected, store_errors;
};

/*
 * Opens the store at <state_dir>/coverd.db (RW, creating it) and loads the engine state.
 * cfg is copied. On failure err names the path and the reason.
 */
int core_new(struct core **out, const struct coverd_config *cfg, struct loop *l,
             char *err, size_t errlen);
/* Flushes, closes the store and frees. */
void core_free(struct core *c);

/* Sets the time source and re-arms the deadline. tb is copied. */
void core_set_timebase(struct core *c, const struct core_timebase *tb);
/* The timeline now, never before the last accepted event. */
int64_t core_now(struct core *c);
/* Stamps an event that arrived without a time (socket, gpsd, ignition) with core_now(),
 * the time quality and any clock-step anomaly. gnss_time_ms: the fix's own time or
 * INT64_MIN. */
void core_stamp(struct core *c, struct engine_event *ev, int64_t gnss_time_ms);

/*
 * Runs one event through the engine and the store. source is "ipc", "replay", "gpsd",
 * "ignition" or "timer"; raw is the JSON as received (NUL-terminated) or NULL. On a store
 * failure the engine state is rolled back (memory never runs ahead of the disk) and the
 * store's error is returned. res may be NULL.
 */
int core_submit(struct core *c, const struct engine_event *ev, const char *source,
                const char *raw, struct core_result *res);

/*
 * A backend command's reply, made after the engine step and before the commit so that the
 * command is recorded (store_command_arm) in the same transaction as its event: given the
 * new state, the step's actions and its rejection (0 when applied), writes the reply JSON,
 * NUL-terminated, into buf. A non-zero return records nothing (the event still commits).
 */
typedef int (*core_reply_fn)(void *ctx, const struct engine_state *st,
                             const struct engine_actions *acts, int reject, char *buf,
                             size_t len);
/*
 * core_submit() for an event produced by a backend command (source "cmd"): cmd_id and
 * cmd_json (the command as received) are recorded with the reply reply() makes, in the
 * event's transaction. When the store fails nothing is recorded and the command may be
 * applied when it is delivered again.
 */
int core_submit_cmd(struct core *c, const struct engine_event *ev, const char *cmd_id,
                    const char *cmd_json, core_reply_fn reply, void *reply_ctx,
                    struct core_result *res);

/*
 * A socket request with a client-chosen id (docs/ipc.md, "Retries"): core_submit() that
 * records req_id and a hash of raw (the request as received, NUL-terminated) with the
 * reply in the event's own transaction (store_request_arm), so that the request is never
 * applied without being recorded nor recorded without being applied. Such an event is
 * always committed before this returns, even a fix that would otherwise only be
 * buffered. reply() makes the reply from the outcome (res->event_id is the event's
 * journal id); it runs inside the transaction and its failure fails the whole event.
 * After a 0 return, store_request_reply(core_store(c)) is the reply that was recorded.
 * On a store failure nothing is recorded and a retry applies the request then.
 */
typedef int (*core_request_reply_fn)(void *ctx, const struct core_result *res, char *buf,
                                     size_t len);
int core_submit_request(struct core *c, const struct engine_event *ev, const char *source,
                        const char *raw, const char *req_id, core_request_reply_fn reply,
                        void *reply_ctx, struct core_result *res);

/*
 * The signer of outbox records (sync/sign.h sign_body with the device key). Set it before
 * the first event; it is applied to the store now and again whenever the core reopens its
 * store (core_restart), so no record is ever committed unsigned while it is set.
 */
void core_set_signer(struct core *c, store_sign_fn fn, void *ctx);

/* What a commit wrote, passed to the commit hook. */
#define CORE_COMMIT_OUTBOX  0x1u   /* outbox rows: records to deliver */
#define CORE_COMMIT_SESSION 0x2u   /* a session or activation opened, closed or voided */
#define CORE_COMMIT_STATE   0x4u   /* billing state (policy, online, ...) was committed */
#define CORE_COMMIT_REOPEN  0x8u   /* the store was closed and reopened (core_restart) */
/*
 * Called after every transaction core_submit/core_tick commits and after core_restart,
 * from inside those calls: the delivery pump learns of new outbox rows at once. The hook
 * must not submit events.
 */
typedef void (*core_commit_fn)(void *ctx, unsigned what);
void core_set_commit_hook(struct core *c, core_commit_fn fn, void *ctx);

/* Advances the engine to t_ms (a TICK), firing the deadlines up to it. */
int core_tick(struct core *c, int64_t t_ms, const char *source);

/* Commits buffered track points and the in-memory state. */
int core_flush(struct core *c);

/*
 * What a process restart does, in process: flush, close the store, forget the state,
 * reopen the store and load the state. The replay's {"type":"restart"} line.
 */
int core_restart(struct core *c, char *err, size_t errlen);

/*
 * Applies a new configuration read on SIGHUP: log level, engine parameters (device id,
 * activation length and minimum cover only while no session is open), track flush, fix
 * staleness. Settings that need a restart (state directory, socket, GNSS source) are
 * logged and left as they were. Returns 0, or -EINVAL when ncfg fails engine_config_check.
 */
int core_reload(struct core *c, const struct coverd_config *ncfg);

/* Adds delta to a store counter; a failure is logged, never fatal. */
void core_count(struct core *c, const char *name, int64_t delta);

const struct coverd_config *core_config(const struct core *c);
const struct engine_state *core_state(const struct core *c);
struct store *core_store(struct core *c);
const struct core_stats *core_stats(const struct core *c);
struct loop *core_loop(struct core *c);
const char *core_db_path(const struct core *c);

/* The id of the activation in progress, or "" when none. */
void core_open_activation_id(const struct core *c, char *buf, size_t len);

#endif
