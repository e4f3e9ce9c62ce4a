/*
 * evjson.h - events as JSON: the scenario file format (docs/scenario-format.md) and the
 * app's messages on the local socket share one codec, so replayed and live input are
 * read by the same code.
 */
#ifndef COVERD_EVJSON_H
#define COVERD_EVJSON_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

enum evjson_kind {
	EVJSON_ENGINE = 0,   /* *ev holds an engine event */
	EVJSON_RESTART,      /* {"type":"restart"}: a simulated daemon restart (replay only) */
};

/*
 * Parses one JSON object (one scenario line or one socket message). Returns 0 and fills
 * *ev and *kind, or -EINVAL and writes into err (always NUL-terminated) a reason that
 * names the offending field, e.g. "field \"lat\": 91.2 is out of range [-90, 90]".
 * When require_time is 0 and "t" is absent, ev->t_ms is left at INT64_MIN for the caller
 * to stamp. The line need not be NUL-terminated. Never allocates beyond cJSON's parse.
 */
int evjson_parse(const char *line, size_t len, int require_time, struct engine_event *ev,
                 enum evjson_kind *kind, char *err, size_t errlen);

/*
 * What a line carries besides the engine event. "id" is a socket request's client-chosen
 * id (docs/ipc.md, "Retries"): 1 to EVJSON_ID_MAX - 1 printable ASCII characters, checked
 * wherever it appears; a replay accepts it and does nothing with it.
 */
#define EVJSON_ID_MAX 64
struct evjson_meta {
	char id[EVJSON_ID_MAX];      /* "" when the line has no "id" */
};

/* evjson_parse() that also fills *meta (when not NULL; left untouched on failure). */
int evjson_parse_meta(const char *line, size_t len, int require_time, struct engine_event *ev,
                      enum evjson_kind *kind, struct evjson_meta *meta, char *err,
                      size_t errlen);

/* RFC 3339 UTC ("2026-11-28T09:00:00Z", optional fraction, "Z" or +hh:mm). 0 or -EINVAL. */
int evjson_parse_time(const char *s, int64_t *ms_out);
/* Writes "YYYY-MM-DDTHH:MM:SSZ", with ".mmm" before Z when ms is not whole seconds. */
void evjson_format_time(int64_t ms, char *buf, size_t len);
#define EVJSON_TIME_MAX 32

/* The longest line evjson_parse() accepts, in bytes (docs/ipc.md, docs/scenario-format.md). */
#define EVJSON_LINE_MAX 65536

/*
 * Returns 1 when a scenario line carries no event: empty, only white space, or a comment
 * whose first non-blank character is '#'. The replay reader skips such lines; the socket
 * does not use this (every request gets a reply).
 */
int evjson_skip_line(const char *line, size_t len);

#endif
