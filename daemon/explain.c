/*
 * explain.c - the words and facts of an activation's bill (see explain.h).
 *
 * Where each fact comes from. The store keeps, per activation, the rule that opened and
 * closed it with the journal events that carried them and, from schema 5, what kept cover
 * alive when its hour began. A session's start is its activation 0's opening; its end is
 * the closing of its last activation (every activation still open is closed or voided by
 * the step that ends the session). The facts that met an ending rule are read back:
 *  - the last delivery (or cancellation) and the last app event are the last applied app
 *    events of the session in the journal, which holds every app event;
 *  - the last movement is the last moving point of the session's track, which holds every
 *    fix the engine accepted while cover was open, with the speed it judged (the
 *    receiver's or the derived one). Track detail pruned on a full disk is not there.
 * For a deadline rule (the grace ran out, silence, standing still, maximum length, a job's
 * timeout) the event the daemon noticed it on came after the deadline and is none of the
 * facts; for an ending event (offline, private mode, end cover, revoke) it is one.
 * An open session's facts come from the engine's live state instead.
 *
 * The zone. The C library converts to local time in the zone TZ names, and reads it once
 * per tzset(). explain_render() sets TZ to the configured zone for its length and puts the
 * old value back, so the daemon's other times (its logs are UTC anyway) are not moved. The
 * daemon is single-threaded, which this relies on.
 */
#include "explain.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evjson.h"
#include "render.h"

#define NONE EXPLAIN_NONE
#define TEXT_MAX 1536
#define WHEN_MAX 64

/* ---- time zones and times ------------------------------------------------------------ */

struct zone_guard {
	bool set;      /* TZ was changed and must be put back */
	char *old;     /* the previous TZ; NULL when it was unset */
};

static int zone_enter(struct zone_guard *g, const char *zone)
{
	char spec[96];

	g->set = false;
	g->old = NULL;
	if (zone == NULL || zone[0] == '\0') {
		tzset();
		return 0;
	}
	const char *old = getenv("TZ");
	if (old != NULL && (g->old = strdup(old)) == NULL)
		return -ENOMEM;
	/* The leading ':' says the value names a zone file, never a POSIX rule string. */
	snprintf(spec, sizeof(spec), ":%s", zone);
	if (setenv("TZ", spec, 1) != 0) {
		int e = errno;
		free(g->old);
		g->old = NULL;
		return -e;
	}
	g->set = true;
	tzset();
	return 0;
}

static void zone_leave(struct zone_guard *g)
{
	if (g->set) {
		/* Putting the old value back can only fail for want of memory; then the
		 * process is left on its system zone rather than on ours. */
		if (g->old == NULL || setenv("TZ", g->old, 1) != 0)
			(void)unsetenv("TZ");
		tzset();
	}
	free(g->old);
	g->old = NULL;
	g->set = false;
}

struct when {
	struct tm lt, ut;
	long off;           /* seconds east of UTC */
	char abbr[16];
};

static void when_of(int64_t ms, struct when *w)
{
	int64_t s = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
	time_t t = (time_t)s;

	memset(w, 0, sizeof(*w));
	if (gmtime_r(&t, &w->ut) == NULL)
		memset(&w->ut, 0, sizeof(w->ut));
	if (localtime_r(&t, &w->lt) == NULL) {
		w->lt = w->ut;
		snprintf(w->abbr, sizeof(w->abbr), "UTC");
		return;
	}
	w->off = w->lt.tm_gmtoff;
	snprintf(w->abbr, sizeof(w->abbr), "%s",
	         w->lt.tm_zone != NULL && w->lt.tm_zone[0] != '\0' ? w->lt.tm_zone : "local");
}

static bool same_day(const struct tm *a, const struct tm *b)
{
	return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon && a->tm_mday == b->tm_mday;
}

static const char *const wday_short[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const wday_long[] = { "Sunday", "Monday", "Tuesday", "Wednesday",
	                                 "Thursday", "Friday", "Saturday" };
static const char *const mon_short[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *const mon_long[] = { "January", "February", "March", "April", "May",
	                                "June", "July", "August", "September", "October",
	                                "November", "December" };

static const char *pick(const char *const *names, int n, int i)
{
	return i >= 0 && i < n ? names[i] : "?";
}

static void day_short(char *buf, size_t len, const struct tm *tm)
{
	snprintf(buf, len, "%s %d %s ", pick(wday_short, 7, tm->tm_wday), tm->tm_mday,
	         pick(mon_short, 12, tm->tm_mon));
}

static void clock_of(char *buf, size_t len, const struct tm *tm, bool secs)
{
	if (secs)
		snprintf(buf, len, "%02d:%02d:%02d", tm->tm_hour, tm->tm_min, tm->tm_sec);
	else
		snprintf(buf, len, "%02d:%02d", tm->tm_hour, tm->tm_min);
}

/* The text of one time; the zone is already selected. */
static void when_text(int64_t ms, int64_t ref_ms, char *buf, size_t len)
{
	struct when w, r;
	char lc[16], uc[16], ld[24] = "", ud[24] = "";
	bool secs = ((ms % 60000) + 60000) % 60000 >= 1000;

	when_of(ms, &w);
	when_of(ref_ms, &r);
	clock_of(lc, sizeof(lc), &w.lt, secs);
	clock_of(uc, sizeof(uc), &w.ut, secs);
	if (!same_day(&w.lt, &r.lt))
		day_short(ld, sizeof(ld), &w.lt);
	/* The UTC day is named when it is not the local day just given. */
	if (!same_day(&w.ut, &w.lt))
		day_short(ud, sizeof(ud), &w.ut);
	if (w.off == 0 && strcmp(w.abbr, "UTC") == 0)
		snprintf(buf, len, "%s%s UTC", ld, lc);
	else
		snprintf(buf, len, "%s%s %s (%s%s UTC)", ld, lc, w.abbr, ud, uc);
}

void explain_format_time(int64_t ms, int64_t ref_ms, const char *zone, char *buf, size_t len)
{
	struct zone_guard g;

	if (buf == NULL || len == 0)
		return;
	if (zone_enter(&g, zone) != 0) {
		/* Without memory for TZ the time is still true in UTC. */
		char t[EVJSON_TIME_MAX];
		evjson_format_time(ms, t, sizeof(t));
		snprintf(buf, len, "%s", t);
		return;
	}
	when_text(ms, ref_ms, buf, len);
	zone_leave(&g);
}

/* {"utc": ..., "local": ..., "zone": ...} or null; the zone is already selected. */
static int add_when(cJSON *o, const char *name, int64_t ms)
{
	char utc[EVJSON_TIME_MAX], local[96];
	struct when w;
	cJSON *t;

	if (ms == NONE)
		return cJSON_AddNullToObject(o, name) != NULL ? 0 : -1;
	when_of(ms, &w);
	evjson_format_time(ms, utc, sizeof(utc));
	/* Zone offsets are within a day; the bound tells the compiler too. */
	int off = (int)((w.off < 0 ? -w.off : w.off) % 86400);
	int frac = (int)(((ms % 1000) + 1000) % 1000);
	char fr[8] = "";
	if (frac != 0)
		snprintf(fr, sizeof(fr), ".%03d", frac);
	snprintf(local, sizeof(local), "%04d-%02d-%02dT%02d:%02d:%02d%s%c%02d:%02d",
	         w.lt.tm_year + 1900, w.lt.tm_mon + 1, w.lt.tm_mday, w.lt.tm_hour, w.lt.tm_min,
	         w.lt.tm_sec, fr, w.off < 0 ? '-' : '+', off / 3600, off / 60 % 60);
	t = cJSON_AddObjectToObject(o, name);
	if (t == NULL || cJSON_AddStringToObject(t, "utc", utc) == NULL ||
	    cJSON_AddStringToObject(t, "local", local) == NULL ||
	    cJSON_AddStringToObject(t, "zone", w.abbr) == NULL)
		return -1;
	return 0;
}

/* "0:12", "1:00", "0:39:12": hours and minutes, seconds when there are any. */
static void dur_text(char *buf, size_t len, int64_t ms)
{
	long long s = ms > 0 ? (long long)(ms / 1000) : 0;

	if (s % 60 != 0)
		snprintf(buf, len, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%lld:%02lld", s / 3600, s / 60 % 60);
}

/* A rule's parameter in words: "10 minutes", "1 hour", "90 seconds". */
static void param_text(char *buf, size_t len, int64_t ms)
{
	long long v;
	const char *unit;

	if (ms > 0 && ms % 3600000 == 0) {
		v = ms / 3600000;
		unit = "hour";
	} else if (ms > 0 && ms % 60000 == 0) {
		v = ms / 60000;
		unit = "minute";
	} else if (ms % 1000 == 0) {
		v = ms / 1000;
		unit = "second";
	} else {
		v = ms;
		unit = "millisecond";
	}
	snprintf(buf, len, "%lld %s%s", v, unit, v == 1 ? "" : "s");
}

/* ---- text ---------------------------------------------------------------------------- */

/* Appends printf output to a fixed buffer; the text is cut, never overrun, when long. */
static void append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

struct out {
	cJSON *lines;
	char *statement;     /* TEXT_MAX * 16 */
	size_t statement_len;
	int err;
	int64_t ref_ms;      /* the day times are written against */
};

#define STATEMENT_MAX (TEXT_MAX * 16)

static void line(struct out *o, const char *label, const char *text)
{
	cJSON *l = cJSON_CreateObject();

	if (l == NULL || cJSON_AddStringToObject(l, "label", label) == NULL ||
	    cJSON_AddStringToObject(l, "text", text) == NULL ||
	    !cJSON_AddItemToArray(o->lines, l)) {
		cJSON_Delete(l);
		o->err = -ENOMEM;
		return;
	}
	append(o->statement, STATEMENT_MAX, "%s%s: %s", o->statement[0] != '\0' ? "\n" : "",
	       label, text);
}

/* A time as text against the output's reference day; "an unknown time" for NONE. */
static const char *at(struct out *o, int64_t ms, char *buf)
{
	if (ms == NONE)
		snprintf(buf, WHEN_MAX, "an unknown time");
	else
		when_text(ms, o->ref_ms, buf, WHEN_MAX);
	return buf;
}

static bool eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* The "event" member of a journal row's JSON into buf ("" when none). */
static void event_name(const struct store_event_row *e, char *buf, size_t len)
{
	cJSON *j;
	const cJSON *ev;

	buf[0] = '\0';
	if (e == NULL || e->json == NULL)
		return;
	j = cJSON_Parse(e->json);
	ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	if (cJSON_IsString(ev) && ev->valuestring != NULL)
		snprintf(buf, len, "%s", ev->valuestring);
	cJSON_Delete(j);
}

static bool is_void(const char *status)
{
	return eq(status, "voided") || eq(status, "void");
}

/* What started cover: reason and cause names for the JSON, words for the text. */
struct started {
	const char *reason, *cause;
	char text[TEXT_MAX];
};

static void started_by(struct out *o, const struct explain_facts *f,
                       const struct engine_config *cfg, int64_t start, struct started *s)
{
	char t[WHEN_MAX], evname[32], p[32];
	const char *policy = f->sess != NULL && f->sess->policy_id != NULL ? f->sess->policy_id
	                   : f->act->policy_id != NULL ? f->act->policy_id : "?";
	const char *type = f->start_ev != NULL ? f->start_ev->type : NULL;

	event_name(f->start_ev, evname, sizeof(evname));
	(void)at(o, start, t);
	s->cause = NULL;
	if (eq(f->start_rule, "start_job")) {
		s->reason = "job_accepted";
		snprintf(s->text, sizeof(s->text), "a job accepted at %s, while the driver was "
		         "online, not in private mode and held policy %s", t, policy);
	} else if (eq(f->start_rule, "start_online")) {
		s->reason = "online";
		snprintf(s->text, sizeof(s->text), "going online in the courier app at %s, "
		         "holding policy %s", t, policy);
	} else if (eq(f->start_rule, "start_motion")) {
		s->reason = "motion";
		snprintf(s->text, sizeof(s->text), "the vehicle moving with the ignition on at "
		         "%s, holding policy %s", t, policy);
	} else if (eq(f->start_rule, "start_job_in_progress")) {
		s->reason = "job_in_progress";
		if (f->after_max_session) {
			s->cause = "max_session";
			param_text(p, sizeof(p), cfg->max_session_ms);
			snprintf(s->text, sizeof(s->text), "a job still in progress at %s, when the "
			         "previous session reached its maximum length of %s: a driver on a "
			         "job is never left uninsured", t, p);
		} else if (eq(type, "policy")) {
			s->cause = "policy_assigned";
			snprintf(s->text, sizeof(s->text), "policy %s assigned at %s while a job was "
			         "in progress: a driver on a job is never left uninsured", policy, t);
		} else if (eq(type, "app") && eq(evname, "job_accepted")) {
			s->cause = "job_accepted";
			snprintf(s->text, sizeof(s->text), "a job accepted at %s, while the driver was "
			         "online, not in private mode and held policy %s", t, policy);
		} else if (eq(type, "app") && eq(evname, "online")) {
			s->cause = "online";
			snprintf(s->text, sizeof(s->text), "going online at %s with a job in progress, "
			         "holding policy %s", t, policy);
		} else if (eq(type, "app") && eq(evname, "private_off")) {
			s->cause = "private_off";
			snprintf(s->text, sizeof(s->text), "leaving private mode at %s with a job in "
			         "progress, holding policy %s", t, policy);
		} else if (eq(type, "app")) {
			s->cause = "app_returned";
			snprintf(s->text, sizeof(s->text), "the courier app coming back at %s after a "
			         "silence had ended cover, with a job still in progress", t);
		} else {
			snprintf(s->text, sizeof(s->text), "a job in progress at %s, holding policy "
			         "%s", t, policy);
		}
	} else {
		s->reason = NULL;
		snprintf(s->text, sizeof(s->text), "cover started at %s (how is not recorded)", t);
	}
}

/* What kept cover alive when the hour began: the JSON name and the words. */
static const char *kept_alive(struct out *o, const struct explain_facts *f,
                              const struct engine_config *cfg, char *buf, size_t len)
{
	const struct store_activation_row *a = f->act;
	char h[WHEN_MAX], t[WHEN_MAX], p[32];

	(void)at(o, a->start_ms, h);
	(void)at(o, a->alive_since_ms, t);
	/* The first hour is always the session's start, recorded or not (older rows). */
	switch (a->index == 0 ? ALIVE_START : a->alive_since_ms == NONE ? -1 : a->alive) {
	case ALIVE_START:
		snprintf(buf, len, "this is the session's first hour: it began when cover started");
		return "start";
	case ALIVE_JOB:
		snprintf(buf, len, "when this hour began at %s, a job was in progress, accepted at "
		         "%s", h, t);
		return "job";
	case ALIVE_GRACE:
		param_text(p, sizeof(p), cfg->gap_end_ms);
		if (eq(f->grace_event, "job_cancelled"))
			snprintf(buf, len, "when this hour began at %s, it was within the %s of grace "
			         "after the job cancelled at %s (cover continues that long after a job "
			         "ends, waiting for the next one)", h, p, t);
		else if (f->grace_event != NULL)
			snprintf(buf, len, "when this hour began at %s, it was within the %s of grace "
			         "after the delivery at %s (cover continues that long after a "
			         "delivery, waiting for the next job)", h, p, t);
		else
			snprintf(buf, len, "when this hour began at %s, it was within the %s of grace "
			         "that began at %s, when the app came back after a silence", h, p, t);
		return "grace";
	case ALIVE_MOVEMENT:
		snprintf(buf, len, "when this hour began at %s, the courier app was silent but the "
		         "vehicle was moving, last at %s: while it moves, the driver is still "
		         "working", h, t);
		return "movement";
	case ALIVE_ONLINE:
		param_text(p, sizeof(p), cfg->idle_end_ms);
		if (a->alive_since_ms == (f->sess != NULL ? f->sess->start_ms : NONE))
			snprintf(buf, len, "when this hour began at %s, cover had started at %s, less "
			         "than %s before (cover continues while there is movement or a job)", h,
			         t, p);
		else
			snprintf(buf, len, "when this hour began at %s, the last movement or job end "
			         "had been at %s, less than %s before (cover continues while there is "
			         "movement or a job)", h, t, p);
		return "online";
	default:
		snprintf(buf, len, "not recorded (this hour was stored before the device kept that "
		         "record)");
		return NULL;
	}
}

/* The clause that says why the session ended at end_ms (seen at event_ms). */
static void session_end_words(struct out *o, const struct explain_facts *f,
                              const struct engine_config *cfg, const char *reason,
                              int64_t end_ms, int64_t event_ms, char *buf, size_t len)
{
	char e[WHEN_MAX], d[WHEN_MAX], x[WHEN_MAX], p1[32], p2[32], p3[32];
	const char *what = eq(f->last_delivery_event, "job_cancelled") ? "cancelled job"
	                                                                : "delivery";
	bool backdated = event_ms != NONE && event_ms > end_ms;

	(void)at(o, end_ms, e);
	(void)at(o, event_ms != NONE ? event_ms : end_ms, d);
	if (eq(reason, "gap_end")) {
		param_text(p1, sizeof(p1), cfg->gap_end_ms);
		(void)at(o, end_ms + cfg->gap_end_ms, x);
		if (f->last_delivery_ms == end_ms)
			snprintf(buf, len, "no new job was accepted within %s of the last %s, at %s, "
			         "so cover ended at that %s, not when the %s ran out at %s", p1,
			         eq(f->last_delivery_event, "job_cancelled") ? "job's cancellation"
			                                                     : "delivery",
			         e, eq(f->last_delivery_event, "job_cancelled") ? "cancellation"
			                                                       : "delivery",
			         p1, x);
		else
			snprintf(buf, len, "no new job was accepted within %s of %s, when the app came "
			         "back after a silence, so cover ended then", p1, e);
	} else if (eq(reason, "job_timeout")) {
		param_text(p1, sizeof(p1), cfg->job_timeout_ms);
		snprintf(buf, len, "no event came for the job in progress for %s (its delivery was "
		         "never received), so it counts as ended at its last event, and cover ended "
		         "at %s", p1, e);
	} else if (eq(reason, "app_silence")) {
		char a[WHEN_MAX], m[WHEN_MAX];
		param_text(p1, sizeof(p1), cfg->app_silence_ms);
		param_text(p2, sizeof(p2), cfg->gap_end_ms);
		param_text(p3, sizeof(p3), cfg->idle_end_ms);
		(void)at(o, f->last_app_ms, a);
		if (f->last_move_ms != NONE)
			(void)at(o, f->last_move_ms, m);
		snprintf(buf, len, "the courier app fell silent after its last event at %s and the "
		         "vehicle stood still %s%s, so cover ended at %s, the later of the two (the "
		         "app counts as silent after %s without an event, the vehicle as stopped "
		         "after %s without movement, %s with a job in progress)", a,
		         f->last_move_ms != NONE ? "after its last movement at " : "",
		         f->last_move_ms != NONE ? m : "from the start of cover", e, p1, p2, p3);
	} else if (eq(reason, "idle_end")) {
		param_text(p1, sizeof(p1), cfg->idle_end_ms);
		snprintf(buf, len, "there was no movement and no job for %s after %s, so cover "
		         "ended then", p1, e);
	} else if (eq(reason, "max_session")) {
		param_text(p1, sizeof(p1), cfg->max_session_ms);
		snprintf(buf, len, "the session reached its maximum length of %s at %s", p1, e);
	} else if (eq(reason, "offline") || eq(reason, "private") || eq(reason, "end_cover") ||
	           eq(reason, "policy_revoked")) {
		const char *ev = eq(reason, "offline") ? "the driver went offline in the courier app"
		               : eq(reason, "private") ? "the driver switched the app to private mode"
		               : eq(reason, "end_cover") ? "the insurer's backend ended cover by "
		                                           "command"
		                                         : "the insurance policy was revoked";
		param_text(p1, sizeof(p1), cfg->gap_end_ms);
		if (backdated)
			snprintf(buf, len, "%s at %s, within the %s of grace after the %s at %s, so "
			         "cover ended at that %s, as it would have had the app stayed on", ev,
			         d, p1, what, e, what);
		else
			snprintf(buf, len, "%s at %s, which ends cover at once", ev, e);
	} else {
		snprintf(buf, len, "cover ended at %s", e);
	}
}

static const char *tq_words(const char *tq)
{
	if (tq == NULL)
		return "not recorded";
	if (strcmp(tq, "gnss") == 0)
		return "GNSS satellite time";
	if (strcmp(tq, "ntp") == 0)
		return "network time (NTP)";
	if (strcmp(tq, "rtc") == 0)
		return "the device's real-time clock only";
	if (strcmp(tq, "unsynced") == 0)
		return "an unsynchronised clock: the times may be off, the durations are right";
	return tq;
}

static void anomalies_words(uint32_t anomalies, char *buf, size_t len)
{
	static const struct {
		uint32_t bit;
		const char *words;
	} names[] = {
		{ ANOM_POSITION_JUMP, "a position jump (a fix too far from the last to be driven)" },
		{ ANOM_MOCK_LOCATION, "a mock location reported by the app" },
		{ ANOM_CLOCK_STEP, "a clock step (a time the app gave was off, or the clock jumped)" },
	};

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (anomalies & names[i].bit)
			append(buf, len, "%s%s", buf[0] != '\0' ? "; " : "", names[i].words);
	if (buf[0] == '\0')
		snprintf(buf, len, "none");
}

static int add_str_or_null(cJSON *o, const char *name, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return cJSON_AddNullToObject(o, name) != NULL ? 0 : -1;
	return cJSON_AddStringToObject(o, name, s) != NULL ? 0 : -1;
}

/* Everything of the object but the records; the zone is selected. */
static int render_body(cJSON *obj, struct out *o, const struct explain_facts *f,
                       const struct engine_config *cfg, const char *zone)
{
	const struct store_activation_row *a = f->act;
	const struct store_session_row *s = f->sess;
	bool open = a->end_ms == 0 && !is_void(a->status);
	bool voided = is_void(a->status);
	bool zero = voided && (a->index == 0 || eq(a->close_rule, "zero_length"));
	bool hour_end = !open && !voided && eq(a->end_reason, "hour");
	bool backdated = !open && !voided && eq(a->close_rule, "backdated_end");
	int64_t sess_start = s != NULL ? s->start_ms : a->index == 0 ? a->start_ms : NONE;
	int64_t sess_end = s != NULL && !s->open && s->end_ms != 0 ? s->end_ms : NONE;
	const char *sess_reason = s != NULL && !s->open ? s->end_reason : NULL;
	int64_t end_event = f->end_ev != NULL ? f->end_ev->t_ms : NONE;
	char *text = malloc(TEXT_MAX), *clause = malloc(TEXT_MAX);
	char t0[WHEN_MAX], t1[WHEN_MAX], t2[WHEN_MAX], dur[32], p[32];
	struct started *st = malloc(sizeof(*st));
	struct when w;
	cJSON *j;
	int units;
	int64_t cover_ms;
	int rc = -1;

	if (text == NULL || clause == NULL || st == NULL)
		goto out;
	o->ref_ms = a->start_ms;
	when_of(a->start_ms, &w);

	/* Who and when. */
	snprintf(text, TEXT_MAX, "%s", a->id != NULL ? a->id : "?");
	line(o, "Activation", text);
	if (sess_end != NONE)
		snprintf(text, TEXT_MAX, "hour %d of cover session %s, which ran from %s to %s",
		         a->index + 1, a->session_id != NULL ? a->session_id : "?",
		         at(o, sess_start, t0), at(o, sess_end, t1));
	else
		snprintf(text, TEXT_MAX, "hour %d of cover session %s, which began at %s and is "
		         "still open", a->index + 1, a->session_id != NULL ? a->session_id : "?",
		         at(o, sess_start, t0));
	line(o, "Session", text);
	snprintf(text, TEXT_MAX, "policy %s, driver %s, vehicle %s",
	         a->policy_id != NULL ? a->policy_id : "none",
	         a->driver_id != NULL ? a->driver_id : "none",
	         a->vehicle_id != NULL ? a->vehicle_id : "none");
	line(o, "Insured", text);
	snprintf(text, TEXT_MAX, "%s %d %s %d; times in %s (%s), UTC beside",
	         pick(wday_long, 7, w.lt.tm_wday), w.lt.tm_mday, pick(mon_long, 12, w.lt.tm_mon),
	         w.lt.tm_year + 1900, zone != NULL && zone[0] != '\0' ? zone : "the system's zone",
	         w.abbr);
	line(o, "Date", text);

	/* The interval and the bill. */
	if (voided) {
		cover_ms = 0;
		units = 0;
		snprintf(text, TEXT_MAX, "none: this hour would have begun at %s",
		         at(o, a->start_ms, t0));
	} else if (open) {
		cover_ms = f->now_ms != NONE && f->now_ms > a->start_ms ? f->now_ms - a->start_ms : 0;
		units = 1;
		dur_text(dur, sizeof(dur), cover_ms);
		snprintf(text, TEXT_MAX, "from %s, still running (%s so far)", at(o, a->start_ms, t0),
		         dur);
	} else {
		cover_ms = a->end_ms - a->start_ms;
		units = 1;
		dur_text(dur, sizeof(dur), cover_ms);
		snprintf(text, TEXT_MAX, "%s to %s: %s", at(o, a->start_ms, t0), at(o, a->end_ms, t1),
		         dur);
	}
	line(o, "Cover", text);

	started_by(o, f, cfg, sess_start, st);
	line(o, "Started by", st->text);
	const char *alive = kept_alive(o, f, cfg, text, TEXT_MAX);
	line(o, "Kept alive", text);

	/* What ended it. */
	const char *ended = NULL;
	int64_t ended_at = NONE, ended_seen = NONE;
	bool facts = false;
	if (open) {
		snprintf(text, TEXT_MAX, "not yet: cover is still running");
		facts = true;
	} else if (hour_end) {
		ended = "hour";
		ended_at = a->end_ms;
		ended_seen = f->close_ev != NULL ? f->close_ev->t_ms : NONE;
		snprintf(text, TEXT_MAX, "this hour ran its full length to %s, and cover went on "
		         "into hour %d", at(o, a->end_ms, t0), a->index + 2);
		if (sess_end != NONE)
			append(text, TEXT_MAX, "; the session itself ended later, at %s",
			       at(o, sess_end, t1));
	} else if (voided) {
		ended = "voided";
		ended_at = sess_end;
		ended_seen = end_event;
		facts = true;
		session_end_words(o, f, cfg, sess_reason, sess_end, end_event, clause, TEXT_MAX);
		if (zero)
			snprintf(text, TEXT_MAX, "the session had no length: %s, at the very moment it "
			         "started, and no job had been accepted, so this hour is voided "
			         "(cancelled) and not billed", clause);
		else
			snprintf(text, TEXT_MAX, "cover had ended before this hour began at %s: %s. "
			         "The hour was opened at %s, before that end could be known, and has "
			         "been voided (cancelled): it is not billed", at(o, a->start_ms, t0),
			         clause, t0);
	} else {
		ended = a->end_reason;
		ended_at = a->end_ms;
		ended_seen = end_event;
		facts = true;
		session_end_words(o, f, cfg, a->end_reason, a->end_ms, end_event, text, TEXT_MAX);
		if (backdated)
			append(text, TEXT_MAX, ". This hour was first closed at its full length, at "
			       "%s, when the next hour began; once the end of cover was known, at %s, "
			       "it was closed again at that end", at(o, a->start_ms + cfg->unit_ms, t0),
			       at(o, end_event, t2));
	}
	line(o, "Ended by", text);
	if (facts) {
		snprintf(text, TEXT_MAX, "%s", open ? "so far, " : "");
		if (f->last_delivery_ms != NONE)
			append(text, TEXT_MAX, "last delivery %s; ", at(o, f->last_delivery_ms, t0));
		else
			append(text, TEXT_MAX, "no delivery in this session; ");
		if (f->last_app_ms != NONE)
			append(text, TEXT_MAX, "last app event %s; ", at(o, f->last_app_ms, t0));
		else
			append(text, TEXT_MAX, "no app event in this session; ");
		if (f->last_move_ms != NONE)
			append(text, TEXT_MAX, "last movement %s", at(o, f->last_move_ms, t0));
		else
			append(text, TEXT_MAX, "no movement recorded in this session");
		line(o, "Facts", text);
	}

	/* The billed consequence in one line. */
	dur_text(dur, sizeof(dur), cover_ms);
	if (voided && zero)
		snprintf(clause, TEXT_MAX, "0 units: a session of zero length with no job");
	else if (voided)
		snprintf(clause, TEXT_MAX, "0 units: voided, the session ended before this hour "
		         "began");
	else if (open && a->index == 0)
		snprintf(clause, TEXT_MAX, "1 unit billed: the first hour is billed whole, however "
		         "short (%s of cover so far)", dur);
	else if (open)
		snprintf(clause, TEXT_MAX, "1 unit billed: a started hour is a whole unit (%s of "
		         "cover so far)", dur);
	else if (a->index == 0 && cover_ms < cfg->unit_ms)
		snprintf(clause, TEXT_MAX, "1 unit billed for %s of cover: the minimum", dur);
	else if (cover_ms >= cfg->unit_ms)
		snprintf(clause, TEXT_MAX, "1 unit billed for %s of cover", dur);
	else
		snprintf(clause, TEXT_MAX, "1 unit billed for %s of cover: a started hour is a whole "
		         "unit", dur);
	line(o, "Billed", clause);

	dur_text(dur, sizeof(dur), a->moving_ms);
	snprintf(text, TEXT_MAX, "%.2f km driven, %s moving, %d job%s accepted in this hour",
	         isfinite(a->distance_m) ? a->distance_m / 1000.0 : 0.0, dur, a->jobs,
	         a->jobs == 1 ? "" : "s");
	line(o, "Activity", text);
	line(o, "Time source", tq_words(a->time_quality));
	anomalies_words(a->anomalies, text, TEXT_MAX);
	line(o, "Anomalies", text);
	if (o->err != 0)
		goto out;

	/* The same facts as fields. */
	param_text(p, sizeof(p), cfg->unit_ms);
	if (add_str_or_null(obj, "time_zone", zone) < 0)
		goto out;
	j = cJSON_AddObjectToObject(obj, "started_by");
	if (j == NULL || add_str_or_null(j, "reason", st->reason) < 0 ||
	    add_str_or_null(j, "cause", st->cause) < 0 || add_when(j, "at", sess_start) < 0 ||
	    (f->start_ev != NULL ? cJSON_AddNumberToObject(j, "event_id", (double)f->start_ev->id)
	                         : cJSON_AddNullToObject(j, "event_id")) == NULL)
		goto out;
	j = cJSON_AddObjectToObject(obj, "kept_alive_by");
	if (j == NULL || add_str_or_null(j, "reason", alive) < 0 ||
	    add_when(j, "since", alive == NULL ? NONE : a->index == 0 ? a->start_ms
	                                                              : a->alive_since_ms) < 0 ||
	    add_when(j, "hour_start", a->start_ms) < 0)
		goto out;
	j = cJSON_AddObjectToObject(obj, "ended_by");
	if (j == NULL || add_str_or_null(j, "reason", ended) < 0 || add_when(j, "at", ended_at) < 0 ||
	    add_when(j, "event_at", ended_seen) < 0 ||
	    add_when(j, "last_delivery", facts ? f->last_delivery_ms : NONE) < 0 ||
	    add_when(j, "last_app_event", facts ? f->last_app_ms : NONE) < 0 ||
	    add_when(j, "last_movement", facts ? f->last_move_ms : NONE) < 0)
		goto out;
	j = cJSON_AddObjectToObject(obj, "session");
	if (j == NULL || add_when(j, "start", sess_start) < 0 || add_when(j, "end", sess_end) < 0 ||
	    add_str_or_null(j, "end_reason", sess_reason) < 0)
		goto out;
	if (cJSON_AddNumberToObject(obj, "billed_units", units) == NULL ||
	    cJSON_AddNumberToObject(obj, "cover_seconds", (double)cover_ms / 1000.0) == NULL ||
	    cJSON_AddStringToObject(obj, "billing", clause) == NULL)
		goto out;
	rc = 0;
out:
	free(text);
	free(clause);
	free(st);
	return rc;
}

cJSON *explain_render(const struct explain_facts *f, const struct engine_config *cfg,
                      const char *zone)
{
	struct engine_config defaults;
	struct zone_guard g;
	struct out o = { 0 };
	cJSON *obj, *item;

	if (f == NULL || f->act == NULL)
		return NULL;
	if (cfg == NULL) {
		engine_config_defaults(&defaults);
		cfg = &defaults;
	}
	obj = cJSON_CreateObject();
	if (obj == NULL)
		return NULL;
	item = render_activation(f->act);
	if (item == NULL || !cJSON_AddItemToObject(obj, "activation", item))
		goto fail_item;
	item = f->open_ev != NULL ? render_event(f->open_ev) : cJSON_CreateNull();
	if (item == NULL || !cJSON_AddItemToObject(obj, "open_event", item))
		goto fail_item;
	item = f->close_ev != NULL ? render_event(f->close_ev) : cJSON_CreateNull();
	if (item == NULL || !cJSON_AddItemToObject(obj, "close_event", item))
		goto fail_item;
	o.lines = cJSON_CreateArray();
	o.statement = calloc(1, STATEMENT_MAX);
	if (o.lines == NULL || o.statement == NULL)
		goto fail_lines;
	if (zone_enter(&g, zone) != 0)
		goto fail_lines;
	int rc = render_body(obj, &o, f, cfg, zone);
	zone_leave(&g);
	if (rc < 0 || o.err != 0)
		goto fail_lines;
	if (!cJSON_AddItemToObject(obj, "lines", o.lines))
		goto fail_lines;
	o.lines = NULL;
	if (cJSON_AddStringToObject(obj, "statement", o.statement) == NULL)
		goto fail_lines;
	free(o.statement);
	return obj;

fail_lines:
	cJSON_Delete(o.lines);
	free(o.statement);
	cJSON_Delete(obj);
	return NULL;
fail_item:
	cJSON_Delete(item);
	cJSON_Delete(obj);
	return NULL;
}

/* ---- reading the store --------------------------------------------------------------- */

/* Deep copies of store rows, whose strings live only during the callback. */
static int dup_str(const char **field, char **keep)
{
	*keep = NULL;
	if (*field == NULL)
		return 0;
	*keep = strdup(*field);
	*field = *keep;
	return *keep != NULL ? 0 : -ENOMEM;
}

static void free_strs(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i]);
		s[i] = NULL;
	}
}

struct act_copy {
	bool found;
	struct store_activation_row r;
	char *s[10];
};

static int act_copy_cb(void *ctx, const struct store_activation_row *r)
{
	struct act_copy *a = ctx;
	const char **f[10] = { &a->r.id, &a->r.session_id, &a->r.policy_id, &a->r.driver_id,
		               &a->r.vehicle_id, &a->r.status, &a->r.end_reason,
		               &a->r.time_quality, &a->r.open_rule, &a->r.close_rule };

	free_strs(a->s, 10);
	a->r = *r;
	a->found = true;
	for (int i = 0; i < 10; i++)
		if (dup_str(f[i], &a->s[i]) < 0)
			return -ENOMEM;
	return 0;
}

struct ev_copy {
	bool found;
	struct store_event_row r;
	char *s[5];
};

static int ev_copy_cb(void *ctx, const struct store_event_row *r)
{
	struct ev_copy *e = ctx;
	const char **f[5] = { &e->r.source, &e->r.type, &e->r.json, &e->r.status, &e->r.reason };

	free_strs(e->s, 5);
	e->r = *r;
	e->found = true;
	for (int i = 0; i < 5; i++)
		if (dup_str(f[i], &e->s[i]) < 0)
			return -ENOMEM;
	return 1;
}

/* Loads journal row id into e; a missing row (or id 0) leaves found false. */
static int get_event(struct store *st, int64_t id, struct ev_copy *e)
{
	if (id <= 0)
		return 0;
	int r = store_event_get(st, id, ev_copy_cb, e);
	return r == -ENOENT || r > 0 ? 0 : r;
}

/* The session's activations: activation 0's opening and the last one's closing. */
struct acts_walk {
	bool have0;
	int64_t start_ms, open0_event;
	char *start_rule;
	int last_index;
	int64_t last_close_event;
	int err;
};

static int acts_cb(void *ctx, const struct store_activation_row *r)
{
	struct acts_walk *w = ctx;

	if (r->index == 0) {
		w->have0 = true;
		w->start_ms = r->start_ms;
		w->open0_event = r->open_event_id;
		free(w->start_rule);
		w->start_rule = r->open_rule != NULL ? strdup(r->open_rule) : NULL;
		if (r->open_rule != NULL && w->start_rule == NULL)
			return -ENOMEM;
	}
	if (r->index > w->last_index) {
		w->last_index = r->index;
		w->last_close_event = r->close_event_id;
	}
	return 0;
}

struct sess_walk {
	const char *id;
	int64_t start_ms;           /* the session's start, NONE when not known */
	bool found, after_max_session;
	struct store_session_row r;
	char *s[6];
};

static int sess_cb(void *ctx, const struct store_session_row *r)
{
	struct sess_walk *w = ctx;
	const char **f[6] = { &w->r.id, &w->r.policy_id, &w->r.driver_id, &w->r.vehicle_id,
		              &w->r.trigger, &w->r.end_reason };

	if (w->start_ms != NONE && !r->open && r->end_ms == w->start_ms &&
	    eq(r->end_reason, "max_session") && !eq(r->id, w->id))
		w->after_max_session = true;
	if (!eq(r->id, w->id))
		return 0;
	w->r = *r;
	w->found = true;
	for (int i = 0; i < 6; i++)
		if (dup_str(f[i], &w->s[i]) < 0)
			return -ENOMEM;
	return 0;
}

/* The last applied app event up to t_max, of one of the names (NULL: any). */
struct last_app {
	int64_t t_max;
	const char *const *names;
	int64_t t;
	char name[32];
};

static int last_app_cb(void *ctx, const struct store_event_row *r)
{
	struct last_app *l = ctx;
	char name[32];

	if (!eq(r->status, "applied") || r->t_ms > l->t_max)
		return 0;
	event_name(r, name, sizeof(name));
	if (l->names != NULL) {
		bool match = false;
		for (const char *const *n = l->names; *n != NULL; n++)
			match = match || strcmp(*n, name) == 0;
		if (!match)
			return 0;
	}
	l->t = r->t_ms;
	snprintf(l->name, sizeof(l->name), "%s", name);
	return 1;
}

static int find_app(struct store *st, int64_t from_id, int64_t to_id, int64_t t_max,
                    const char *const *names, struct last_app *l)
{
	l->t_max = t_max;
	l->names = names;
	l->t = NONE;
	l->name[0] = '\0';
	if (from_id > to_id)
		return 0;
	int r = store_events_back(st, from_id, to_id, "app", last_app_cb, l);
	return r > 0 ? 0 : r;
}

struct last_move {
	const struct engine_config *cfg;
	int64_t t;
};

/* A moving point as the engine judged it: an accepted fix at move_speed or more. */
static int last_move_cb(void *ctx, const char *sid, int64_t t, const struct engine_fix *fx)
{
	struct last_move *l = ctx;

	(void)sid;
	if (fx->mode >= 2 && isfinite(fx->eph_m) && fx->eph_m <= l->cfg->max_eph_m &&
	    isfinite(fx->speed_mps) && fx->speed_mps >= l->cfg->move_speed_mps && t > l->t)
		l->t = t;
	return 0;
}

/* Rules found only once their deadline has passed: the event that showed it is no fact. */
static bool deadline_reason(const char *reason)
{
	return eq(reason, "gap_end") || eq(reason, "idle_end") || eq(reason, "app_silence") ||
	       eq(reason, "max_session") || eq(reason, "job_timeout");
}

int explain_build(struct store *st, const char *activation_id, const struct engine_state *live,
                  const struct engine_config *cfg, const char *zone, cJSON **out)
{
	static const char *const job_ends[] = { "job_delivered", "job_cancelled", NULL };
	struct engine_config defaults;
	struct act_copy act = { 0 };
	struct acts_walk aw = { .last_index = -1, .start_ms = NONE };
	struct sess_walk sw = { 0 };
	struct ev_copy start_ev = { 0 }, open_ev = { 0 }, close_ev = { 0 }, end_ev = { 0 };
	struct explain_facts f;
	struct last_app la;
	char grace_event[32] = "", delivery_event[32] = "";
	int r;

	if (st == NULL || activation_id == NULL || out == NULL)
		return -EINVAL;
	*out = NULL;
	if (cfg == NULL) {
		engine_config_defaults(&defaults);
		cfg = &defaults;
	}
	r = store_activation_get(st, activation_id, act_copy_cb, &act);
	if (r < 0)
		goto done;
	if (!act.found) {
		r = -ENOENT;
		goto done;
	}
	if (act.r.session_id == NULL) {
		/* The schema makes this impossible; a NULL would list every session's rows. */
		r = -EIO;
		goto done;
	}
	(void)render_overlay_live(&act.r, live);
	r = store_activations(st, act.r.session_id, acts_cb, &aw);
	if (r < 0)
		goto done;
	sw.id = act.r.session_id;
	sw.start_ms = aw.have0 ? aw.start_ms : NONE;
	r = store_sessions(st, sess_cb, &sw);
	if (r < 0)
		goto done;
	bool sess_open = sw.found ? sw.r.open : act.r.end_ms == 0;
	if ((r = get_event(st, aw.open0_event, &start_ev)) < 0 ||
	    (r = get_event(st, act.r.open_event_id, &open_ev)) < 0 ||
	    (r = get_event(st, act.r.close_event_id, &close_ev)) < 0 ||
	    (!sess_open && (r = get_event(st, aw.last_close_event, &end_ev)) < 0))
		goto done;

	memset(&f, 0, sizeof(f));
	f.act = &act.r;
	f.sess = sw.found ? &sw.r : NULL;
	f.start_rule = aw.start_rule;
	f.start_ev = start_ev.found ? &start_ev.r : NULL;
	f.open_ev = open_ev.found ? &open_ev.r : NULL;
	f.close_ev = close_ev.found ? &close_ev.r : NULL;
	f.end_ev = end_ev.found ? &end_ev.r : NULL;
	f.after_max_session = sw.after_max_session;
	f.open = sess_open;
	f.last_delivery_ms = f.last_app_ms = f.last_move_ms = f.now_ms = NONE;

	int64_t from_id = aw.open0_event > 0 ? aw.open0_event : 1;
	if (sess_open && live != NULL && live->s.open && eq(live->s.id, act.r.session_id)) {
		/* The engine's own record so far; what came before the session is not its. */
		int64_t s0 = live->s.start_ms;
		f.last_delivery_ms = live->last_job_end_ms >= s0 ? live->last_job_end_ms : NONE;
		f.last_app_ms = live->last_app_ms >= s0 ? live->last_app_ms : NONE;
		f.last_move_ms = live->last_move_ms >= s0 ? live->last_move_ms : NONE;
		f.now_ms = live->last_t_ms;
	} else {
		int64_t to_id = INT64_MAX;
		int64_t end_ms = INT64_MAX;
		if (!sess_open && f.end_ev != NULL)
			to_id = deadline_reason(sw.r.end_reason) ? f.end_ev->id - 1 : f.end_ev->id;
		if (!sess_open && sw.found)
			end_ms = sw.r.end_ms;
		/* No delivery after cover ended matters: it could only be a duplicate. */
		if ((r = find_app(st, from_id, to_id, end_ms, job_ends, &la)) < 0)
			goto done;
		f.last_delivery_ms = la.t;
		snprintf(delivery_event, sizeof(delivery_event), "%s", la.name);
		if ((r = find_app(st, from_id, to_id, INT64_MAX, NULL, &la)) < 0)
			goto done;
		f.last_app_ms = la.t;
		struct last_move lm = { .cfg = cfg, .t = NONE };
		if ((r = store_track(st, act.r.session_id, last_move_cb, &lm)) < 0)
			goto done;
		f.last_move_ms = lm.t;
	}
	f.last_delivery_event = delivery_event[0] != '\0' ? delivery_event : NULL;
	if (act.r.alive == ALIVE_GRACE && act.r.alive_since_ms != NONE) {
		/* The grace runs from the last job end, or from the app's return after a silence
		 * that outlived it: the journal tells which. */
		int64_t to_id = act.r.open_event_id > 0 ? act.r.open_event_id : INT64_MAX;
		if ((r = find_app(st, from_id, to_id, act.r.alive_since_ms, job_ends, &la)) < 0)
			goto done;
		if (la.t == act.r.alive_since_ms) {
			snprintf(grace_event, sizeof(grace_event), "%s", la.name);
			f.grace_event = grace_event;
		}
	}
	*out = explain_render(&f, cfg, zone);
	r = *out != NULL ? 0 : -ENOMEM;
done:
	free_strs(act.s, 10);
	free_strs(sw.s, 6);
	free_strs(start_ev.s, 5);
	free_strs(open_ev.s, 5);
	free_strs(close_ev.s, 5);
	free_strs(end_ev.s, 5);
	free(aw.start_rule);
	return r;
}
