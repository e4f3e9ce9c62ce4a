/*
 * config.h - the configuration file (INI, parsed with inih). docs/configuration.md and
 * coverd.conf(5) list every key; firmware/coverd.conf is the commented example installed
 * as /etc/coverd/coverd.conf. Durations accept a unit suffix: ms, s, m, h ("10m", "16h");
 * a bare number is seconds. An unknown section or key, a bad value or an out-of-range
 * parameter is an error naming the file, line, key and reason.
 */
#ifndef COVERD_CONFIG_H
#define COVERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "log.h"

#define CONFIG_PATH_MAX 512
#define CONFIG_STR_MAX 256
#define CONFIG_TZ_MAX 64      /* an IANA time zone name, incl. NUL */

struct coverd_config {
	/* [device] */
	char board[64];                       /* boards/<name>, informational */
	char time_zone[CONFIG_TZ_MAX];        /* IANA zone explain's local times are in;
	                                       * "" (default): the system's (TZ, /etc/localtime) */
	/* [engine]: device_id lives in engine.device_id ([device] id) */
	struct engine_config engine;
	/* [store] */
	char state_dir[CONFIG_PATH_MAX];      /* default /var/lib/coverd */
	int64_t track_flush_ms;               /* default 30 s */
	int64_t max_size_kib;                 /* database bound in KiB; 0 (default) = none */
	/* [ipc] */
	char socket_path[CONFIG_PATH_MAX];    /* default <state_dir>/coverd.sock when empty */
	unsigned socket_mode;                 /* default 0660 */
	int64_t max_app_skew_ms;              /* an app "t" further from receipt is a clock
	                                       * anomaly (docs/ipc.md, "Time"); 2 min */
	/* [gnss] */
	char gnss_source[16];                 /* gpsd | app | none; default gpsd */
	char gpsd_host[CONFIG_STR_MAX];       /* default 127.0.0.1 */
	char gpsd_port[16];                   /* default 2947 */
	int64_t fix_stale_ms;                 /* health: last fix older than this is stale; 2 min */
	/* [log] */
	enum log_level log_level;             /* default info */
	bool log_syslog;                      /* default true when not in the foreground */
	/* [mqtt] (delivery, sync/) */
	bool mqtt_enabled;                    /* default false */
	char mqtt_host[CONFIG_STR_MAX];
	int mqtt_port;                        /* default 8883 */
	int mqtt_protocol;                    /* 5 (default) or 311 */
	int mqtt_keepalive_s;                 /* default 30 */
	char mqtt_ca_file[CONFIG_PATH_MAX];
	char mqtt_cert_file[CONFIG_PATH_MAX];
	char mqtt_key_file[CONFIG_PATH_MAX];
	char mqtt_tls_server_name[CONFIG_STR_MAX]; /* default: mqtt_host */
	bool mqtt_insecure_plaintext;         /* development only: plaintext to loopback */
	int mqtt_inflight;                    /* outbox records in flight, default 32 */
	int64_t mqtt_backoff_min_ms, mqtt_backoff_max_ms;  /* 1 s, 5 min */
	char signing_key_file[CONFIG_PATH_MAX];   /* default <state_dir>/device.key */
	int64_t outbox_max_rows;              /* bound; track detail goes first; 100000 */
};

/* Fills every field with its documented default. */
void config_defaults(struct coverd_config *cfg);

/*
 * Reads path over the defaults already in cfg. Returns 0, or -ENOENT / -EACCES when the
 * file cannot be opened, or -EINVAL for a bad line; err then names path, line, key and
 * reason, e.g. "/etc/coverd/coverd.conf:12: [engine] gap_end: \"ten\" is not a duration".
 * Validates the whole result (engine_config_check and the rest) before returning 0.
 */
int config_load(struct coverd_config *cfg, const char *path, char *err, size_t errlen);

/* Writes the normalised configuration (every key, in file order, units normalised). */
int config_print(const struct coverd_config *cfg, FILE *out);

/* Parses "90", "90s", "10m", "16h", "250ms" into milliseconds. 0 or -EINVAL. */
int config_parse_duration(const char *s, int64_t *ms);
/* Formats ms as the largest exact unit: "10m", "16h", "90s", "250ms". */
void config_format_duration(int64_t ms, char *buf, size_t len);

/*
 * Checks a [device] timezone value: empty (the system's zone), or an IANA name such as
 * "Europe/Ljubljana" whose compiled zone file exists under $TZDIR or /usr/share/zoneinfo
 * (the C library reads the same file; it would silently take an unknown name for UTC).
 * 0, or -EINVAL with the reason in why.
 */
int config_check_time_zone(const char *name, char *why, size_t whylen);

/* The socket path: socket_path, or <state_dir>/coverd.sock when that is empty. */
void config_socket_path(const struct coverd_config *cfg, char *buf, size_t len);

#endif
