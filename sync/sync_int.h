/*
 * sync_int.h - the sync module's shared internals (sync.c the lifecycle, mqtt.c the link,
 * pump.c the outbox pump and acks, status.c the retained status, cmd.c the commands).
 * Functions named sync__verb are for these files only.
 */
#ifndef COVERD_SYNC_INT_H
#define COVERD_SYNC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "loop.h"
#include "sign.h"

struct mosquitto;
struct mqtt_tls;
struct cJSON;

#define SYNC_TOPIC_MAX 96
/* An envelope: the base64 of a body of at most 4096 bytes (store.c BODY_JSON_MAX) and of
 * a signature, and the fixed members. */
#define SYNC_BODY_MAX 4096
#define SYNC_ENVELOPE_MAX 8192
#define SYNC_STATUS_MAX 2048
/* Commit-to-ack latency: commits remembered while unacknowledged, and samples kept. */
#define SYNC_LAT_PENDING 4096
#define SYNC_LAT_SAMPLES 16384

enum sync_link {
	LINK_IDLE = 0,      /* not started, or waiting for the reconnect timer */
	LINK_CONNECTING,    /* socket open, TLS and CONNECT under way, no CONNACK yet */
	LINK_UP,            /* CONNACK accepted */
	LINK_CLOSED,        /* shut down */
};

struct sync_lat_pending {
	int64_t seq;        /* records up to this seq were committed at t_ms */
	int64_t t_ms;       /* loop time of the commit */
};

struct sync {
	struct core *core;
	struct loop *loop;
	struct coverd_config cfg;
	struct sign_key *key;
	char device_id[ENGINE_ID_MAX];
	char t_status[SYNC_TOPIC_MAX], t_records[SYNC_TOPIC_MAX], t_ack[SYNC_TOPIC_MAX],
	    t_cmd[SYNC_TOPIC_MAX], t_reply[SYNC_TOPIC_MAX];
	const char *tls_host;            /* the name the broker's certificate must carry */
	int keepalive_s;                 /* configured */
	int announced_keepalive_s;       /* sent to the broker: 3/4 of it, at least 5 */
	int64_t silence_ms;              /* 1.5 × keepalive: a link quiet this long is dead */
	int64_t ack_timeout_ms;          /* no ack progress this long with records in flight */
	int64_t status_interval_ms;

	/* The link. */
	enum sync_link link;
	struct mosquitto *mosq;
	struct mqtt_tls *tls;
	int fd;                          /* registered on the loop, or -1 */
	unsigned fd_events;
	int64_t connect_started_ms, last_rx_ms, up_since_ms;
	int64_t backoff_ms;
	int disconnect_rc;               /* from libmosquitto's on_disconnect, for the log */
	bool lost;                       /* the link failed inside a libmosquitto call */
	char lost_why[320];
	struct loop_timer misc_timer, silence_timer, reconnect_timer, kick_timer, status_timer;
	uint64_t connects, connect_failures, links_lost, published_refused;
	int shutdown_mid;
	bool shutdown_acked;
	char last_error[320];

	/* The pump (pump.c). Sequence numbers: acked_upto <= sent_upto. */
	int window;                      /* records in flight at most, this connection */
	int64_t acked_upto;              /* the backend has every record <= this */
	int64_t sent_upto;               /* published on this connection up to this */
	int64_t highest_sent;            /* the highest seq this process ever published (or
	                                  * had acked at start): no ack may go beyond it */
	int64_t pending_ack;             /* the highest valid ack not yet applied, or 0 */
	int64_t stored_upto;             /* acked_upto as last written to the store */
	int64_t last_ack_write_ms;
	struct loop_timer ack_timer;
	int64_t last_progress_ms;        /* loop time of the last ack progress or (re)send */
	int64_t last_ack_t_ms;           /* timeline time of the last ack progress, 0 never */
	bool outbox_full;
	int64_t track_pruned;            /* counter track.pruned: points dropped for the bound */
	uint64_t published, acks, resends;
	int64_t last_seq_seen;           /* the last outbox seq the pump knows was committed */
	int64_t backlog_upto;            /* the backlog found at connect, for the drain log */
	int64_t backlog_n, backlog_t0;

	/* Commit-to-ack latency (loop time). */
	struct sync_lat_pending lat_pend[SYNC_LAT_PENDING];
	size_t lat_head, lat_n;
	int32_t lat_samples[SYNC_LAT_SAMPLES];
	size_t lat_next, lat_count;

	/* Status (status.c). */
	bool status_dirty;
	char status_print[SYNC_STATUS_MAX];
	char status_key[512];            /* what "a change of cover state" compares */

	/* Scratch. */
	char envelope[SYNC_ENVELOPE_MAX];
	char b64_body[SIGN_B64_SIZE(SYNC_BODY_MAX)];
	char b64_sig[SIGN_B64_SIZE(STORE_SIG_MAX)];
};

/* mqtt.c */
int sync__publish(struct sync *s, const char *topic, const void *payload, size_t len,
                  bool retain, int *mid);
/* Re-reads the socket after a libmosquitto call, moves its registration, and tears a
 * lost link down; call it after every entry from the loop, never inside a callback. */
void sync__after(struct sync *s);
void sync__link_start(struct sync *s);
void sync__link_init(struct sync *s);
void sync__link_free(struct sync *s);
void sync__link_shutdown(struct sync *s, int max_ms);
void sync__kick(struct sync *s);

/* pump.c */
int sync__pump_load(struct sync *s);      /* acked_upto from the store */
void sync__pump_run(struct sync *s);      /* publish up to the window */
void sync__pump_reset(struct sync *s);    /* resend from the first unacknowledged */
void sync__pump_on_ack(struct sync *s, const void *payload, size_t len);
void sync__pump_init(struct sync *s);
void sync__pump_flush_ack(struct sync *s);      /* apply acks received, refill */
void sync__pump_store_ack(struct sync *s);      /* write the acked position now */
void sync__pump_check(struct sync *s);    /* ack timeout */
void sync__pump_committed(struct sync *s);
void sync__pump_bound(struct sync *s);    /* the outbox bound */
void sync__lat_status(struct sync *s, struct cJSON *o);

/* status.c */
void sync__status_publish(struct sync *s);
void sync__status_changed(struct sync *s);   /* publish when the cover state changed */
int sync__status_offline(struct sync *s, const char *reason, char *buf, size_t len);

/* cmd.c */
void sync__cmd_on_message(struct sync *s, const void *payload, size_t len);

#endif
