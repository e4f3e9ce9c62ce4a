/*
 * gnss.h - position fixes from a GNSS source.
 *
 * A backend is a const table of functions (struct gnss_ops); struct gnss is the thin
 * wrapper in front of it that validates every fix once (finite, in-range coordinates, a
 * 2D or 3D mode, speeds in m/s, NaN for what is unknown) before handing it to the caller,
 * so no backend can pass a malformed fix into the engine.
 *
 * Backends, chosen by [gnss] source:
 *   gpsd   libgps over TCP: WATCH_ENABLE|WATCH_JSON, TPV reports become fixes.
 *   app    fixes arrive as events on the local socket; nothing to open here.
 *   none   no GNSS at all.
 *   mock   tests push fixes with gnss_mock_push(); they come out through an eventfd.
 *
 * The interface never blocks and never owns a loop: the daemon polls gnss_fd() for
 * readability and calls gnss_read(), which delivers zero or more fixes to the callback.
 * When the source goes away (gnss_read() < 0, or gnss_open() fails) the caller closes it
 * and retries after gnss_backoff_next(), which grows from 1 s to 60 s and is reset by the
 * next good fix.
 *
 * Adding a backend: copy gnss_mock.c's shape (open, fd, read, close), declare its ops
 * below, and add its name to the table in gnss.c.
 */
#ifndef COVERD_HAL_GNSS_H
#define COVERD_HAL_GNSS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define GNSS_BACKOFF_MIN_MS 1000
#define GNSS_BACKOFF_MAX_MS 60000

struct gnss_report {
	struct engine_fix fix;
	int64_t gnss_time_ms;       /* the fix's own UTC time, INT64_MIN when it carries none */
};

typedef void (*gnss_report_cb)(void *ctx, const struct gnss_report *r);

struct gnss;

struct gnss_ops {
	const char *name;
	/* Connects or opens. 0, or a negative errno (the caller retries later). */
	int (*open)(struct gnss *g);
	/* The descriptor to poll for reading, or -1 when there is none. */
	int (*fd)(const struct gnss *g);
	/* Reads what is ready and calls gnss__deliver() per fix: 0, 1 when more input is
	 * already buffered (call again without waiting), or a negative errno when the source
	 * was lost. */
	int (*read)(struct gnss *g);
	void (*close)(struct gnss *g);
};

extern const struct gnss_ops gnss_gpsd_ops;
extern const struct gnss_ops gnss_none_ops;   /* also serves "app" */
extern const struct gnss_ops gnss_mock_ops;

struct gnss {
	const struct gnss_ops *ops;
	const char *source;         /* the configured name */
	char host[256];
	char port[16];
	gnss_report_cb cb;
	void *cb_ctx;
	void *priv;                 /* the backend's own data */
	bool is_open;
	int64_t backoff_ms;
	uint64_t delivered, dropped;
	const char *last_drop;      /* why the last fix was dropped, static */
};

/*
 * Creates a source by name ("gpsd", "app", "none", "mock"). host and port are for gpsd.
 * -EINVAL for an unknown name, -ENOMEM.
 */
int gnss_new(struct gnss **out, const char *source, const char *host, const char *port,
             gnss_report_cb cb, void *ctx);
void gnss_free(struct gnss *g);

int gnss_open(struct gnss *g);
int gnss_fd(const struct gnss *g);
int gnss_read(struct gnss *g);
void gnss_close(struct gnss *g);
/* True when the source delivers fixes itself (gpsd, mock), false for app and none. */
bool gnss_active(const struct gnss *g);
/* The delay before the next reconnect attempt; doubles up to GNSS_BACKOFF_MAX_MS. */
int64_t gnss_backoff_next(struct gnss *g);

/* For backends: validates and normalises r, then calls the callback. 0 or -EINVAL. */
int gnss__deliver(struct gnss *g, const struct gnss_report *r);

/* The mock backend: queue a fix (at most 64 pending), or make the next opens fail. */
int gnss_mock_push(struct gnss *g, const struct gnss_report *r);
void gnss_mock_fail_opens(struct gnss *g, int n);

#endif
