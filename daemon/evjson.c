/*
 * evjson.c - the event JSON codec shared by scenario files and the local socket.
 *
 * Input is strict: every field is checked for type and range, unknown or repeated
 * fields are refused, and each error names the field and the reason, because a
 * scenario author or an app developer must be able to fix the line from the message
 * alone. Times are converted with civil-calendar arithmetic rather than timegm() or
 * mktime(), which depend on the TZ environment and are not in C11.
 */
#include "evjson.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define MS_PER_DAY 86400000LL

/* ---------------------------------------------------------------- time */

/*
 * Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil). Exact for every year an int64 millisecond count can reach.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;                                   /* [0, 399] */
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads exactly n decimal digits; returns -1 when any of them is not a digit. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int evjson_parse_time(const char *s, int64_t *ms_out)
{
	if (s == NULL || ms_out == NULL)
		return -EINVAL;
	/* The fixed part "YYYY-MM-DDTHH:MM:SS" is 19 characters; digits() stops at a NUL. */
	if (strnlen(s, 20) < 20)
		return -EINVAL;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0)
		return -EINVAL;
	if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
	    s[16] != ':')
		return -EINVAL;
	/* Leap seconds (":60") cannot be represented on a POSIX timeline, so they are refused. */
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || se > 59)
		return -EINVAL;

	const char *p = s + 19;
	int64_t frac_ms = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		/* Digits beyond milliseconds are accepted and truncated, so that formatting the
		 * result gives back the same millisecond. More than nine is not a real clock. */
		while (*p >= '0' && *p <= '9') {
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0 || n > 9)
			return -EINVAL;
		for (; n < 3; n++)
			frac_ms *= 10;
	}

	int64_t offset_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		if (strnlen(p, 6) < 6 || p[3] != ':')
			return -EINVAL;
		int oh = digits(p + 1, 2), om = digits(p + 4, 2);
		if (oh < 0 || om < 0 || oh > 23 || om > 59)
			return -EINVAL;
		offset_min = sign * (oh * 60 + om);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;

	int64_t days = days_from_civil(y, mo, d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
	*ms_out = secs * 1000 + frac_ms;
	return 0;
}

void evjson_format_time(int64_t ms, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	/* Floor division keeps times before 1970 on the right day and second. */
	int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
	if (rem < 0) {
		rem += MS_PER_DAY;
		days--;
	}
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60);
	int frac = (int)(rem % 1000);
	if (frac != 0)
		snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d, h,
		         mi, s, frac);
	else
		snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, h, mi, s);
}

/* ---------------------------------------------------------------- errors */

/* Appends to err like snprintf, keeping it NUL-terminated whatever happens. */
static void err_append(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void err_append(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	size_t used = strnlen(err, errlen - 1);
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
	if (r < 0)
		err[used] = '\0';
}

/*
 * Appends a string value in double quotes, with control and non-ASCII bytes shown as
 * \xNN and long values cut, so that a hostile value cannot forge log lines or replies.
 */
static void err_append_quoted(char *err, size_t errlen, const char *s)
{
	enum { SHOW_MAX = 64 };
	err_append(err, errlen, "\"");
	size_t i;
	for (i = 0; s[i] != '\0' && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			err_append(err, errlen, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			err_append(err, errlen, "\\x%02x", c);
		else
			err_append(err, errlen, "%c", c);
	}
	err_append(err, errlen, s[i] != '\0' ? "...\"" : "\"");
}

/* Formats a double with the fewest digits that read back to the same value. */
static void format_number(double v, char *buf, size_t len)
{
	/* %g switches to an exponent once the precision is below the number of integer
	 * digits ("-9e+01" for -90); that form is kept only where even %.17g would use it. */
	bool allow_exp = v != 0 && (fabs(v) < 1e-4 || fabs(v) >= 1e17);
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if ((allow_exp || strchr(buf, 'e') == NULL) && strtod(buf, NULL) == v)
			return;
	}
}

static void err_field(char *err, size_t errlen, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void err_field(char *err, size_t errlen, const char *field, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	err[0] = '\0';
	err_append(err, errlen, "field ");
	err_append_quoted(err, errlen, field);
	err_append(err, errlen, ": ");
	size_t used = strnlen(err, errlen - 1);
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
	if (r < 0)
		err[used] = '\0';
}

static const char *json_type_name(const cJSON *it)
{
	if (cJSON_IsString(it))
		return "a string";
	if (cJSON_IsNumber(it))
		return "a number";
	if (cJSON_IsBool(it))
		return "a boolean";
	if (cJSON_IsNull(it))
		return "null";
	if (cJSON_IsArray(it))
		return "an array";
	if (cJSON_IsObject(it))
		return "an object";
	return "an invalid value";
}

/* ---------------------------------------------------------------- fields */

struct ctx {
	const cJSON *obj;
	char *err;
	size_t errlen;
};

static void err_type(struct ctx *c, const char *field, const cJSON *it, const char *want)
{
	err_field(c->err, c->errlen, field, "expected %s, got %s", want, json_type_name(it));
}

/* Looks up a field; returns 1 and the item when present, 0 when absent. */
static int get(struct ctx *c, const char *field, const cJSON **out)
{
	*out = cJSON_GetObjectItemCaseSensitive(c->obj, field);
	return *out != NULL;
}

/* A required or optional string field. Returns 1 present, 0 absent, -1 error. */
static int get_string(struct ctx *c, const char *field, bool required, const char **out)
{
	const cJSON *it;
	if (!get(c, field, &it)) {
		if (required) {
			err_field(c->err, c->errlen, field, "missing");
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsString(it) || it->valuestring == NULL) {
		err_type(c, field, it, "a string");
		return -1;
	}
	*out = it->valuestring;
	return 1;
}

static int get_bool(struct ctx *c, const char *field, bool required, bool *out)
{
	const cJSON *it;
	if (!get(c, field, &it)) {
		if (required) {
			err_field(c->err, c->errlen, field, "missing");
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsBool(it)) {
		err_type(c, field, it, "true or false");
		return -1;
	}
	*out = cJSON_IsTrue(it);
	return 1;
}

/*
 * A number within [lo, hi] (hi_open: [lo, hi)). Absent optional numbers leave *out alone.
 * JSON cannot spell NaN, but cJSON turns an overlong exponent into infinity, hence the
 * finiteness check.
 */
static int get_number(struct ctx *c, const char *field, bool required, double lo, double hi,
                      bool hi_open, double *out)
{
	const cJSON *it;
	if (!get(c, field, &it)) {
		if (required) {
			err_field(c->err, c->errlen, field, "missing");
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsNumber(it)) {
		err_type(c, field, it, "a number");
		return -1;
	}
	double v = it->valuedouble;
	char num[40], los[40], his[40];
	/* Formatting is for the error text only; on the hot path (every fix) it is skipped. */
	if (isfinite(v) && v >= lo && v <= hi && !(hi_open && v >= hi)) {
		*out = v;
		return 1;
	}
	format_number(v, num, sizeof(num));
	if (!isfinite(v)) {
		err_field(c->err, c->errlen, field, "%s is not a finite number", num);
		return -1;
	}
	if (v < lo || v > hi || (hi_open && v >= hi)) {
		format_number(lo, los, sizeof(los));
		if (isinf(hi)) {
			err_field(c->err, c->errlen, field, "%s is out of range (must be >= %s)", num,
			          los);
		} else {
			format_number(hi, his, sizeof(his));
			err_field(c->err, c->errlen, field, "%s is out of range [%s, %s%c", num, los,
			          his, hi_open ? ')' : ']');
		}
		return -1;
	}
	*out = v;
	return 1;
}

/* An identifier of 1..cap-1 printable ASCII characters, copied into out[cap]. */
static int get_ident(struct ctx *c, const char *field, bool required, char *out, size_t cap)
{
	const char *s = NULL;
	int r = get_string(c, field, required, &s);
	if (r <= 0)
		return r;
	size_t n = strlen(s);
	if (n == 0) {
		err_field(c->err, c->errlen, field, "is empty");
		return -1;
	}
	if (n > cap - 1) {
		err_field(c->err, c->errlen, field, "is %zu characters long (limit %zu)", n, cap - 1);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch > 0x7e) {
			err_field(c->err, c->errlen, field,
			          "character %zu (\\x%02x) is not printable ASCII", i + 1, ch);
			return -1;
		}
	}
	memcpy(out, s, n + 1);
	return 1;
}

/* A policy, driver or vehicle id: 1..ENGINE_ID_MAX-1 printable ASCII characters. */
static int get_id(struct ctx *c, const char *field, bool required, char out[ENGINE_ID_MAX])
{
	return get_ident(c, field, required, out, ENGINE_ID_MAX);
}

/* ---------------------------------------------------------------- event types */

/* The fields each type accepts besides the common ones; NULL-terminated. */
static const char *const common_fields[] = { "t", "type", "tq", "clock_step", "id", NULL };
static const char *const app_fields[] = { "event", "mock", "job_id", NULL };
static const char *const fix_fields[] = { "lat", "lon", "speed", "course", "eph", "mode",
	                                  "mock", NULL };
static const char *const policy_fields[] = { "event", "policy_id", "driver_id", "vehicle_id",
	                                     NULL };
static const char *const ignition_fields[] = { "on", NULL };
static const char *const event_only_fields[] = { "event", NULL };
static const char *const no_fields[] = { NULL };

struct type_desc {
	const char *name;
	enum engine_event_type type;
	enum evjson_kind kind;
	const char *const *fields;
};

static const struct type_desc types[] = {
	{ "app", COV_EV_APP, EVJSON_ENGINE, app_fields },
	{ "fix", COV_EV_FIX, EVJSON_ENGINE, fix_fields },
	{ "policy", COV_EV_POLICY, EVJSON_ENGINE, policy_fields },
	{ "ignition", COV_EV_IGNITION, EVJSON_ENGINE, ignition_fields },
	{ "power", COV_EV_POWER, EVJSON_ENGINE, event_only_fields },
	{ "cmd", COV_EV_CMD, EVJSON_ENGINE, event_only_fields },
	{ "tick", COV_EV_TICK, EVJSON_ENGINE, no_fields },
	{ "restart", COV_EV_TICK, EVJSON_RESTART, no_fields },
};

static bool in_list(const char *const *list, const char *name)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, name) == 0)
			return true;
	return false;
}

/* Refuses unknown and repeated fields: cJSON keeps both copies of a repeated name and
 * would silently use the first, which hides a mistake in the input. */
static int check_fields(struct ctx *c, const struct type_desc *td)
{
	for (const cJSON *it = c->obj->child; it != NULL; it = it->next) {
		const char *name = it->string != NULL ? it->string : "";
		if (!in_list(common_fields, name) && !in_list(td->fields, name)) {
			err_field(c->err, c->errlen, name, "unknown field for type \"%s\"", td->name);
			return -1;
		}
		for (const cJSON *o = it->next; o != NULL; o = o->next) {
			if (o->string != NULL && strcmp(o->string, name) == 0) {
				err_field(c->err, c->errlen, name, "appears more than once");
				return -1;
			}
		}
	}
	return 0;
}

static int get_mock(struct ctx *c, struct engine_event *ev)
{
	bool mock = false;
	int r = get_bool(c, "mock", false, &mock);
	if (r < 0)
		return -1;
	if (mock)
		ev->anomalies |= ANOM_MOCK_LOCATION;
	return 0;
}

static int parse_app(struct ctx *c, struct engine_event *ev)
{
	const char *name;
	if (get_string(c, "event", true, &name) < 0)
		return -1;
	if (engine_app_event_parse(name, &ev->u.app) != 0) {
		err_field(c->err, c->errlen, "event", "unknown app event ");
		err_append_quoted(c->err, c->errlen, name);
		return -1;
	}
	/* Only the four job events name a job; a job_id elsewhere would look meaningful and
	 * be ignored, which hides a mistake in the app. */
	const cJSON *it;
	if (get(c, "job_id", &it)) {
		enum engine_app_event e = ev->u.app;
		if (e != APP_JOB_ACCEPTED && e != APP_JOB_PICKED_UP && e != APP_JOB_DELIVERED &&
		    e != APP_JOB_CANCELLED) {
			err_field(c->err, c->errlen, "job_id", "not allowed with \"event\": ");
			err_append_quoted(c->err, c->errlen, name);
			err_append(c->err, c->errlen, " (only with job_accepted, job_picked_up, "
			           "job_delivered or job_cancelled)");
			return -1;
		}
		if (get_ident(c, "job_id", true, ev->job_id, sizeof(ev->job_id)) < 0)
			return -1;
	}
	return get_mock(c, ev);
}

static int parse_fix(struct ctx *c, struct engine_event *ev)
{
	struct engine_fix *f = &ev->u.fix;
	f->speed_mps = NAN;
	f->course_deg = NAN;
	f->eph_m = NAN;
	if (get_number(c, "lat", true, -90, 90, false, &f->lat) < 0 ||
	    get_number(c, "lon", true, -180, 180, false, &f->lon) < 0 ||
	    get_number(c, "speed", false, 0, INFINITY, false, &f->speed_mps) < 0 ||
	    get_number(c, "course", false, 0, 360, true, &f->course_deg) < 0 ||
	    get_number(c, "eph", false, 0, INFINITY, false, &f->eph_m) < 0)
		return -1;
	double mode = 3;
	if (get_number(c, "mode", false, 1, 3, false, &mode) < 0)
		return -1;
	if (mode != floor(mode)) {
		char num[40];
		format_number(mode, num, sizeof(num));
		err_field(c->err, c->errlen, "mode", "%s is not an integer (1, 2 or 3)", num);
		return -1;
	}
	f->mode = (int)mode;
	return get_mock(c, ev);
}

static int parse_policy(struct ctx *c, struct engine_event *ev)
{
	struct engine_policy *p = &ev->u.policy;
	const char *name;
	if (get_string(c, "event", true, &name) < 0)
		return -1;
	if (strcmp(name, "assign") == 0) {
		p->assign = true;
		if (get_id(c, "policy_id", true, p->policy_id) < 0 ||
		    get_id(c, "driver_id", false, p->driver_id) < 0 ||
		    get_id(c, "vehicle_id", false, p->vehicle_id) < 0)
			return -1;
		return 0;
	}
	if (strcmp(name, "revoke") == 0) {
		p->assign = false;
		/* A revocation may name the policy it ends; driver and vehicle belong only to an
		 * assignment, and accepting them here would suggest they mean something. */
		const cJSON *it;
		if (get(c, "driver_id", &it) || get(c, "vehicle_id", &it)) {
			err_field(c->err, c->errlen, it->string,
			          "not allowed with \"event\": \"revoke\"");
			return -1;
		}
		return get_id(c, "policy_id", false, p->policy_id) < 0 ? -1 : 0;
	}
	err_field(c->err, c->errlen, "event", "unknown policy event ");
	err_append_quoted(c->err, c->errlen, name);
	err_append(c->err, c->errlen, " (assign or revoke)");
	return -1;
}

static int parse_power(struct ctx *c, struct engine_event *ev)
{
	const char *name;
	if (get_string(c, "event", true, &name) < 0)
		return -1;
	if (strcmp(name, "low") == 0)
		ev->u.power = POWER_LOW;
	else if (strcmp(name, "shutdown") == 0)
		ev->u.power = POWER_SHUTDOWN;
	else if (strcmp(name, "restored") == 0)
		ev->u.power = POWER_RESTORED;
	else {
		err_field(c->err, c->errlen, "event", "unknown power event ");
		err_append_quoted(c->err, c->errlen, name);
		err_append(c->err, c->errlen, " (low, shutdown or restored)");
		return -1;
	}
	return 0;
}

static int parse_cmd(struct ctx *c, struct engine_event *ev)
{
	const char *name;
	if (get_string(c, "event", true, &name) < 0)
		return -1;
	if (strcmp(name, "end_cover") != 0) {
		err_field(c->err, c->errlen, "event", "unknown command ");
		err_append_quoted(c->err, c->errlen, name);
		err_append(c->err, c->errlen, " (end_cover)");
		return -1;
	}
	ev->u.cmd = CMD_END_COVER;
	return 0;
}

static int parse_object(struct ctx *c, int require_time, struct engine_event *ev,
                        enum evjson_kind *kind, struct evjson_meta *meta)
{
	const char *tname;
	if (get_string(c, "type", true, &tname) < 0)
		return -1;
	const struct type_desc *td = NULL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i].name, tname) == 0)
			td = &types[i];
	if (td == NULL) {
		err_field(c->err, c->errlen, "type", "unknown event type ");
		err_append_quoted(c->err, c->errlen, tname);
		return -1;
	}
	if (check_fields(c, td) < 0)
		return -1;

	memset(ev, 0, sizeof(*ev));
	ev->t_ms = INT64_MIN;
	ev->type = td->type;
	ev->tq = TQ_GNSS;

	const char *ts;
	int r = get_string(c, "t", require_time != 0, &ts);
	if (r < 0)
		return -1;
	if (r > 0 && evjson_parse_time(ts, &ev->t_ms) != 0) {
		err_field(c->err, c->errlen, "t", "%s", "");   /* the value follows, quoted */
		err_append_quoted(c->err, c->errlen, ts);
		err_append(c->err, c->errlen, " is not an RFC 3339 UTC time");
		return -1;
	}
	const char *tq;
	r = get_string(c, "tq", false, &tq);
	if (r < 0)
		return -1;
	if (r > 0 && engine_tq_parse(tq, &ev->tq) != 0) {
		err_field(c->err, c->errlen, "tq", "unknown time quality ");
		err_append_quoted(c->err, c->errlen, tq);
		err_append(c->err, c->errlen, " (gnss, ntp, rtc or unsynced)");
		return -1;
	}
	bool step = false;
	if (get_bool(c, "clock_step", false, &step) < 0)
		return -1;
	if (step)
		ev->anomalies |= ANOM_CLOCK_STEP;
	meta->id[0] = '\0';
	if (get_ident(c, "id", false, meta->id, sizeof(meta->id)) < 0)
		return -1;

	*kind = td->kind;
	switch (td->type) {
	case COV_EV_APP:
		return parse_app(c, ev);
	case COV_EV_FIX:
		return parse_fix(c, ev);
	case COV_EV_POLICY:
		return parse_policy(c, ev);
	case COV_EV_IGNITION:
		return get_bool(c, "on", true, &ev->u.ignition_on) < 0 ? -1 : 0;
	case COV_EV_POWER:
		return parse_power(c, ev);
	case COV_EV_CMD:
		return parse_cmd(c, ev);
	case COV_EV_TICK:
		return 0;
	}
	return 0;
}

static bool is_json_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

int evjson_skip_line(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && is_json_space(line[i]))
		i++;
	return i == len || line[i] == '#';
}

int evjson_parse(const char *line, size_t len, int require_time, struct engine_event *ev,
                 enum evjson_kind *kind, char *err, size_t errlen)
{
	return evjson_parse_meta(line, len, require_time, ev, kind, NULL, err, errlen);
}

int evjson_parse_meta(const char *line, size_t len, int require_time, struct engine_event *ev,
                      enum evjson_kind *kind, struct evjson_meta *meta, char *err,
                      size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (line == NULL || ev == NULL || kind == NULL) {
		err_append(err, errlen, "internal error: NULL argument");
		return -EINVAL;
	}
	if (len > EVJSON_LINE_MAX) {
		err_append(err, errlen, "line too long (%zu bytes, limit %d)", len, EVJSON_LINE_MAX);
		return -EINVAL;
	}
	size_t start = 0;
	while (start < len && is_json_space(line[start]))
		start++;
	if (start == len) {
		err_append(err, errlen, "empty line: not a JSON object");
		return -EINVAL;
	}
	if (line[start] != '{') {
		err_append(err, errlen, "not a JSON object");
		return -EINVAL;
	}

	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(line + start, len - start, &end, 0);
	if (root == NULL) {
		const char *at = cJSON_GetErrorPtr();
		size_t off = at != NULL && at >= line && at <= line + len ? (size_t)(at - line) : len;
		err_append(err, errlen, "not a JSON object: syntax error at byte %zu", off + 1);
		return -EINVAL;
	}
	int rc = 0;
	for (const char *p = end; p != NULL && p < line + len; p++) {
		if (!is_json_space(*p)) {
			err_append(err, errlen, "trailing characters after the JSON object at byte %zu",
			           (size_t)(p - line) + 1);
			rc = -EINVAL;
			break;
		}
	}
	if (rc == 0 && !cJSON_IsObject(root)) {
		err_append(err, errlen, "not a JSON object");
		rc = -EINVAL;
	}
	if (rc == 0) {
		struct ctx c = { .obj = root, .err = err, .errlen = errlen };
		struct engine_event tmp;
		struct evjson_meta m;
		enum evjson_kind k = EVJSON_ENGINE;
		/* Parse into a scratch event so that a failure leaves *ev untouched. */
		if (parse_object(&c, require_time, &tmp, &k, &m) < 0) {
			rc = -EINVAL;
		} else {
			*ev = tmp;
			*kind = k;
			if (meta != NULL)
				*meta = m;
		}
	}
	cJSON_Delete(root);
	return rc;
}
