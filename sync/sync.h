/*
 * sync.h - delivery to the backend (docs/protocol.md): the MQTT link over mutual TLS,
 * driven from the daemon's own loop; the outbox pump; the retained status; backend
 * acknowledgements and commands.
 *
 * The link. libmosquitto runs without its thread: its socket is registered on the loop
 * (mosquitto_loop_read / _write on readiness, LOOP_WRITE toggled by mosquitto_want_write,
 * mosquitto_loop_misc on a one-second timer). Each connection attempt uses a fresh
 * libmosquitto client, so nothing the library queued for a dead connection is ever sent
 * behind the pump's back: the pump alone decides what is (re)sent, in sequence order, and
 * the status is the first message of every connection. Connecting never blocks the loop
 * except for name resolution: libmosquitto resolves the broker's name with a blocking
 * getaddrinfo(), so [mqtt] host should be an IP address or a name in /etc/hosts.
 *
 * Keepalive. A dead link is noticed within 1.5 × [mqtt] keepalive of the last byte
 * received: coverd announces 3/4 of the configured keepalive to the broker (so
 * libmosquitto pings well inside the window) and closes the link itself when nothing at
 * all has arrived for 1.5 × keepalive, independently of libmosquitto's own check.
 *
 * Ownership: the sync object borrows the core, the loop and the signing key, which must
 * outlive it. It reads the store through core_store() on every use, because
 * core_restart() replaces it. Errors: 0 or a negative errno, with err naming the cause.
 */
#ifndef COVERD_SYNC_H
#define COVERD_SYNC_H

#include <stddef.h>

#include "config.h"
#include "core.h"
#include "loop.h"

struct sync;
struct sign_key;
struct cJSON;

/*
 * Prepares delivery for cfg (cfg->mqtt_enabled must be set): checks the TLS files (the
 * key 0600, the client certificate's CN equal to the device id) and builds the topics.
 * Nothing connects before sync_start(). key signs outbox rows written before a signer was
 * set, at send time (signatures are deterministic, so resends stay byte-identical).
 */
int sync_new(struct sync **out, struct core *c, struct loop *l, const struct coverd_config *cfg,
             struct sign_key *key, char *err, size_t errlen);
/* Starts connecting (in the background, with backoff). */
int sync_start(struct sync *s);
/*
 * Clean shutdown: publishes the retained "offline" status, disconnects (so the broker
 * discards the will) and flushes, waiting at most max_ms on the MQTT socket alone.
 */
void sync_shutdown(struct sync *s, int max_ms);
void sync_free(struct sync *s);

/* The core's commit hook (core_commit_fn): ctx is the sync object. New outbox rows are
 * sent at once (within the window); a change of cover state republishes the status. */
void sync_on_commit(void *ctx, unsigned what);
/* An ipc status hook: adds the member "mqtt" (link state, window, acks, latency). */
void sync_status(void *ctx, struct cJSON *status);

/* The signing key's path: [mqtt] signing_key, or <state_dir>/device.key. */
void sync_key_path(const struct coverd_config *cfg, char *buf, size_t len);

/*
 * Applies the configuration keys set by backend config commands (store table
 * config_overlay) over cfg, as coverd does at start and on every reload. A key that no
 * longer parses is logged and skipped. Returns the number of keys applied, or a negative
 * code when the store cannot be read.
 */
struct store;
int sync_config_overlay(struct store *st, struct coverd_config *cfg);

#endif
