/*
 * ipc.c - the local socket server.
 *
 * Requests are dispatched on their first field of interest: an object with "cmd" is a
 * query, anything else is an event for evjson_parse(), whose error messages name the
 * offending field. Replies are built straight into the client's output buffer; list
 * replies are written row by row, so a long history never exists twice in memory (once
 * as a cJSON tree and once as text).
 *
 * Events are stamped here with the daemon's receipt time (the app's "t" is only its
 * label, compared against [ipc] max_app_skew), and an event with a request "id" is looked
 * up in the store's retry window first: a retry is answered with the reply recorded with
 * the first attempt, in that attempt's transaction (docs/ipc.md, "Time", "Retries").
 */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "evjson.h"
#include "explain.h"
#include "log.h"
#include "render.h"

#define ACCEPTS_PER_CALL 16
#define OUT_INITIAL 4096
#define IPC_SKEW_LOG_MS 60000   /* at most one app-clock line a minute */

_Static_assert(EVJSON_ID_MAX - 1 == STORE_REQ_ID_MAX,
               "a request id evjson accepts must fit the store's retry window");

struct client {
	struct ipc *ipc;
	int fd;
	char in[IPC_LINE_MAX + 1];      /* + 1 for the NUL after a last unterminated line */
	size_t in_off, in_len;          /* unread bytes are in[in_off, in_off + in_len) */
	bool discarding;                /* inside an oversized request, up to its newline */
	bool eof;                       /* the peer will send no more */
	bool broken;                    /* no reply could be built: close at the next chance */
	char *out;
	size_t out_off, out_len, out_cap;
	int64_t progress_ms;            /* last time output moved, while output is pending */
	unsigned events;                /* current loop interest */
};

struct ipc {
	struct core *core;
	struct loop *loop;
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	struct client *clients[IPC_MAX_CLIENTS];
	struct loop_timer sweep;
	void (*status_hook)(void *ctx, cJSON *status);
	void *status_ctx;
	bool skew_logged;               /* an app-clock line was logged, at skew_logged_ms */
	int64_t skew_logged_ms;
	uint64_t skew_unlogged;         /* skewed app times seen since */
	char kill_id[EVJSON_ID_MAX];    /* the test hook's request id, "" when off */
};

static void client_close(struct client *cl, const char *why);
static void client_pump(struct client *cl);

/* ---------------------------------------------------------------- output */

static size_t out_pending(const struct client *cl)
{
	return cl->out_len - cl->out_off;
}

/* Appends bytes to the client's output; -ENOSPC past IPC_OUT_MAX, -ENOMEM. */
static int out_append(struct client *cl, const char *s, size_t n)
{
	/* Sent bytes are dropped from the front before the buffer grows. */
	if (cl->out_off > 0 && cl->out_len + n > cl->out_cap) {
		memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
		cl->out_len -= cl->out_off;
		cl->out_off = 0;
	}
	if (cl->out_len - cl->out_off + n > IPC_OUT_MAX)
		return -ENOSPC;
	if (cl->out_len + n > cl->out_cap) {
		size_t cap = cl->out_cap > 0 ? cl->out_cap : OUT_INITIAL;
		while (cap < cl->out_len + n)
			cap *= 2;
		if (cap > IPC_OUT_MAX)
			cap = IPC_OUT_MAX;
		char *p = realloc(cl->out, cap);
		if (p == NULL)
			return -ENOMEM;
		cl->out = p;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, s, n);
	cl->out_len += n;
	return 0;
}

static int out_str(struct client *cl, const char *s)
{
	return out_append(cl, s, strlen(s));
}

/* Appends a cJSON item as compact JSON. */
static int out_json(struct client *cl, const cJSON *j)
{
	if (j == NULL)
		return -ENOMEM;
	char *s = cJSON_PrintUnformatted(j);
	if (s == NULL)
		return -ENOMEM;
	int r = out_str(cl, s);
	cJSON_free(s);
	return r;
}

/*
 * Replaces whatever part of a reply was built since mark by a one-line error. A mark is
 * the number of pending bytes when the reply began (out_pending), which stays valid when
 * out_append moves the pending bytes to the front of the buffer.
 */
static void reply_error_at(struct client *cl, size_t mark, const char *msg)
{
	if (out_pending(cl) >= mark)
		cl->out_len = cl->out_off + mark;
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddFalseToObject(o, "ok") == NULL ||
	    cJSON_AddStringToObject(o, "error", msg) == NULL || out_json(cl, o) != 0 ||
	    out_str(cl, "\n") != 0) {
		/* Nothing sensible can be said to a client we cannot even answer; it is closed
		 * by client_pump, not here, because the caller still holds it. */
		cJSON_Delete(o);
		cl->broken = true;
		return;
	}
	cJSON_Delete(o);
}

static void reply_error(struct client *cl, const char *msg)
{
	reply_error_at(cl, out_pending(cl), msg);
}

/* Sends a finished object and a newline; on failure, an error in its place. */
static void reply_object(struct client *cl, cJSON *o)
{
	size_t mark = out_pending(cl);
	int r = o != NULL ? out_json(cl, o) : -ENOMEM;
	if (r == 0)
		r = out_str(cl, "\n");
	cJSON_Delete(o);
	if (r == -ENOSPC)
		reply_error_at(cl, mark, "reply too large");
	else if (r != 0)
		reply_error_at(cl, mark, "out of memory");
}

/* ---------------------------------------------------------------- events */

/*
 * The reply to an event, made once: sent now and, for a request with an id, recorded with
 * it in the event's transaction, so that a retry gets these very bytes.
 */
struct event_reply {
	const char *id;          /* the request's id, "" when none */
	int64_t t_ms;            /* the receipt time: the event's time */
	int64_t app_t_ms;        /* the app's own "t", INT64_MIN when it gave none */
};

static int event_reply(void *ctx, const struct core_result *res, char *buf, size_t len)
{
	const struct event_reply *er = ctx;
	char ts[EVJSON_TIME_MAX], app[EVJSON_TIME_MAX] = "";
	evjson_format_time(er->t_ms, ts, sizeof(ts));
	if (er->app_t_ms != INT64_MIN)
		evjson_format_time(er->app_t_ms, app, sizeof(app));
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL && cJSON_AddTrueToObject(o, "ok") != NULL &&
	          (er->id[0] == '\0' || cJSON_AddStringToObject(o, "id", er->id) != NULL) &&
	          cJSON_AddBoolToObject(o, "accepted", res->accepted) != NULL &&
	          cJSON_AddStringToObject(o, "t", ts) != NULL &&
	          (er->app_t_ms == INT64_MIN || cJSON_AddStringToObject(o, "app_t", app) != NULL) &&
	          (!res->journaled || res->event_id <= 0 ||
	           cJSON_AddNumberToObject(o, "event_id", (double)res->event_id) != NULL) &&
	          (res->accepted ||
	           cJSON_AddStringToObject(o, "reason", engine_reject_name(res->reject)) != NULL);
	/* cJSON asks for a few bytes of slack beyond what it prints. */
	ok = ok && len > 8 && cJSON_PrintPreallocated(o, buf, (int)(len - 8), 0);
	cJSON_Delete(o);
	return ok ? 0 : -ENOMEM;
}

/* Sends a reply made by event_reply() (or recorded from it) and its newline. */
static void reply_text(struct client *cl, const char *text)
{
	size_t mark = out_pending(cl);
	int r = out_str(cl, text);
	if (r == 0)
		r = out_str(cl, "\n");
	if (r == -ENOSPC)
		reply_error_at(cl, mark, "reply too large");
	else if (r != 0)
		reply_error_at(cl, mark, "out of memory");
}

/*
 * An app time further than max_app_skew from the receipt time: the event is flagged, the
 * counter raised and, at most once a minute, a line logged (an app whose clock is wrong is
 * wrong on every event).
 */
static void check_app_skew(struct ipc *ipc, struct engine_event *ev, int64_t app_t_ms)
{
	if (app_t_ms == INT64_MIN)
		return;
	/* Both times are within years 0001 to 9999 (RFC 3339 and the timeline): no overflow. */
	int64_t max = core_config(ipc->core)->max_app_skew_ms;
	int64_t skew = app_t_ms - ev->t_ms;
	if (skew <= max && skew >= -max)
		return;
	ev->anomalies |= ANOM_CLOCK_STEP;
	core_count(ipc->core, "ipc.app_clock_skew", 1);
	int64_t now = loop_now_ms();
	if (ipc->skew_logged && now - ipc->skew_logged_ms < IPC_SKEW_LOG_MS) {
		ipc->skew_unlogged++;
		return;
	}
	char app[EVJSON_TIME_MAX], ts[EVJSON_TIME_MAX], more[64] = "";
	evjson_format_time(app_t_ms, app, sizeof(app));
	evjson_format_time(ev->t_ms, ts, sizeof(ts));
	if (ipc->skew_unlogged > 0)
		snprintf(more, sizeof(more), " (%" PRIu64 " more since the last such line)",
		         ipc->skew_unlogged);
	log_warnx("ipc: the app's time %s is %lld s %s the receipt time %s (max_app_skew %lld s): "
	          "kept as the app's label only, event flagged clock_step%s", app,
	          (long long)((skew < 0 ? -skew : skew) / 1000), skew < 0 ? "before" : "after", ts,
	          (long long)(max / 1000), more);
	ipc->skew_logged = true;
	ipc->skew_logged_ms = now;
	ipc->skew_unlogged = 0;
}

/* What the window holds under a request's id, copied out of the store's callback. */
struct recorded {
	bool same;
	int64_t event_id;
	char reply[STORE_REQ_REPLY_MAX + 1];
};

static int recorded_cb(void *ctx, const struct store_request_row *r)
{
	struct recorded *rec = ctx;
	rec->same = r->same;
	rec->event_id = r->event_id;
	snprintf(rec->reply, sizeof(rec->reply), "%s", r->reply != NULL ? r->reply : "");
	return 0;
}

/*
 * A request whose id is in the window: a retry gets the recorded reply and is not applied
 * again; another request under a used id is refused. Returns true when it was answered.
 */
static bool answer_from_window(struct client *cl, const char *id, const char *line,
                               size_t len)
{
	struct core *c = cl->ipc->core;
	struct recorded rec;
	memset(&rec, 0, sizeof(rec));
	int r = store_request_get(core_store(c), id, line, len, core_now(c), recorded_cb, &rec);
	if (r == -ENOENT)
		return false;
	if (r != 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "event not applied: the request ids cannot be read: %s",
		         store_strerror(r));
		core_count(c, "ipc.errors", 1);
		reply_error(cl, msg);
		return true;
	}
	if (!rec.same) {
		char msg[200];
		/* The id is printable ASCII (evjson checked it) and at most 63 characters. */
		snprintf(msg, sizeof(msg), "field \"id\": \"%s\" was already used for another "
		         "request (journal event %lld); a retry must repeat the request unchanged",
		         id, (long long)rec.event_id);
		core_count(c, "ipc.id_conflict", 1);
		reply_error(cl, msg);
		return true;
	}
	core_count(c, "ipc.retry", 1);
	log_debug("ipc: request %s is a retry of journal event %lld; answered with the "
	          "recorded reply", id, (long long)rec.event_id);
	reply_text(cl, rec.reply);
	return true;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static void handle_event(struct client *cl, char *line, size_t len)
{
	struct ipc *ipc = cl->ipc;
	/* The request as the retry window compares it: without surrounding blanks. */
	while (len > 0 && is_blank(line[0])) {
		line++;
		len--;
	}
	while (len > 0 && is_blank(line[len - 1]))
		line[--len] = '\0';
	struct engine_event ev;
	enum evjson_kind kind;
	struct evjson_meta meta;
	char err[256];
	if (evjson_parse_meta(line, len, 0, &ev, &kind, &meta, err, sizeof(err)) != 0) {
		core_count(ipc->core, "ipc.malformed", 1);
		reply_error(cl, err);
		return;
	}
	if (kind != EVJSON_ENGINE) {
		core_count(ipc->core, "ipc.malformed", 1);
		reply_error(cl, "field \"type\": \"restart\" is only valid in a replayed scenario");
		return;
	}
	if (meta.id[0] != '\0' && answer_from_window(cl, meta.id, line, len))
		return;

	/* Live events are stamped on the daemon's timeline when they arrive, with its time
	 * quality; the app's "t" (and "tq") stay in the journalled request as its label. */
	struct event_reply er = { .id = meta.id, .app_t_ms = ev.t_ms };
	core_stamp(ipc->core, &ev, INT64_MIN);
	check_app_skew(ipc, &ev, er.app_t_ms);
	er.t_ms = ev.t_ms;

	struct core_result res;
	int r = meta.id[0] != '\0'
	        ? core_submit_request(ipc->core, &ev, "ipc", line, meta.id, event_reply, &er, &res)
	        : core_submit(ipc->core, &ev, "ipc", line, &res);
	if (r != 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "event not stored: %s", store_strerror(r));
		core_count(ipc->core, "ipc.errors", 1);
		reply_error(cl, msg);
		return;
	}
	if (meta.id[0] != '\0') {
		if (ipc->kill_id[0] != '\0' && strcmp(ipc->kill_id, meta.id) == 0) {
			/* The test hook (docs/ipc.md, "Testing retries"): the request is committed,
			 * its reply is not sent. */
			log_warnx("test hook: request %s committed; killing coverd before its reply "
			          "(COVERD_TEST_KILL_BEFORE_REPLY)", meta.id);
			(void)raise(SIGKILL);
		}
		const char *recorded = store_request_reply(core_store(ipc->core));
		if (recorded[0] == '\0')
			reply_error(cl, "internal error: the recorded reply is missing");
		else
			reply_text(cl, recorded);
		return;
	}
	char text[STORE_REQ_REPLY_MAX + 1];
	if (event_reply(&er, &res, text, sizeof(text)) != 0) {
		reply_error(cl, "out of memory");
		return;
	}
	reply_text(cl, text);
}

/* ---------------------------------------------------------------- queries */

static int add_time_or_null(cJSON *o, const char *name, bool have, int64_t ms)
{
	if (!have)
		return cJSON_AddNullToObject(o, name) != NULL ? 0 : -1;
	char ts[EVJSON_TIME_MAX];
	evjson_format_time(ms, ts, sizeof(ts));
	return cJSON_AddStringToObject(o, name, ts) != NULL ? 0 : -1;
}

static int add_str_or_null(cJSON *o, const char *name, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return cJSON_AddNullToObject(o, name) != NULL ? 0 : -1;
	return cJSON_AddStringToObject(o, name, s) != NULL ? 0 : -1;
}

static int add_number_or_null(cJSON *o, const char *name, double v)
{
	if (!isfinite(v))
		return cJSON_AddNullToObject(o, name) != NULL ? 0 : -1;
	return cJSON_AddNumberToObject(o, name, v) != NULL ? 0 : -1;
}

static int counter_cb(void *ctx, const char *name, int64_t value)
{
	cJSON *counters = ctx;
	return cJSON_AddNumberToObject(counters, name, (double)value) != NULL ? 0 : -ENOMEM;
}

static cJSON *build_status(struct ipc *ipc)
{
	struct core *c = ipc->core;
	const struct engine_state *st = core_state(c);
	const struct coverd_config *cfg = core_config(c);
	char act[ENGINE_ACT_ID_MAX];
	core_open_activation_id(c, act, sizeof(act));

	cJSON *s = cJSON_CreateObject();
	if (s == NULL)
		return NULL;
	bool on = st->s.open;
	int bad = 0;
	bad |= cJSON_AddStringToObject(s, "version", COVERD_VERSION) == NULL;
	bad |= cJSON_AddStringToObject(s, "device_id", cfg->engine.device_id) == NULL;
	bad |= cJSON_AddBoolToObject(s, "on_cover", on) == NULL;
	bad |= add_str_or_null(s, "session", on ? st->s.id : NULL) != 0;
	bad |= add_time_or_null(s, "session_start", on, st->s.start_ms) != 0;
	bad |= add_str_or_null(s, "activation", act) != 0;
	bad |= cJSON_AddBoolToObject(s, "online", st->online) == NULL;
	bad |= cJSON_AddBoolToObject(s, "private", st->private_mode) == NULL;
	bad |= cJSON_AddBoolToObject(s, "has_policy", st->has_policy) == NULL;
	bad |= add_str_or_null(s, "policy_id", st->has_policy ? st->policy.policy_id : NULL) != 0;
	bad |= cJSON_AddNumberToObject(s, "jobs_active", st->jobs_active) == NULL;
	bad |= render_status_counts(s, st) != 0;   /* gnss_fixes, job_events */
	bad |= cJSON_AddBoolToObject(s, "ignition", st->ignition_on) == NULL;
	bad |= add_time_or_null(s, "last_event", st->started, st->last_t_ms) != 0;
	if (st->have_fix) {
		cJSON *f = cJSON_AddObjectToObject(s, "last_fix");
		bad |= f == NULL;
		if (f != NULL) {
			bad |= add_time_or_null(f, "t", true, st->last_fix_ms) != 0;
			bad |= add_number_or_null(f, "lat", st->last_fix.lat) != 0;
			bad |= add_number_or_null(f, "lon", st->last_fix.lon) != 0;
			bad |= add_number_or_null(f, "speed", st->last_fix.speed_mps) != 0;
			bad |= cJSON_AddNumberToObject(f, "mode", st->last_fix.mode) == NULL;
		}
	} else {
		bad |= cJSON_AddNullToObject(s, "last_fix") == NULL;
	}
	bad |= cJSON_AddNumberToObject(s, "track_pending",
	                               (double)store_track_pending(core_store(c))) == NULL;
	int64_t depth = 0, oldest = 0;
	if (store_outbox_depth(core_store(c), &depth, &oldest) == 0) {
		bad |= cJSON_AddNumberToObject(s, "outbox_depth", (double)depth) == NULL;
		bad |= add_time_or_null(s, "outbox_oldest", oldest != 0, oldest) != 0;
	} else {
		bad |= cJSON_AddNullToObject(s, "outbox_depth") == NULL;
		bad |= cJSON_AddNullToObject(s, "outbox_oldest") == NULL;
	}
	bad |= cJSON_AddNumberToObject(s, "sessions_total", (double)st->sessions_total) == NULL;
	cJSON *counters = cJSON_AddObjectToObject(s, "counters");
	bad |= counters == NULL;
	if (counters != NULL && store_counters(core_store(c), counter_cb, counters) != 0)
		log_warnx("status: counters could not be read");
	if (ipc->status_hook != NULL)
		ipc->status_hook(ipc->status_ctx, s);
	if (bad) {
		cJSON_Delete(s);
		return NULL;
	}
	return s;
}

static void query_status(struct client *cl)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *s = build_status(cl->ipc);
	if (o == NULL || s == NULL || cJSON_AddTrueToObject(o, "ok") == NULL ||
	    !cJSON_AddItemToObject(o, "status", s)) {
		cJSON_Delete(o);
		cJSON_Delete(s);
		o = NULL;
	}
	reply_object(cl, o);
}

static void query_ping(struct client *cl)
{
	reply_object(cl, cJSON_Parse("{\"ok\":true,\"pong\":true}"));
}

struct list_ctx {
	struct client *cl;
	const struct engine_state *st;  /* for the live figures of the open activation */
	int n;
	int err;
};

static int list_item(struct list_ctx *lc, cJSON *item)
{
	if (item == NULL)
		return lc->err = -ENOMEM;
	int r = 0;
	if (lc->n > 0)
		r = out_str(lc->cl, ",");
	if (r == 0)
		r = out_json(lc->cl, item);
	cJSON_Delete(item);
	lc->n++;
	if (r != 0)
		lc->err = r;
	return r;
}

static int session_row(void *ctx, const struct store_session_row *r)
{
	return list_item(ctx, render_session(r));
}

static int activation_row(void *ctx, const struct store_activation_row *r)
{
	struct list_ctx *lc = ctx;
	/* The stored row of the activation in progress is its opening record; its distance,
	 * moving time and jobs so far live in the engine state (as in coverctl's read-only
	 * view, which overlays the persisted state the same way). */
	struct store_activation_row live = *r;
	(void)render_overlay_live(&live, lc->st);
	return list_item(lc, render_activation(&live));
}

static void query_list(struct client *cl, bool sessions, const char *session_id)
{
	size_t mark = out_pending(cl);
	struct list_ctx lc = { .cl = cl, .st = core_state(cl->ipc->core) };
	int r = out_str(cl, sessions ? "{\"ok\":true,\"sessions\":[" :
	                               "{\"ok\":true,\"activations\":[");
	int q = 0;
	if (r == 0) {
		if (sessions)
			q = store_sessions(core_store(cl->ipc->core), session_row, &lc);
		else
			q = store_activations(core_store(cl->ipc->core), session_id, activation_row,
			                      &lc);
	}
	if (r == 0 && lc.err == 0 && q == 0)
		r = out_str(cl, "]}\n");
	if (r == -ENOSPC || lc.err == -ENOSPC) {
		reply_error_at(cl, mark, sessions ? "reply too large" :
		               "reply too large; ask for one session's activations with \"session\"");
	} else if (r != 0 || lc.err != 0) {
		reply_error_at(cl, mark, "out of memory");
	} else if (q != 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "store: %s", store_strerror(q));
		core_count(cl->ipc->core, "ipc.errors", 1);
		reply_error_at(cl, mark, msg);
	}
}

/*
 * A request's string shown back in an error: printable ASCII as it is, every other byte
 * as \xNN, at most max bytes of input. Bytes from the request may be anything (invalid
 * UTF-8 included), and a reply must stay valid JSON text whatever came in.
 */
static void show_value(char *buf, size_t len, const char *s, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0' && i < max && o + 5 < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
	}
	if (len > 0)
		buf[o < len ? o : len - 1] = '\0';
}

/* The explanation of an activation's bill (daemon/explain.h), in the configured zone. */
static void query_explain(struct client *cl, const char *id)
{
	const struct coverd_config *cfg = core_config(cl->ipc->core);
	cJSON *ex = NULL;
	int r = explain_build(core_store(cl->ipc->core), id, core_state(cl->ipc->core),
	                      &cfg->engine, cfg->time_zone, &ex);
	if (r == -ENOENT) {
		char msg[4 * ENGINE_ACT_ID_MAX + 64], shown[4 * ENGINE_ACT_ID_MAX + 8];
		show_value(shown, sizeof(shown), id, ENGINE_ACT_ID_MAX);
		snprintf(msg, sizeof(msg), "field \"id\": no activation \"%s\"", shown);
		reply_error(cl, msg);
		return;
	}
	if (r < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "store: %s", store_strerror(r));
		reply_error(cl, msg);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddTrueToObject(o, "ok") == NULL ||
	    !cJSON_AddItemToObject(o, "explain", ex)) {
		cJSON_Delete(ex);
		cJSON_Delete(o);
		o = NULL;
	}
	reply_object(cl, o);
}

static void query_health(struct client *cl)
{
	struct core *c = cl->ipc->core;
	const struct engine_state *st = core_state(c);
	const struct coverd_config *cfg = core_config(c);
	char why[3][160];
	int nwhy = 0;

	bool db = store_ping(core_store(c)) == 0;
	if (!db)
		snprintf(why[nwhy++], sizeof(why[0]), "the database does not answer");
	int64_t loop_age = loop_now_ms() - loop_last_iteration_ms(cl->ipc->loop);
	bool loop_ok = loop_age < IPC_LOOP_STALL_MS;
	if (!loop_ok)
		snprintf(why[nwhy++], sizeof(why[0]), "the event loop has not turned for %" PRId64
		         " ms", loop_age);
	int64_t fix_age = st->have_fix ? core_now(c) - st->last_fix_ms : -1;
	bool fix_ok = st->have_fix && fix_age < cfg->fix_stale_ms;
	if (!st->have_fix)
		snprintf(why[nwhy++], sizeof(why[0]), "no GNSS fix received yet");
	else if (!fix_ok)
		snprintf(why[nwhy++], sizeof(why[0]), "the last fix is %" PRId64 " s old (limit %"
		         PRId64 " s)", fix_age / 1000, cfg->fix_stale_ms / 1000);

	cJSON *o = cJSON_CreateObject();
	cJSON *okv = o != NULL ? cJSON_AddTrueToObject(o, "ok") : NULL;
	cJSON *h = okv != NULL ? cJSON_AddObjectToObject(o, "health") : NULL;
	int bad = o == NULL || h == NULL;
	cJSON *reasons = NULL;
	if (!bad) {
		bad |= cJSON_AddBoolToObject(h, "healthy", db && loop_ok && fix_ok) == NULL;
		bad |= cJSON_AddBoolToObject(h, "db", db) == NULL;
		bad |= cJSON_AddBoolToObject(h, "loop", loop_ok) == NULL;
		bad |= cJSON_AddNumberToObject(h, "loop_age_ms", (double)loop_age) == NULL;
		bad |= cJSON_AddBoolToObject(h, "fix_fresh", fix_ok) == NULL;
		if (st->have_fix)
			bad |= cJSON_AddNumberToObject(h, "fix_age_ms", (double)fix_age) == NULL;
		else
			bad |= cJSON_AddNullToObject(h, "fix_age_ms") == NULL;
		reasons = cJSON_AddArrayToObject(h, "reasons");
		bad |= reasons == NULL;
		for (int i = 0; i < nwhy && reasons != NULL; i++) {
			cJSON *s = cJSON_CreateString(why[i]);
			if (s == NULL || !cJSON_AddItemToArray(reasons, s)) {
				cJSON_Delete(s);
				bad = 1;
			}
		}
	}
	if (bad) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_object(cl, o);
}

static void handle_query(struct client *cl, const cJSON *root, const cJSON *cmd)
{
	struct core *c = cl->ipc->core;
	if (!cJSON_IsString(cmd) || cmd->valuestring == NULL) {
		core_count(c, "ipc.malformed", 1);
		reply_error(cl, "field \"cmd\": must be a string");
		return;
	}
	const char *name = cmd->valuestring;
	if (strcmp(name, "status") == 0) {
		query_status(cl);
	} else if (strcmp(name, "ping") == 0) {
		query_ping(cl);
	} else if (strcmp(name, "health") == 0) {
		query_health(cl);
	} else if (strcmp(name, "sessions") == 0) {
		query_list(cl, true, NULL);
	} else if (strcmp(name, "activations") == 0) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "session");
		if (s != NULL && !cJSON_IsNull(s) && !cJSON_IsString(s)) {
			core_count(c, "ipc.malformed", 1);
			reply_error(cl, "field \"session\": must be a session id string");
			return;
		}
		query_list(cl, false, cJSON_IsString(s) ? s->valuestring : NULL);
	} else if (strcmp(name, "explain") == 0) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
		if (!cJSON_IsString(id) || id->valuestring == NULL || id->valuestring[0] == '\0') {
			core_count(c, "ipc.malformed", 1);
			reply_error(cl, "field \"id\": an activation id string is required");
			return;
		}
		query_explain(cl, id->valuestring);
	} else {
		char msg[400], shown[4 * 64 + 8];
		core_count(c, "ipc.malformed", 1);
		show_value(shown, sizeof(shown), name, 64);
		snprintf(msg, sizeof(msg), "field \"cmd\": unknown command \"%s\" (status, "
		         "sessions, activations, explain, health or ping)", shown);
		reply_error(cl, msg);
	}
}

/* line is NUL-terminated at len (the newline replaced). */
static void handle_line(struct client *cl, char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (core_store(cl->ipc->core) == NULL) {
		/* Only between a failed in-process restart and the exit it causes. */
		reply_error(cl, "the store is not open");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		core_count(cl->ipc->core, "ipc.malformed", 1);
		reply_error(cl, "request contains a NUL byte");
		return;
	}
	cJSON *root = cJSON_ParseWithLength(line, len);
	const cJSON *cmd = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "cmd")
	                                        : NULL;
	if (cmd != NULL)
		handle_query(cl, root, cmd);
	else
		handle_event(cl, line, len);
	cJSON_Delete(root);
}

/* ---------------------------------------------------------------- client I/O */

static void client_close(struct client *cl, const char *why)
{
	struct ipc *ipc = cl->ipc;
	if (why != NULL)
		log_debug("ipc: client %d closed: %s", cl->fd, why);
	(void)loop_del_fd(ipc->loop, cl->fd);
	close(cl->fd);
	for (int i = 0; i < IPC_MAX_CLIENTS; i++)
		if (ipc->clients[i] == cl)
			ipc->clients[i] = NULL;
	free(cl->out);
	free(cl);
}

/* Handles every complete request in the input buffer, until replies back up. */
static void client_process(struct client *cl)
{
	while (out_pending(cl) < IPC_OUT_HIGH && !cl->broken) {
		char *start = cl->in + cl->in_off;
		char *nl = memchr(start, '\n', cl->in_len);
		if (cl->discarding) {
			if (nl == NULL) {
				cl->in_off = cl->in_len = 0;
				return;
			}
			size_t skip = (size_t)(nl - start) + 1;
			cl->in_off += skip;
			cl->in_len -= skip;
			cl->discarding = false;
			continue;
		}
		if (nl == NULL) {
			if (cl->in_len == IPC_LINE_MAX) {
				/* The whole buffer is one request without its newline: too long. */
				core_count(cl->ipc->core, "ipc.oversized", 1);
				reply_error(cl, "request too large (limit 65536 bytes)");
				cl->discarding = true;
				cl->in_off = cl->in_len = 0;
				continue;
			}
			if (cl->eof && cl->in_len > 0) {
				/* A last request without a newline is still answered. */
				size_t n = cl->in_len;
				start[n] = '\0';
				cl->in_off = cl->in_len = 0;
				handle_line(cl, start, n);
			}
			break;
		}
		size_t n = (size_t)(nl - start);
		*nl = '\0';
		cl->in_off += n + 1;
		cl->in_len -= n + 1;
		handle_line(cl, start, n);
	}
	if (cl->in_len == 0)
		cl->in_off = 0;
}

static bool has_request(const struct client *cl);

static void client_update_interest(struct client *cl)
{
	unsigned ev = 0;
	if (!cl->eof && out_pending(cl) < IPC_OUT_HIGH)
		ev |= LOOP_READ;
	if (out_pending(cl) > 0 || (!cl->discarding && has_request(cl)))
		ev |= LOOP_WRITE;
	if (ev != cl->events) {
		if (loop_mod_fd(cl->ipc->loop, cl->fd, ev) == 0)
			cl->events = ev;
	}
}

/* Writes what the socket takes; returns -1 when the client was closed. */
static int client_flush(struct client *cl)
{
	while (out_pending(cl) > 0) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, out_pending(cl),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			client_close(cl, "write failed");
			return -1;
		}
		cl->out_off += (size_t)n;
		cl->progress_ms = loop_now_ms();
	}
	cl->out_off = cl->out_len = 0;
	/* A burst of large replies should not pin megabytes for an idle connection. */
	if (cl->out_cap > IPC_OUT_HIGH) {
		free(cl->out);
		cl->out = NULL;
		cl->out_cap = 0;
	}
	return 0;
}

/* True when the input buffer holds a request that was not handled yet. */
static bool has_request(const struct client *cl)
{
	if (cl->in_len == 0)
		return false;
	if (cl->eof)
		return true;
	return memchr(cl->in + cl->in_off, '\n', cl->in_len) != NULL;
}

/*
 * Processes input, writes output and sets the interest; may close the client. Requests
 * left over because replies backed up (or because the output was sent at once and the
 * slice ended) keep write interest on: the socket is writable, so the loop calls back
 * after the other descriptors had their turn.
 */
static void client_pump(struct client *cl)
{
	size_t before = out_pending(cl);
	client_process(cl);
	if (cl->broken) {
		client_close(cl, "cannot build a reply");
		return;
	}
	if (before == 0 && out_pending(cl) > 0)
		cl->progress_ms = loop_now_ms();
	if (client_flush(cl) != 0)
		return;
	if (cl->eof && out_pending(cl) == 0 && !has_request(cl)) {
		client_close(cl, "peer closed");
		return;
	}
	client_update_interest(cl);
}

static void on_client(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	struct client *cl = arg;
	if ((events & LOOP_READ) && !cl->eof) {
		/* Make room at the end: move the unread part to the front. */
		if (cl->in_off > 0 && cl->in_off + cl->in_len == IPC_LINE_MAX) {
			memmove(cl->in, cl->in + cl->in_off, cl->in_len);
			cl->in_off = 0;
		}
		size_t room = IPC_LINE_MAX - (cl->in_off + cl->in_len);
		if (room > 0) {
			ssize_t n = recv(cl->fd, cl->in + cl->in_off + cl->in_len, room, MSG_DONTWAIT);
			if (n > 0) {
				cl->in_len += (size_t)n;
			} else if (n == 0) {
				cl->eof = true;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				client_close(cl, "read failed");
				return;
			}
		}
	} else if ((events & LOOP_ERROR) && !(events & LOOP_WRITE)) {
		client_close(cl, "hang-up");
		return;
	}
	client_pump(cl);
}

static void on_accept(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	struct ipc *ipc = arg;
	for (int k = 0; k < ACCEPTS_PER_CALL; k++) {
		int cfd = accept(fd, NULL, NULL);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("ipc: accept");
			return;
		}
		/* accept4() would save these two calls but is a GNU extension. */
		int fl = fcntl(cfd, F_GETFL);
		if (fl < 0 || fcntl(cfd, F_SETFL, fl | O_NONBLOCK) != 0 ||
		    fcntl(cfd, F_SETFD, FD_CLOEXEC) != 0) {
			log_warn("ipc: fcntl");
			close(cfd);
			continue;
		}
		int slot = -1;
		for (int i = 0; i < IPC_MAX_CLIENTS && slot < 0; i++)
			if (ipc->clients[i] == NULL)
				slot = i;
		struct client *cl = slot >= 0 ? calloc(1, sizeof(*cl)) : NULL;
		if (cl == NULL) {
			static const char busy[] =
			    "{\"ok\":false,\"error\":\"too many clients; try again later\"}\n";
			/* Best effort: the socket buffer of a new connection takes this line. */
			ssize_t n = send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)n;
			close(cfd);
			core_count(ipc->core, "ipc.refused", 1);
			continue;
		}
		cl->ipc = ipc;
		cl->fd = cfd;
		cl->events = LOOP_READ;
		int r = loop_add_fd(l, cfd, LOOP_READ, on_client, cl);
		if (r != 0) {
			log_warnx("ipc: cannot watch client: %s", strerror(-r));
			close(cfd);
			free(cl);
			continue;
		}
		ipc->clients[slot] = cl;
	}
}

/* Drops clients that leave replies unread for IPC_STALL_MS. */
static void on_sweep(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct ipc *ipc = arg;
	int64_t now = loop_now_ms();
	for (int i = 0; i < IPC_MAX_CLIENTS; i++) {
		struct client *cl = ipc->clients[i];
		if (cl != NULL && out_pending(cl) > 0 && now - cl->progress_ms > IPC_STALL_MS) {
			log_warnx("ipc: dropping a client that left %zu bytes unread for %d s",
			          out_pending(cl), IPC_STALL_MS / 1000);
			core_count(ipc->core, "ipc.dropped", 1);
			client_close(cl, NULL);
		}
	}
}

/* ---------------------------------------------------------------- listener */

/* 1 when something accepts connections at path, 0 when not, negative on odd errors. */
static int someone_listens(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	return -e;
}

int ipc_new(struct ipc **out, struct core *c, struct loop *l, const char *path,
            unsigned mode, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path empty or longer than %zu bytes",
		         path != NULL ? path : "", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));

	struct stat sb;
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket; refusing to replace it",
			         path);
			return -EEXIST;
		}
		int who = someone_listens(&sa);
		if (who > 0) {
			snprintf(err, errlen, "%s: another coverd is already serving this socket", path);
			return -EADDRINUSE;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			int e = errno;
			snprintf(err, errlen, "%s: cannot remove the stale socket: %s", path, strerror(e));
			return -e;
		}
		log_info("removed stale socket %s", path);
	}

	struct ipc *ipc = calloc(1, sizeof(*ipc));
	if (ipc == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ipc->core = c;
	ipc->loop = l;
	snprintf(ipc->path, sizeof(ipc->path), "%s", path);
	ipc->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ipc->lfd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: socket: %s", path, strerror(e));
		free(ipc);
		return -e;
	}
	/* The mode is applied through the umask at bind time, so the socket never exists
	 * with looser permissions than configured, not even for an instant. */
	mode_t old = umask((mode_t)(~mode & 0777));
	int r = bind(ipc->lfd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (r != 0 || chmod(path, (mode_t)mode) != 0 || listen(ipc->lfd, 32) != 0 ||
	    stat(path, &sb) != 0) {
		if (r == 0)
			e = errno;
		snprintf(err, errlen, "%s: cannot listen: %s", path, strerror(e));
		if (r == 0)
			(void)unlink(path);
		close(ipc->lfd);
		free(ipc);
		return -e;
	}
	ipc->dev = sb.st_dev;
	ipc->ino = sb.st_ino;
	r = loop_add_fd(l, ipc->lfd, LOOP_READ, on_accept, ipc);
	if (r != 0) {
		snprintf(err, errlen, "%s: cannot watch the socket: %s", path, strerror(-r));
		(void)unlink(path);
		close(ipc->lfd);
		free(ipc);
		return r;
	}
	loop_timer_init(&ipc->sweep, on_sweep, ipc);
	(void)loop_timer_after(l, &ipc->sweep, 1000, 1000);
	*out = ipc;
	return 0;
}

void ipc_free(struct ipc *ipc)
{
	if (ipc == NULL)
		return;
	loop_timer_stop(ipc->loop, &ipc->sweep);
	for (int i = 0; i < IPC_MAX_CLIENTS; i++) {
		struct client *cl = ipc->clients[i];
		if (cl != NULL) {
			/* Replies already built still go out if the socket takes them now. */
			(void)client_flush(cl);
			if (ipc->clients[i] != NULL)
				client_close(cl, NULL);
		}
	}
	(void)loop_del_fd(ipc->loop, ipc->lfd);
	close(ipc->lfd);
	/* Only our own socket is removed: a newer daemon may have replaced the file. */
	struct stat sb;
	if (lstat(ipc->path, &sb) == 0 && sb.st_dev == ipc->dev && sb.st_ino == ipc->ino)
		(void)unlink(ipc->path);
	free(ipc);
}

void ipc_set_status_hook(struct ipc *ipc, void (*fn)(void *ctx, struct cJSON *status),
                         void *ctx)
{
	ipc->status_hook = fn;
	ipc->status_ctx = ctx;
}

int ipc_set_test_kill(struct ipc *ipc, const char *id)
{
	if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(ipc->kill_id))
		return -EINVAL;
	snprintf(ipc->kill_id, sizeof(ipc->kill_id), "%s", id);
	return 0;
}
