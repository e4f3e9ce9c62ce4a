/*
 * coverctl - ask coverd what it knows: status, sessions, activations, why an activation
 * was billed (explain), health; and inject a courier app event.
 *
 * coverctl talks to the running daemon over its Unix socket (docs/ipc.md): one request
 * line out, one reply line back, within a timeout. When no daemon answers, the read
 * commands open the state directory's database read-only instead, so the billing record
 * can be inspected on a device whose daemon is stopped, or after a replay. Both paths
 * produce the same JSON objects (daemon/render.h), and every output format is made from
 * those objects, so a table, a JSON document and a CSV file always agree.
 *
 * Exit status: 0 success, 1 failure (including "unhealthy"), 2 usage error.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "engine.h"
#include "evjson.h"
#include "explain.h"
#include "paths.h"
#include "render.h"
#include "sign.h"
#include "store.h"

#ifndef COVERD_VERSION
#define COVERD_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/*
 * A reply carries at most every session or activation ever recorded on the device; 16 MiB
 * is years of shifts, and the bound keeps a broken peer from exhausting memory.
 */
#define REPLY_MAX (16u * 1024u * 1024u)
#define DEFAULT_TIMEOUT_MS 5000
#define PATH_BUF (CONFIG_PATH_MAX + 32)
#define ERR_BUF 1024

enum out_fmt { FMT_TABLE = 0, FMT_JSON, FMT_CSV };

struct ctl {
	struct coverd_config cfg;
	char sock[PATH_BUF];
	char db[PATH_BUF];
	int timeout_ms;
	enum out_fmt fmt;
	const char *session;          /* activations --session */
	const char *job_id;           /* event --job-id */
	const char *req_id;           /* event --id: the request id a retry repeats */
	struct store *st;             /* opened on first read-only use */
	char daemon_err[ERR_BUF];     /* why the daemon did not answer, for messages */
	bool from_daemon;             /* the last answer came from the daemon */
};

static const char usage_text[] =
    "usage: coverctl [-s SOCKET | --socket SOCKET] [--state-dir DIR] [-c CONFIG]\n"
    "                [--timeout SECONDS] COMMAND [ARGS] [--json | --csv]\n"
    "\n"
    "commands:\n"
    "  status                      cover state, session, last fix, outbox, counters\n"
    "  sessions                    every cover session (table, --json or --csv)\n"
    "  activations [--session ID]  hourly activations (table, --json or --csv)\n"
    "  event NAME [--job-id ID] [--id ID]\n"
    "                              inject a courier app event (needs a running daemon);\n"
    "                              --id makes it safe to retry: a lost reply is asked\n"
    "                              for again with the same id, applied once\n"
    "  explain ACTIVATION_ID       why an activation exists and how it is billed\n"
    "  health                      exit 0 only when db, loop and last fix are healthy\n"
    "  key --public [--key FILE]   print the device's public signing key (PEM) for\n"
    "                              enrolment with the backend (coverd-ingest enroll)\n"
    "  version                     print the versions of coverctl and the daemon\n"
    "  help                        print this help\n"
    "\n"
    "Without a daemon answering on the socket, status, sessions, activations and explain\n"
    "read <state_dir>/" COVERD_DB_NAME " read-only. Exit status: 0 ok, 1 failure or unhealthy,\n"
    "2 usage error. See coverctl(1).\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("coverctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'coverctl help' for more information.\n", stderr);
}

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("coverctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------------------------ */
/* JSON accessors: the daemon's objects are read defensively, a missing field prints "-". */

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jnum(const cJSON *o, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v))
		return false;
	*out = v->valuedouble;
	return true;
}

static int jbool(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsTrue(v))
		return 1;
	if (cJSON_IsFalse(v))
		return 0;
	return -1;
}

static const char *or_dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

static const char *yes_no(int b)
{
	return b < 0 ? "-" : b ? "yes" : "no";
}

/* "H:MM:SS" for an elapsed time. */
static void fmt_hms(char *buf, size_t len, int64_t ms)
{
	int64_t s = ms < 0 ? 0 : ms / 1000;

	snprintf(buf, len, "%lld:%02lld:%02lld", (long long)(s / 3600),
	         (long long)(s % 3600 / 60), (long long)(s % 60));
}

/* The elapsed time between two RFC 3339 members, or "-" when either is missing. */
static void fmt_span(char *buf, size_t len, const cJSON *o, const char *from, const char *to)
{
	int64_t a, b;
	const char *sa = jstr(o, from), *sb = jstr(o, to);

	if (sa == NULL || sb == NULL || evjson_parse_time(sa, &a) < 0 ||
	    evjson_parse_time(sb, &b) < 0) {
		snprintf(buf, len, "-");
		return;
	}
	fmt_hms(buf, len, b - a);
}

/* A JSON scalar as CSV or table text: strings as is, numbers shortest, null empty. */
static void scalar_text(char *buf, size_t len, const cJSON *v)
{
	if (cJSON_IsString(v))
		snprintf(buf, len, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(buf, len, "%.15g", v->valuedouble);
	else if (cJSON_IsTrue(v))
		snprintf(buf, len, "true");
	else if (cJSON_IsFalse(v))
		snprintf(buf, len, "false");
	else
		buf[0] = '\0';
}

/* ------------------------------------------------------------------------------------ */
/* Aligned text tables. */

struct table {
	size_t ncols;
	const char *const *hdr;
	unsigned right;               /* bit i: right-align column i (numbers) */
	char **cells;                 /* nrows * ncols, each malloc'd */
	size_t nrows, cap;
};

static int table_add(struct table *t, const char *const *row)
{
	size_t i;

	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		char **n = realloc(t->cells, ncap * t->ncols * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		t->cells = n;
		t->cap = ncap;
	}
	for (i = 0; i < t->ncols; i++) {
		char *c = strdup(row[i] != NULL ? row[i] : "-");

		if (c == NULL) {
			while (i-- > 0)
				free(t->cells[t->nrows * t->ncols + i]);
			return -ENOMEM;
		}
		t->cells[t->nrows * t->ncols + i] = c;
	}
	t->nrows++;
	return 0;
}

static void table_print(const struct table *t, FILE *f)
{
	size_t w[32] = { 0 };
	size_t i, r;

	for (i = 0; i < t->ncols && i < 32; i++)
		w[i] = strlen(t->hdr[i]);
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols && i < 32; i++) {
			size_t l = strlen(t->cells[r * t->ncols + i]);

			if (l > w[i])
				w[i] = l;
		}
	for (r = 0; r <= t->nrows; r++) {
		for (i = 0; i < t->ncols && i < 32; i++) {
			const char *c = r == 0 ? t->hdr[i] : t->cells[(r - 1) * t->ncols + i];
			bool last = i + 1 == t->ncols;

			if (t->right & (1u << i))
				fprintf(f, "%*s", (int)w[i], c);
			else if (last)
				fputs(c, f);
			else
				fprintf(f, "%-*s", (int)w[i], c);
			if (!last)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
}

static void table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* ------------------------------------------------------------------------------------ */
/* CSV, RFC 4180: fields with a comma, quote, CR or LF are quoted, quotes doubled, CRLF. */

static void csv_field(FILE *f, const char *s, bool last)
{
	if (strpbrk(s, ",\"\r\n") != NULL) {
		fputc('"', f);
		for (; *s != '\0'; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
	fputs(last ? "\r\n" : ",", f);
}

/* Writes a header and one row per object, the columns being the objects' members. */
static void csv_print(FILE *f, const cJSON *arr, const char *const *cols, size_t ncols)
{
	const cJSON *o;
	size_t i;
	char buf[1024];

	for (i = 0; i < ncols; i++)
		csv_field(f, cols[i], i + 1 == ncols);
	cJSON_ArrayForEach(o, arr) {
		for (i = 0; i < ncols; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, cols[i]);

			if (cJSON_IsArray(v)) {
				/* Anomaly names: one field, names separated by semicolons. */
				const cJSON *e;
				size_t used = 0;

				buf[0] = '\0';
				cJSON_ArrayForEach(e, v) {
					if (cJSON_IsString(e) && used + strlen(e->valuestring) + 2 < sizeof(buf))
						used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s",
						                         used ? ";" : "", e->valuestring);
				}
			} else {
				scalar_text(buf, sizeof(buf), v);
			}
			csv_field(f, buf, i + 1 == ncols);
		}
	}
}

static void print_json(const cJSON *v)
{
	char *s = cJSON_Print(v);

	if (s == NULL) {
		fail_msg("out of memory formatting JSON");
		return;
	}
	puts(s);
	free(s);
}

/* ------------------------------------------------------------------------------------ */
/* The daemon's socket: one request line, one reply line, all within the timeout. */

static int64_t mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline. 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - mono_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Sends req and returns the parsed reply in *reply (caller frees). Returns 0, or a
 * negative errno with err naming the socket: -ENOENT / -ECONNREFUSED / -EACCES when no
 * daemon can be reached, -ETIMEDOUT when it does not answer in time, -EPROTO for a reply
 * that is not a JSON object, -EMSGSIZE for one over REPLY_MAX.
 */
static int ipc_call(const struct ctl *c, const cJSON *req, cJSON **reply, char *err,
                    size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
	                      .tv_usec = (c->timeout_ms % 1000) * 1000 };
	char *line = NULL, *buf = NULL;
	size_t len, off = 0, cap = 0, used = 0;
	int64_t deadline;
	int fd = -1, rc, flags;
	char *nl = NULL;

	*reply = NULL;
	if (strlen(c->sock) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long (limit %zu bytes)", c->sock,
		         sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, c->sock, strlen(c->sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return rc;
	}
	/* A Unix connect blocks while the listen backlog is full; the send timeout bounds it. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		rc = -errno;
		snprintf(err, errlen, "socket %s: setsockopt: %s", c->sock, strerror(errno));
		goto out;
	}
	deadline = mono_ms() + c->timeout_ms;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", c->sock, strerror(-rc));
		goto out;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
		rc = -errno;
		snprintf(err, errlen, "socket %s: fcntl: %s", c->sock, strerror(errno));
		goto out;
	}

	line = cJSON_PrintUnformatted(req);
	if (line == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory building the request");
		goto out;
	}
	len = strlen(line);
	{
		char *l2 = realloc(line, len + 2);

		if (l2 == NULL) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory building the request");
			goto out;
		}
		line = l2;
		line[len++] = '\n';
		line[len] = '\0';
	}
	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc > 0)
				continue;
			if (rc == 0) {
				rc = -ETIMEDOUT;
				snprintf(err, errlen, "daemon at %s did not take the request within %.1f s",
				         c->sock, c->timeout_ms / 1000.0);
			} else {
				snprintf(err, errlen, "poll on %s: %s", c->sock, strerror(-rc));
			}
			goto out;
		}
		rc = -errno;
		snprintf(err, errlen, "sending to %s: %s", c->sock, strerror(errno));
		goto out;
	}

	for (;;) {
		ssize_t n;

		if (cap - used < 4096) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *nb;

			if (ncap > REPLY_MAX + 1)
				ncap = REPLY_MAX + 1;
			if (ncap - used < 2) {
				rc = -EMSGSIZE;
				snprintf(err, errlen, "reply from %s exceeds %u bytes", c->sock, REPLY_MAX);
				goto out;
			}
			nb = realloc(buf, ncap);
			if (nb == NULL) {
				rc = -ENOMEM;
				snprintf(err, errlen, "out of memory reading the reply");
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		n = recv(fd, buf + used, cap - used - 1, 0);
		if (n > 0) {
			nl = memchr(buf + used, '\n', (size_t)n);
			used += (size_t)n;
			if (nl != NULL)
				break;
			continue;
		}
		if (n == 0) {
			rc = -EPROTO;
			snprintf(err, errlen, "daemon at %s closed the connection without a reply",
			         c->sock);
			goto out;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			rc = wait_fd(fd, POLLIN, deadline);
			if (rc > 0)
				continue;
			if (rc == 0) {
				rc = -ETIMEDOUT;
				snprintf(err, errlen, "no reply from the daemon at %s within %.1f s",
				         c->sock, c->timeout_ms / 1000.0);
			} else {
				snprintf(err, errlen, "poll on %s: %s", c->sock, strerror(-rc));
			}
			goto out;
		}
		rc = -errno;
		snprintf(err, errlen, "reading from %s: %s", c->sock, strerror(errno));
		goto out;
	}
	*reply = cJSON_ParseWithLength(buf, (size_t)(nl - buf));
	if (*reply == NULL || !cJSON_IsObject(*reply)) {
		cJSON_Delete(*reply);
		*reply = NULL;
		rc = -EPROTO;
		snprintf(err, errlen, "daemon at %s sent a reply that is not a JSON object",
		         c->sock);
		goto out;
	}
	rc = 0;
out:
	free(line);
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Asks the daemon and detaches member key of a successful reply into *out.
 * Returns 1 when the daemon answered ok, 0 when no daemon answered (c->daemon_err says
 * why; the caller may fall back to the database), -1 when the daemon answered with an
 * error, which is printed.
 */
static int daemon_query(struct ctl *c, cJSON *req, const char *key, cJSON **out)
{
	cJSON *reply = NULL;
	const cJSON *ok;
	int rc;

	*out = NULL;
	rc = ipc_call(c, req, &reply, c->daemon_err, sizeof(c->daemon_err));
	if (rc < 0) {
		/* A daemon that is there but silent is worth a warning: its data may be older. */
		if (rc == -ETIMEDOUT || rc == -EPROTO || rc == -EMSGSIZE)
			fprintf(stderr, "coverctl: warning: %s\n", c->daemon_err);
		return 0;
	}
	ok = cJSON_GetObjectItemCaseSensitive(reply, "ok");
	if (!cJSON_IsTrue(ok)) {
		const char *e = jstr(reply, "error");

		fail_msg("daemon at %s: %s", c->sock, e != NULL ? e : "request failed");
		cJSON_Delete(reply);
		return -1;
	}
	*out = cJSON_DetachItemFromObjectCaseSensitive(reply, key);
	cJSON_Delete(reply);
	if (*out == NULL) {
		fail_msg("daemon at %s: reply has no \"%s\"", c->sock, key);
		return -1;
	}
	c->from_daemon = true;
	return 1;
}

/* ------------------------------------------------------------------------------------ */
/* Read-only access to the state directory's database. */

/* Opens <state_dir>/coverd.db read-only. 0 or -1 with a message naming what failed. */
static int ro_open(struct ctl *c)
{
	char err[ERR_BUF];
	struct stat sb;
	int rc;

	if (c->st != NULL)
		return 0;
	if (stat(c->cfg.state_dir, &sb) != 0) {
		fail_msg("no daemon answering (%s), and state directory %s: %s", c->daemon_err,
		         c->cfg.state_dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fail_msg("no daemon answering (%s), and state directory %s is not a directory",
		         c->daemon_err, c->cfg.state_dir);
		return -1;
	}
	if (stat(c->db, &sb) != 0) {
		fail_msg("no daemon answering (%s), and no database at %s: %s", c->daemon_err,
		         c->db, strerror(errno));
		return -1;
	}
	err[0] = '\0';
	rc = store_open(&c->st, c->db, STORE_RO, err, sizeof(err));
	if (rc < 0) {
		/* store_open's message names the file already. */
		if (err[0] != '\0')
			fail_msg("no daemon answering (%s), and %s", c->daemon_err, err);
		else
			fail_msg("no daemon answering (%s), and cannot read %s: %s", c->daemon_err,
			         c->db, store_strerror(rc));
		c->st = NULL;
		return -1;
	}
	return 0;
}

/* Appends rendered rows to a JSON array; a failed render stops the walk with -ENOMEM. */
static int append_item(cJSON *arr, cJSON *item)
{
	if (item == NULL)
		return -ENOMEM;
	if (!cJSON_AddItemToArray(arr, item)) {
		cJSON_Delete(item);
		return -ENOMEM;
	}
	return 0;
}

static int session_cb(void *ctx, const struct store_session_row *r)
{
	return append_item(ctx, render_session(r));
}

/*
 * The persisted engine state, loaded once in read-only mode: it holds the running figures
 * of the open activation (render_overlay_live) and the status. NULL when none was saved.
 */
static struct engine_state ro_state_buf;

static const struct engine_state *ro_state(struct ctl *c, int *rc_out)
{
	static int loaded;   /* 0 not yet, 1 loaded, -1 none saved */
	int rc;

	*rc_out = 0;
	if (loaded == 0) {
		rc = store_load_state(c->st, &ro_state_buf);
		if (rc == -ENOENT) {
			engine_state_init(&ro_state_buf);
			loaded = -1;
		} else if (rc < 0) {
			*rc_out = rc;
			return NULL;
		} else {
			loaded = 1;
		}
	}
	return &ro_state_buf;
}

struct act_walk {
	cJSON *arr;
	const struct engine_state *state;
};

static int activation_cb(void *ctx, const struct store_activation_row *r)
{
	struct act_walk *w = ctx;
	struct store_activation_row row = *r;

	(void)render_overlay_live(&row, w->state);
	return append_item(w->arr, render_activation(&row));
}

static int ro_fail(const struct ctl *c, const char *what, int rc)
{
	fail_msg("reading %s from %s: %s", what, c->db, store_strerror(rc));
	return -1;
}

/* The explanation from the database (daemon/explain.h), in the configured zone. */
static cJSON *ro_explain(struct ctl *c, const char *id)
{
	const struct engine_state *es;
	cJSON *out = NULL;
	int rc;

	es = ro_state(c, &rc);
	if (es == NULL) {
		ro_fail(c, "the engine state", rc);
		return NULL;
	}
	rc = explain_build(c->st, id, es, &c->cfg.engine, c->cfg.time_zone, &out);
	if (rc == -ENOENT) {
		fail_msg("no activation \"%s\" in %s", id, c->db);
		return NULL;
	}
	if (rc == -ENOMEM) {
		fail_msg("out of memory");
		return NULL;
	}
	if (rc < 0) {
		ro_fail(c, "the activation", rc);
		return NULL;
	}
	return out;
}

static int counter_cb(void *ctx, const char *name, int64_t value)
{
	return cJSON_AddNumberToObject(ctx, name, (double)value) != NULL ? 0 : -ENOMEM;
}

static int add_time_or_null(cJSON *o, const char *key, bool have, int64_t ms)
{
	char t[EVJSON_TIME_MAX];

	if (!have)
		return cJSON_AddNullToObject(o, key) != NULL ? 0 : -ENOMEM;
	evjson_format_time(ms, t, sizeof(t));
	return cJSON_AddStringToObject(o, key, t) != NULL ? 0 : -ENOMEM;
}

static int add_str_or_null(cJSON *o, const char *key, bool have, const char *s)
{
	if (!have || s == NULL || s[0] == '\0')
		return cJSON_AddNullToObject(o, key) != NULL ? 0 : -ENOMEM;
	return cJSON_AddStringToObject(o, key, s) != NULL ? 0 : -ENOMEM;
}

/*
 * The status object of docs/ipc.md rebuilt from the persisted engine state. What only
 * the running daemon knows (buffered track points, its loop) is null.
 */
static cJSON *ro_status(struct ctl *c)
{
	const struct engine_state *esp;
	char act_id[ENGINE_ACT_ID_MAX];
	const struct engine_activation *open_act = NULL;
	int64_t depth = 0, oldest = 0;
	cJSON *o, *fix, *counters;
	int rc, i;

	esp = ro_state(c, &rc);
	if (esp == NULL) {
		ro_fail(c, "the engine state", rc);
		return NULL;
	}
	if (esp->s.open)
		for (i = esp->s.n_acts - 1; i >= 0 && i < ENGINE_MAX_ACTS; i--)
			if (esp->s.acts[i].status == ACT_OPEN) {
				open_act = &esp->s.acts[i];
				break;
			}
	rc = store_outbox_depth(c->st, &depth, &oldest);
	if (rc < 0) {
		ro_fail(c, "the outbox", rc);
		return NULL;
	}
	o = cJSON_CreateObject();
	if (o == NULL)
		goto oom;
	if (open_act != NULL)
		engine_activation_id(act_id, sizeof(act_id), esp->s.id, open_act->index);
	if (cJSON_AddStringToObject(o, "source", "state_dir") == NULL ||
	    cJSON_AddStringToObject(o, "database", c->db) == NULL ||
	    cJSON_AddStringToObject(o, "daemon_error", c->daemon_err) == NULL ||
	    cJSON_AddNullToObject(o, "version") == NULL ||
	    cJSON_AddStringToObject(o, "device_id", c->cfg.engine.device_id) == NULL ||
	    cJSON_AddBoolToObject(o, "on_cover", esp->s.open) == NULL ||
	    add_str_or_null(o, "session", esp->s.open, esp->s.id) < 0 ||
	    add_time_or_null(o, "session_start", esp->s.open, esp->s.start_ms) < 0 ||
	    add_str_or_null(o, "activation", open_act != NULL, act_id) < 0 ||
	    cJSON_AddBoolToObject(o, "online", esp->online) == NULL ||
	    cJSON_AddBoolToObject(o, "private", esp->private_mode) == NULL ||
	    cJSON_AddBoolToObject(o, "has_policy", esp->has_policy) == NULL ||
	    add_str_or_null(o, "policy_id", esp->has_policy, esp->policy.policy_id) < 0 ||
	    cJSON_AddNumberToObject(o, "jobs_active", esp->jobs_active) == NULL ||
	    render_status_counts(o, esp) < 0 ||
	    cJSON_AddBoolToObject(o, "ignition", esp->ignition_on) == NULL ||
	    add_time_or_null(o, "last_event", esp->started, esp->last_t_ms) < 0)
		goto oom;
	if (esp->have_fix) {
		char t[EVJSON_TIME_MAX];

		fix = cJSON_AddObjectToObject(o, "last_fix");
		evjson_format_time(esp->last_fix_ms, t, sizeof(t));
		if (fix == NULL || cJSON_AddStringToObject(fix, "t", t) == NULL ||
		    cJSON_AddNumberToObject(fix, "lat", esp->last_fix.lat) == NULL ||
		    cJSON_AddNumberToObject(fix, "lon", esp->last_fix.lon) == NULL ||
		    (isfinite(esp->last_fix.speed_mps)
		         ? cJSON_AddNumberToObject(fix, "speed", esp->last_fix.speed_mps)
		         : cJSON_AddNullToObject(fix, "speed")) == NULL ||
		    cJSON_AddNumberToObject(fix, "mode", esp->last_fix.mode) == NULL)
			goto oom;
	} else if (cJSON_AddNullToObject(o, "last_fix") == NULL) {
		goto oom;
	}
	if (cJSON_AddNullToObject(o, "track_pending") == NULL ||
	    cJSON_AddNumberToObject(o, "outbox_depth", (double)depth) == NULL ||
	    add_time_or_null(o, "outbox_oldest", oldest != 0, oldest) < 0 ||
	    cJSON_AddNumberToObject(o, "sessions_total", (double)esp->sessions_total) == NULL)
		goto oom;
	counters = cJSON_AddObjectToObject(o, "counters");
	if (counters == NULL)
		goto oom;
	rc = store_counters(c->st, counter_cb, counters);
	if (rc < 0) {
		cJSON_Delete(o);
		ro_fail(c, "the counters", rc);
		return NULL;
	}
	return o;
oom:
	cJSON_Delete(o);
	fail_msg("out of memory");
	return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Commands. */

static cJSON *request(const char *cmd)
{
	cJSON *r = cJSON_CreateObject();

	if (r == NULL || cJSON_AddStringToObject(r, "cmd", cmd) == NULL) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}

/*
 * Runs a read query against the daemon. Returns its detached result (caller frees), or
 * NULL either when it failed (message printed, c->st stays NULL) or when no daemon
 * answered and the database is open read-only in c->st for the caller to read instead.
 */
static cJSON *read_query(struct ctl *c, cJSON *req, const char *key)
{
	cJSON *out = NULL;
	int rc;

	if (req == NULL) {
		fail_msg("out of memory");
		return NULL;
	}
	rc = daemon_query(c, req, key, &out);
	if (rc > 0)
		return out;
	if (rc == 0)
		(void)ro_open(c);   /* prints why when it fails; c->st then stays NULL */
	return NULL;
}

static int cmd_sessions(struct ctl *c)
{
	static const char *const hdr[] = { "ID", "START", "END", "DURATION", "TRIGGER",
	                                   "END REASON", "POLICY", "DRIVER", "VEHICLE", "ACTS" };
	static const char *const cols[] = { "id", "open", "start", "end", "duration_s",
	                                    "trigger", "end_reason", "policy_id", "driver_id",
	                                    "vehicle_id", "activations" };
	cJSON *req = request("sessions");
	cJSON *arr = read_query(c, req, "sessions");
	struct table t = { .ncols = 10, .hdr = hdr, .right = 1u << 9 };
	const cJSON *s;
	int rc = EXIT_OK;

	cJSON_Delete(req);
	if (arr == NULL) {
		if (c->st == NULL)
			return EXIT_FAIL;
		arr = cJSON_CreateArray();
		if (arr == NULL) {
			fail_msg("out of memory");
			return EXIT_FAIL;
		}
		int src = store_sessions(c->st, session_cb, arr);
		if (src < 0) {
			cJSON_Delete(arr);
			ro_fail(c, "sessions", src);
			return EXIT_FAIL;
		}
	}
	if (!cJSON_IsArray(arr)) {
		fail_msg("daemon at %s: \"sessions\" is not an array", c->sock);
		cJSON_Delete(arr);
		return EXIT_FAIL;
	}
	if (c->fmt == FMT_JSON) {
		print_json(arr);
	} else if (c->fmt == FMT_CSV) {
		csv_print(stdout, arr, cols, sizeof(cols) / sizeof(cols[0]));
	} else if (cJSON_GetArraySize(arr) == 0) {
		puts("No sessions recorded.");
	} else {
		cJSON_ArrayForEach(s, arr) {
			char dur[32], acts[16];
			double n;
			const char *row[10];

			fmt_span(dur, sizeof(dur), s, "start", "end");
			if (jnum(s, "activations", &n))
				snprintf(acts, sizeof(acts), "%.0f", n);
			else
				snprintf(acts, sizeof(acts), "-");
			row[0] = or_dash(jstr(s, "id"));
			row[1] = or_dash(jstr(s, "start"));
			row[2] = jstr(s, "end") != NULL ? jstr(s, "end") : "open";
			row[3] = dur;
			row[4] = or_dash(jstr(s, "trigger"));
			row[5] = or_dash(jstr(s, "end_reason"));
			row[6] = or_dash(jstr(s, "policy_id"));
			row[7] = or_dash(jstr(s, "driver_id"));
			row[8] = or_dash(jstr(s, "vehicle_id"));
			row[9] = acts;
			if (table_add(&t, row) < 0) {
				fail_msg("out of memory");
				rc = EXIT_FAIL;
				break;
			}
		}
		if (rc == EXIT_OK)
			table_print(&t, stdout);
		table_free(&t);
	}
	cJSON_Delete(arr);
	return rc;
}

static int cmd_activations(struct ctl *c)
{
	static const char *const hdr[] = { "ID", "SESSION", "IDX", "START", "END", "DURATION",
	                                   "END REASON", "DISTANCE km", "JOBS", "STATUS" };
	static const char *const cols[] = {
		"id", "session_id", "index", "revision", "status", "start", "end", "end_reason",
		"distance_m", "moving_s", "jobs", "policy_id", "driver_id", "vehicle_id",
		"time_quality", "anomalies", "open_rule", "close_rule", "open_event_id",
		"close_event_id",
	};
	cJSON *req = request("activations");
	cJSON *arr;
	struct table t = { .ncols = 10, .hdr = hdr,
	                   .right = (1u << 2) | (1u << 5) | (1u << 7) | (1u << 8) };
	const cJSON *a;
	int rc = EXIT_OK;

	if (req != NULL && c->session != NULL &&
	    cJSON_AddStringToObject(req, "session", c->session) == NULL) {
		cJSON_Delete(req);
		req = NULL;
	}
	arr = read_query(c, req, "activations");
	cJSON_Delete(req);
	if (arr == NULL) {
		if (c->st == NULL)
			return EXIT_FAIL;
		arr = cJSON_CreateArray();
		if (arr == NULL) {
			fail_msg("out of memory");
			return EXIT_FAIL;
		}
		struct act_walk w = { .arr = arr };
		int src;

		w.state = ro_state(c, &src);
		if (w.state == NULL) {
			cJSON_Delete(arr);
			ro_fail(c, "the engine state", src);
			return EXIT_FAIL;
		}
		src = store_activations(c->st, c->session, activation_cb, &w);
		if (src < 0) {
			cJSON_Delete(arr);
			ro_fail(c, "activations", src);
			return EXIT_FAIL;
		}
	}
	if (!cJSON_IsArray(arr)) {
		fail_msg("daemon at %s: \"activations\" is not an array", c->sock);
		cJSON_Delete(arr);
		return EXIT_FAIL;
	}
	if (c->fmt == FMT_JSON) {
		print_json(arr);
	} else if (c->fmt == FMT_CSV) {
		csv_print(stdout, arr, cols, sizeof(cols) / sizeof(cols[0]));
	} else if (cJSON_GetArraySize(arr) == 0) {
		if (c->session != NULL)
			printf("No activations recorded for session %s.\n", c->session);
		else
			puts("No activations recorded.");
	} else {
		cJSON_ArrayForEach(a, arr) {
			char idx[16], dur[32], dist[32], jobs[16];
			const char *row[10];
			double n;

			if (jnum(a, "index", &n))
				snprintf(idx, sizeof(idx), "%.0f", n);
			else
				snprintf(idx, sizeof(idx), "-");
			fmt_span(dur, sizeof(dur), a, "start", "end");
			if (jnum(a, "distance_m", &n))
				snprintf(dist, sizeof(dist), "%.2f", n / 1000.0);
			else
				snprintf(dist, sizeof(dist), "-");
			if (jnum(a, "jobs", &n))
				snprintf(jobs, sizeof(jobs), "%.0f", n);
			else
				snprintf(jobs, sizeof(jobs), "-");
			row[0] = or_dash(jstr(a, "id"));
			row[1] = or_dash(jstr(a, "session_id"));
			row[2] = idx;
			row[3] = or_dash(jstr(a, "start"));
			row[4] = jstr(a, "end") != NULL ? jstr(a, "end") : "open";
			row[5] = dur;
			row[6] = or_dash(jstr(a, "end_reason"));
			row[7] = dist;
			row[8] = jobs;
			row[9] = or_dash(jstr(a, "status"));
			if (table_add(&t, row) < 0) {
				fail_msg("out of memory");
				rc = EXIT_FAIL;
				break;
			}
		}
		if (rc == EXIT_OK)
			table_print(&t, stdout);
		table_free(&t);
	}
	cJSON_Delete(arr);
	return rc;
}

static void kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-14s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int cmd_status(struct ctl *c)
{
	cJSON *req = request("status");
	cJSON *st = read_query(c, req, "status");
	const cJSON *fix, *counters, *e, *mq, *gnss, *jev;
	double n;

	cJSON_Delete(req);
	if (st == NULL) {
		if (c->st == NULL)
			return EXIT_FAIL;
		st = ro_status(c);
		if (st == NULL)
			return EXIT_FAIL;
	} else if (!cJSON_IsObject(st)) {
		fail_msg("daemon at %s: \"status\" is not an object", c->sock);
		cJSON_Delete(st);
		return EXIT_FAIL;
	} else if (cJSON_GetObjectItemCaseSensitive(st, "source") == NULL &&
	           cJSON_AddStringToObject(st, "source", "daemon") == NULL) {
		cJSON_Delete(st);
		fail_msg("out of memory");
		return EXIT_FAIL;
	}
	if (c->fmt == FMT_JSON) {
		print_json(st);
		cJSON_Delete(st);
		return EXIT_OK;
	}
	if (c->from_daemon)
		kv("Source", "daemon at %s", c->sock);
	else
		kv("Source", "%s read-only (no daemon: %s)", c->db, c->daemon_err);
	if (jstr(st, "version") != NULL)
		kv("Version", "%s", jstr(st, "version"));
	kv("Device", "%s", or_dash(jstr(st, "device_id")));
	if (jbool(st, "on_cover") == 1)
		kv("On cover", "yes, since %s", or_dash(jstr(st, "session_start")));
	else
		kv("On cover", "%s", yes_no(jbool(st, "on_cover")));
	kv("Session", "%s", or_dash(jstr(st, "session")));
	kv("Activation", "%s", or_dash(jstr(st, "activation")));
	kv("Online", "%s", yes_no(jbool(st, "online")));
	kv("Private mode", "%s", yes_no(jbool(st, "private")));
	if (jbool(st, "has_policy") == 1)
		kv("Policy", "%s", or_dash(jstr(st, "policy_id")));
	else
		kv("Policy", "none");
	if (jnum(st, "jobs_active", &n))
		kv("Jobs active", "%.0f", n);
	gnss = cJSON_GetObjectItemCaseSensitive(st, "gnss_fixes");
	if (cJSON_IsObject(gnss)) {
		const cJSON *rej = cJSON_GetObjectItemCaseSensitive(gnss, "rejected");
		double acc = 0, nofix = 0, eph = 0, bad = 0, ooo = 0, mov = 0;
		char mv[32];

		(void)jnum(gnss, "accepted", &acc);
		(void)jnum(rej, "no_fix", &nofix);
		(void)jnum(rej, "eph", &eph);
		(void)jnum(rej, "bad_value", &bad);
		(void)jnum(rej, "out_of_order", &ooo);
		(void)jnum(gnss, "moving_s", &mov);
		kv("GNSS fixes", "%.0f accepted, %.0f rejected", acc, nofix + eph + bad + ooo);
		kv("", "rejected: %.0f no fix, %.0f error too large or unknown, %.0f bad value, "
		   "%.0f out of order", nofix, eph, bad, ooo);
		fmt_hms(mv, sizeof(mv), isfinite(mov) && mov > 0 ? (int64_t)(mov * 1000.0) : 0);
		kv("Moving time", "%s", mv);
	}
	jev = cJSON_GetObjectItemCaseSensitive(st, "job_events");
	if (cJSON_IsObject(jev)) {
		double dup = 0, ign = 0, tmo = 0;

		(void)jnum(jev, "duplicate", &dup);
		(void)jnum(jev, "ignored", &ign);
		(void)jnum(jev, "timed_out", &tmo);
		kv("Job events", "%.0f duplicate, %.0f ignored (offline or private), %.0f timed out",
		   dup, ign, tmo);
	}
	fix = cJSON_GetObjectItemCaseSensitive(st, "last_fix");
	if (cJSON_IsObject(fix)) {
		double lat = NAN, lon = NAN, spd = NAN;

		(void)jnum(fix, "lat", &lat);
		(void)jnum(fix, "lon", &lon);
		if (jnum(fix, "speed", &spd))
			kv("Last fix", "%s  %.6f, %.6f  %.1f m/s", or_dash(jstr(fix, "t")), lat, lon,
			   spd);
		else
			kv("Last fix", "%s  %.6f, %.6f", or_dash(jstr(fix, "t")), lat, lon);
	} else {
		kv("Last fix", "none");
	}
	if (jnum(st, "track_pending", &n))
		kv("Track pending", "%.0f points", n);
	if (jnum(st, "outbox_depth", &n)) {
		if (jstr(st, "outbox_oldest") != NULL)
			kv("Outbox", "%.0f undelivered, oldest %s", n, jstr(st, "outbox_oldest"));
		else
			kv("Outbox", "%.0f undelivered", n);
	}
	mq = cJSON_GetObjectItemCaseSensitive(st, "mqtt");
	if (cJSON_IsObject(mq)) {
		double up = 0, fl = 0, dropped = 0;

		kv("MQTT", "%s, %s%s", or_dash(jstr(mq, "state")), or_dash(jstr(mq, "broker")),
		   jbool(mq, "tls") == 0 ? " (PLAINTEXT)" : "");
		(void)jnum(mq, "acked_upto", &up);
		(void)jnum(mq, "in_flight", &fl);
		kv("Delivery", "acknowledged up to seq %.0f, %.0f in flight", up, fl);
		(void)jnum(mq, "track_dropped", &dropped);
		if (jbool(mq, "outbox_full") == 1)
			kv("Outbox full", "yes: bound reached, track detail dropped (%.0f points); "
			   "billing records kept", dropped);
		if (jstr(mq, "last_error") != NULL)
			kv("Last error", "%s", jstr(mq, "last_error"));
	}
	counters = cJSON_GetObjectItemCaseSensitive(st, "counters");
	if (cJSON_IsObject(counters) && counters->child != NULL) {
		bool first = true;

		cJSON_ArrayForEach(e, counters) {
			if (!cJSON_IsNumber(e))
				continue;
			printf("%-14s %s = %.0f\n", first ? "Counters" : "", e->string, e->valuedouble);
			first = false;
		}
	} else {
		kv("Counters", "none");
	}
	cJSON_Delete(st);
	return EXIT_OK;
}

/*
 * Whether a line may break at p: at a space, but not inside a figure and its unit ("10
 * minutes", "12:52 CET (11:52 UTC)"), so a time never splits across lines.
 */
static bool breakable(const char *text, const char *p)
{
	if (*p != ' ')
		return false;
	if (p > text && isdigit((unsigned char)p[-1]))
		return false;
	return !(p[1] == '(' && isdigit((unsigned char)p[2]));
}

/*
 * Prints text wrapped at width columns, each line indented; with beside set, the first
 * line goes after what is already printed on the line (a label one column narrower than
 * the indent).
 */
static void print_wrapped(const char *text, int width, int indent, int beside)
{
	const char *p = text;

	while (*p != '\0') {
		const char *end = p, *brk = NULL;
		int col = indent;

		while (*end != '\0' && (col < width || brk == NULL)) {
			if (breakable(text, end))
				brk = end;
			end++;
			col++;
		}
		if (*end == '\0')
			brk = end;
		printf("%*s%.*s\n", beside ? 1 : indent, "", (int)(brk - p), p);
		beside = 0;
		p = brk;
		while (*p == ' ')
			p++;
	}
}

/*
 * The explanation is made where the records are (daemon/explain.c), so the daemon and the
 * database give the same words; the table prints its lines, the label in a column and the
 * text wrapped beside it.
 */
static int cmd_explain(struct ctl *c, const char *id)
{
	cJSON *req = request("explain");
	cJSON *ex;
	const cJSON *lines, *l;

	if (req != NULL && cJSON_AddStringToObject(req, "id", id) == NULL) {
		cJSON_Delete(req);
		req = NULL;
	}
	ex = read_query(c, req, "explain");
	cJSON_Delete(req);
	if (ex == NULL) {
		if (c->st == NULL)
			return EXIT_FAIL;
		ex = ro_explain(c, id);
		if (ex == NULL)
			return EXIT_FAIL;
	}
	lines = cJSON_GetObjectItemCaseSensitive(ex, "lines");
	if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ex, "activation")) ||
	    !cJSON_IsArray(lines)) {
		fail_msg("daemon at %s: explain reply has no activation or lines", c->sock);
		cJSON_Delete(ex);
		return EXIT_FAIL;
	}
	if (c->fmt == FMT_JSON) {
		print_json(ex);
		cJSON_Delete(ex);
		return EXIT_OK;
	}
	cJSON_ArrayForEach(l, lines) {
		const char *label = jstr(l, "label"), *text = jstr(l, "text");

		if (label == NULL || text == NULL)
			continue;
		printf("%-12s", label);
		if (text[0] == '\0') {
			putchar('\n');
			continue;
		}
		/* The first line of text goes beside the label, the rest under it. */
		print_wrapped(text, 78, 13, 1);
	}
	cJSON_Delete(ex);
	return EXIT_OK;
}

static int cmd_health(struct ctl *c)
{
	cJSON *req = request("health");
	cJSON *h = NULL, *reasons;
	const cJSON *r;
	int rc, healthy;
	double n;

	if (req == NULL) {
		fail_msg("out of memory");
		return EXIT_FAIL;
	}
	rc = daemon_query(c, req, "health", &h);
	cJSON_Delete(req);
	if (rc < 0)
		return EXIT_FAIL;
	if (rc == 0) {
		/*
		 * No daemon: the loop is not alive, so the answer is "unhealthy" whatever the
		 * database says; the database is still checked so the reasons are complete.
		 */
		char err[ERR_BUF], why[ERR_BUF + 64];
		struct store *st = NULL;
		bool db_ok = false;

		h = cJSON_CreateObject();
		reasons = h != NULL ? cJSON_AddArrayToObject(h, "reasons") : NULL;
		if (reasons == NULL) {
			cJSON_Delete(h);
			fail_msg("out of memory");
			return EXIT_FAIL;
		}
		snprintf(why, sizeof(why), "loop not alive: %s", c->daemon_err);
		(void)append_item(reasons, cJSON_CreateString(why));
		err[0] = '\0';
		rc = store_open(&st, c->db, STORE_RO, err, sizeof(err));
		if (rc == 0) {
			rc = store_ping(st);
			if (rc == 0)
				db_ok = true;
			else
				snprintf(err, sizeof(err), "%s: query failed: %s", c->db,
				         store_strerror(rc));
			store_close(st);
		}
		if (!db_ok) {
			snprintf(why, sizeof(why), "database: %s",
			         err[0] != '\0' ? err : store_strerror(rc));
			(void)append_item(reasons, cJSON_CreateString(why));
		}
		if (cJSON_AddBoolToObject(h, "healthy", false) == NULL ||
		    cJSON_AddBoolToObject(h, "db", db_ok) == NULL ||
		    cJSON_AddNullToObject(h, "loop_age_ms") == NULL ||
		    cJSON_AddNullToObject(h, "fix_age_ms") == NULL) {
			cJSON_Delete(h);
			fail_msg("out of memory");
			return EXIT_FAIL;
		}
	}
	healthy = jbool(h, "healthy");
	if (c->fmt == FMT_JSON) {
		print_json(h);
	} else {
		printf("%s\n", healthy == 1 ? "healthy" : "unhealthy");
		printf("  database   %s\n", jbool(h, "db") == 1 ? "ok" : "not answering");
		if (jnum(h, "loop_age_ms", &n))
			printf("  loop       last iteration %.0f ms ago\n", n);
		else
			printf("  loop       not alive\n");
		if (jnum(h, "fix_age_ms", &n))
			printf("  last fix   %.1f s ago\n", n / 1000.0);
		else
			printf("  last fix   none\n");
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(h, "reasons")) {
			if (cJSON_IsString(r))
				printf("  reason     %s\n", r->valuestring);
		}
	}
	cJSON_Delete(h);
	return healthy == 1 ? EXIT_OK : EXIT_FAIL;
}

static void valid_event_names(char *buf, size_t len)
{
	size_t used = 0;
	int e;

	buf[0] = '\0';
	for (e = APP_ONLINE; e <= APP_PRIVATE_OFF; e++) {
		int n = snprintf(buf + used, len - used, "%s%s", e == APP_ONLINE ? "" : ", ",
		                 engine_app_event_name((enum engine_app_event)e));

		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

#define EVENT_RETRIES 5   /* attempts of an event with --id before giving up */

static int cmd_event(struct ctl *c, const char *name)
{
	cJSON *req, *reply = NULL;
	enum engine_app_event ev;
	char err[ERR_BUF];
	const cJSON *v;
	int rc;

	if (engine_app_event_parse(name, &ev) < 0) {
		char names[256];

		valid_event_names(names, sizeof(names));
		usage_error("unknown event \"%s\"; valid events: %s", name, names);
		return EXIT_USAGE;
	}
	req = cJSON_CreateObject();
	if (req == NULL || cJSON_AddStringToObject(req, "type", "app") == NULL ||
	    cJSON_AddStringToObject(req, "event", name) == NULL ||
	    (c->job_id != NULL && cJSON_AddStringToObject(req, "job_id", c->job_id) == NULL) ||
	    (c->req_id != NULL && cJSON_AddStringToObject(req, "id", c->req_id) == NULL)) {
		cJSON_Delete(req);
		fail_msg("out of memory");
		return EXIT_FAIL;
	}
	/* With an id the request is idempotent (docs/ipc.md, Retries): when no reply came
	 * (the daemon restarting, a timeout), ask again with the same id; the daemon applies
	 * it at most once and answers a repeat with the original reply. */
	for (int attempt = 1;; attempt++) {
		rc = ipc_call(c, req, &reply, err, sizeof(err));
		if (rc >= 0 || c->req_id == NULL || attempt >= EVENT_RETRIES)
			break;
		fprintf(stderr, "coverctl: no reply to event %s (%s); retrying with id %s\n", name,
		        err, c->req_id);
		struct timespec ts = { 0, 500 * 1000 * 1000 };
		(void)nanosleep(&ts, NULL);
	}
	cJSON_Delete(req);
	if (rc < 0) {
		fail_msg("event %s needs a running daemon: %s", name, err);
		return EXIT_FAIL;
	}
	if (c->fmt == FMT_JSON)
		print_json(reply);
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		const char *e = jstr(reply, "error");

		fail_msg("daemon at %s refused event %s: %s", c->sock, name,
		         e != NULL ? e : "no reason given");
		cJSON_Delete(reply);
		return EXIT_FAIL;
	}
	v = cJSON_GetObjectItemCaseSensitive(reply, "event_id");
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "accepted"))) {
		const char *why = jstr(reply, "reason");

		fail_msg("event %s was journaled%s%.0f but rejected: %s", name,
		         cJSON_IsNumber(v) ? " as #" : "", cJSON_IsNumber(v) ? v->valuedouble : 0.0,
		         why != NULL ? why : "no reason given");
		cJSON_Delete(reply);
		return EXIT_FAIL;
	}
	if (c->fmt != FMT_JSON) {
		if (cJSON_IsNumber(v))
			printf("event %s accepted (journal event #%.0f)\n", name, v->valuedouble);
		else
			printf("event %s accepted\n", name);
	}
	cJSON_Delete(reply);
	return EXIT_OK;
}

static int cmd_version(struct ctl *c)
{
	cJSON *req = request("status");
	cJSON *reply = NULL, *st;
	char err[ERR_BUF];
	const char *dv = NULL;
	int rc = -ENOMEM;

	if (req != NULL)
		rc = ipc_call(c, req, &reply, err, sizeof(err));
	cJSON_Delete(req);
	st = rc == 0 ? cJSON_GetObjectItemCaseSensitive(reply, "status") : NULL;
	dv = jstr(st, "version");
	if (c->fmt == FMT_JSON) {
		cJSON *o = cJSON_CreateObject();

		if (o == NULL || cJSON_AddStringToObject(o, "coverctl", COVERD_VERSION) == NULL ||
		    cJSON_AddNumberToObject(o, "schema", STORE_SCHEMA_VERSION) == NULL ||
		    (dv != NULL ? cJSON_AddStringToObject(o, "coverd", dv)
		                : cJSON_AddNullToObject(o, "coverd")) == NULL) {
			cJSON_Delete(o);
			cJSON_Delete(reply);
			fail_msg("out of memory");
			return EXIT_FAIL;
		}
		print_json(o);
		cJSON_Delete(o);
	} else {
		printf("coverctl %s (database schema %d)\n", COVERD_VERSION, STORE_SCHEMA_VERSION);
		if (dv != NULL)
			printf("coverd %s at %s\n", dv, c->sock);
		else if (rc < 0)
			printf("coverd: no daemon answering (%s)\n", err);
	}
	cJSON_Delete(reply);
	return EXIT_OK;
}

/*
 * `coverctl key --public`: the public half of the device's signing key, for enrolment.
 * The key is only read, never created: coverd creates it (0600, as its own user) at its
 * first start with delivery enabled, and a key made here could belong to the wrong user.
 */
static int cmd_key(struct ctl *c, const char *keyfile)
{
	char path[PATH_BUF], err[ERR_BUF], pem[SIGN_PUBLIC_PEM_MAX];
	struct sign_key *k = NULL;
	int rc;

	if (keyfile != NULL)
		snprintf(path, sizeof(path), "%s", keyfile);
	else if (c->cfg.signing_key_file[0] != '\0')
		snprintf(path, sizeof(path), "%s", c->cfg.signing_key_file);
	else
		snprintf(path, sizeof(path), "%.*s/%s", CONFIG_PATH_MAX, c->cfg.state_dir,
		         COVERD_KEY_NAME);
	rc = sign_key_load(path, &k, err, sizeof(err));
	if (rc == -ENOENT) {
		fail_msg("no signing key at %s yet: coverd creates it at its first start with "
		         "[mqtt] enabled = yes", path);
		return EXIT_FAIL;
	}
	if (rc != 0) {
		fail_msg("%s", err);
		return EXIT_FAIL;
	}
	rc = sign_public_pem(k, pem, sizeof(pem));
	sign_key_free(k);
	if (rc != 0) {
		fail_msg("%s: cannot write the public key: %s", path, sign_strerror(rc));
		return EXIT_FAIL;
	}
	fputs(pem, stdout);
	return EXIT_OK;
}

/* ------------------------------------------------------------------------------------ */

enum cmd_id { C_STATUS, C_SESSIONS, C_ACTIVATIONS, C_EVENT, C_EXPLAIN, C_HEALTH, C_VERSION,
	      C_KEY, C_HELP };

static const struct {
	const char *name;
	enum cmd_id id;
	int nargs;      /* positional arguments after the command */
	bool csv;       /* --csv applies */
} commands[] = {
	{ "status", C_STATUS, 0, false },
	{ "sessions", C_SESSIONS, 0, true },
	{ "activations", C_ACTIVATIONS, 0, true },
	{ "event", C_EVENT, 1, false },
	{ "explain", C_EXPLAIN, 1, false },
	{ "health", C_HEALTH, 0, false },
	{ "version", C_VERSION, 0, false },
	{ "key", C_KEY, 0, false },
	{ "help", C_HELP, 0, false },
};

/* Loads the configuration: -c must load; the default file is used when it exists. */
static int load_config(struct ctl *c, const char *path)
{
	char err[ERR_BUF];
	bool explicit_path = path != NULL;
	int rc;

	config_defaults(&c->cfg);
	if (path == NULL) {
		if (access(COVERD_DEFAULT_CONFIG, F_OK) != 0)
			return 0;
		path = COVERD_DEFAULT_CONFIG;
	}
	err[0] = '\0';
	rc = config_load(&c->cfg, path, err, sizeof(err));
	if (rc == 0)
		return 0;
	if (explicit_path) {
		/* config_load's message already names the file, line and key. */
		if (err[0] != '\0')
			fail_msg("%s", err);
		else
			fail_msg("config %s: %s", path, strerror(-rc));
		return -1;
	}
	/* The default file may be readable only by the daemon's group; defaults still let
	 * --state-dir and --socket work, so carry on after saying so. */
	fprintf(stderr, "coverctl: warning: %s; using built-in defaults\n",
	        err[0] != '\0' ? err : strerror(-rc));
	config_defaults(&c->cfg);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "session", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "public", no_argument, NULL, 'P' },
		{ "key", required_argument, NULL, 'K' },
		{ "job-id", required_argument, NULL, 'J' },
		{ "id", required_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ctl ctl;   /* static: the configuration holds several path buffers */
	struct ctl *c = &ctl;
	const char *opt_socket = NULL, *opt_state = NULL, *opt_config = NULL, *opt_key = NULL;
	bool opt_public = false;
	const char *cmdname;
	bool json = false, csv = false;
	size_t i, ncmd = sizeof(commands) / sizeof(commands[0]);
	int opt, nargs, rc = EXIT_OK;
	enum cmd_id cmd = C_HELP;
	bool found = false;

	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': opt_socket = optarg; break;
		case 'S': opt_state = optarg; break;
		case 'c': opt_config = optarg; break;
		case 'i': c->session = optarg; break;
		case 'j': json = true; break;
		case 'v': csv = true; break;
		case 'P': opt_public = true; break;
		case 'K': opt_key = optarg; break;
		case 'J': c->job_id = optarg; break;
		case 'I': c->req_id = optarg; break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		case 'V':
			printf("coverctl %s\n", COVERD_VERSION);
			return EXIT_OK;
		case 'T': {
			char *end;
			double s;

			errno = 0;
			s = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(s > 0) || s > 3600) {
				usage_error("--timeout: \"%s\" is not a number of seconds in (0, 3600]",
				            optarg);
				return EXIT_USAGE;
			}
			c->timeout_ms = (int)ceil(s * 1000.0);
			break;
		}
		case ':':
			usage_error("option %s needs an argument", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			usage_error("unknown option %s", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_error("no command given");
		return EXIT_USAGE;
	}
	cmdname = argv[optind++];
	for (i = 0; i < ncmd; i++)
		if (strcmp(commands[i].name, cmdname) == 0) {
			cmd = commands[i].id;
			found = true;
			break;
		}
	if (!found) {
		usage_error("unknown command \"%s\"", cmdname);
		return EXIT_USAGE;
	}
	nargs = argc - optind;
	if (nargs != commands[i].nargs) {
		if (commands[i].nargs == 0)
			usage_error("%s takes no arguments (got \"%s\")", cmdname, argv[optind]);
		else
			usage_error("%s needs exactly one argument: %s", cmdname,
			            cmd == C_EVENT ? "NAME" : "ACTIVATION_ID");
		return EXIT_USAGE;
	}
	if ((c->job_id != NULL || c->req_id != NULL) && cmd != C_EVENT) {
		usage_error("--job-id and --id go with the event command only");
		return EXIT_USAGE;
	}
	if (json && csv) {
		usage_error("--json and --csv exclude each other");
		return EXIT_USAGE;
	}
	if (csv && !commands[i].csv) {
		usage_error("--csv applies to sessions and activations only");
		return EXIT_USAGE;
	}
	if (c->session != NULL && cmd != C_ACTIVATIONS) {
		usage_error("--session applies to activations only");
		return EXIT_USAGE;
	}
	if ((opt_public || opt_key != NULL) && cmd != C_KEY) {
		usage_error("--public and --key apply to key only");
		return EXIT_USAGE;
	}
	if (cmd == C_KEY && (!opt_public || json)) {
		usage_error("key: say --public (the private key is never printed)%s",
		            json ? "; --json does not apply" : "");
		return EXIT_USAGE;
	}
	c->fmt = json ? FMT_JSON : csv ? FMT_CSV : FMT_TABLE;
	if (cmd == C_HELP) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}

	if (load_config(c, opt_config) < 0)
		return EXIT_FAIL;
	if (opt_state != NULL) {
		if (strlen(opt_state) >= sizeof(c->cfg.state_dir)) {
			usage_error("--state-dir: path is longer than %zu bytes",
			            sizeof(c->cfg.state_dir) - 1);
			return EXIT_USAGE;
		}
		snprintf(c->cfg.state_dir, sizeof(c->cfg.state_dir), "%s", opt_state);
	}
	if (opt_socket != NULL) {
		if (strlen(opt_socket) >= sizeof(c->sock)) {
			usage_error("--socket: path is too long");
			return EXIT_USAGE;
		}
		snprintf(c->sock, sizeof(c->sock), "%s", opt_socket);
	} else {
		config_socket_path(&c->cfg, c->sock, sizeof(c->sock));
	}
	/* The precision tells the compiler the bound the config struct already guarantees. */
	snprintf(c->db, sizeof(c->db), "%.*s/%s", CONFIG_PATH_MAX, c->cfg.state_dir,
	         COVERD_DB_NAME);

	switch (cmd) {
	case C_STATUS: rc = cmd_status(c); break;
	case C_SESSIONS: rc = cmd_sessions(c); break;
	case C_ACTIVATIONS: rc = cmd_activations(c); break;
	case C_EVENT: rc = cmd_event(c, argv[optind]); break;
	case C_EXPLAIN: rc = cmd_explain(c, argv[optind]); break;
	case C_HEALTH: rc = cmd_health(c); break;
	case C_VERSION: rc = cmd_version(c); break;
	case C_KEY: rc = cmd_key(c, opt_key); break;
	case C_HELP: break;
	}
	if (c->st != NULL)
		store_close(c->st);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fail_msg("writing to standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}
