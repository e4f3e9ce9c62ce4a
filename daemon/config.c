/*
 * config.c - the configuration file, read with inih.
 *
 * Every key lives in one table (section, name, type, field, range), which drives the
 * parser, the range checks, the normalised printer and, through the tests, the
 * documentation check; a key added here without docs fails the tests.
 *
 * inih calls a handler per key but, as Debian builds it, does not pass the line number.
 * The file is therefore fed to ini_parse_stream() through a reader of our own that counts
 * lines, strips leading blanks (so that an indented key is not taken for a continuation
 * of the previous value, a multi-line feature coverd does not use) and refuses a line too
 * long for inih's buffer instead of letting inih split it silently.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

enum key_type {
	KT_TOKEN,      /* [A-Za-z0-9._-], first character alphanumeric */
	KT_TRIGGER,
	KT_DURATION,   /* int64_t milliseconds */
	KT_DURATION_S, /* int seconds, written and read as a duration */
	KT_NUMBER,     /* double; lo exclusive, hi inclusive */
	KT_PATH,       /* absolute path, or empty when allowed */
	KT_HOST,       /* host name or address */
	KT_PORT,       /* char[16] holding 1..65535 */
	KT_INT,        /* int */
	KT_INT64,      /* int64_t */
	KT_MODE,       /* unsigned, octal, <= 0777 */
	KT_GNSS_SOURCE,
	KT_LOG_LEVEL,
	KT_BOOL,
	KT_PROTOCOL,   /* MQTT protocol version: 5 or 311 */
	KT_TIME_ZONE,  /* an IANA zone name, or empty: config_check_time_zone() */
};

#define KF_EMPTY_OK 0x1u   /* an empty value is valid and means "derived" or "unset" */
#define KF_HI_OPEN 0x2u    /* numbers: the upper bound itself is out of range */

struct key_desc {
	const char *section;
	const char *name;
	const char *field;     /* the struct member name, for matching engine_config_check() */
	enum key_type type;
	size_t off;
	size_t size;           /* string fields: buffer size */
	double lo, hi;         /* numbers and durations (ms); integers */
	unsigned flags;
};

#define OFF(m) offsetof(struct coverd_config, m)
#define SZ(m) sizeof(((struct coverd_config *)0)->m)
#define H (3600.0 * 1000)
#define M (60.0 * 1000)
#define S 1000.0

static const struct key_desc keys[] = {
	{ "device", "id", "device_id", KT_TOKEN, OFF(engine.device_id), SZ(engine.device_id), 0, 0, 0 },
	{ "device", "board", "board", KT_TOKEN, OFF(board), SZ(board), 0, 0, 0 },
	{ "device", "timezone", "time_zone", KT_TIME_ZONE, OFF(time_zone), SZ(time_zone), 0, 0,
	  KF_EMPTY_OK },

	{ "engine", "trigger", "trigger", KT_TRIGGER, OFF(engine.trigger), 0, 0, 0, 0 },
	{ "engine", "gap_end", "gap_end_ms", KT_DURATION, OFF(engine.gap_end_ms), 0, 1 * S, 24 * H, 0 },
	{ "engine", "idle_end", "idle_end_ms", KT_DURATION, OFF(engine.idle_end_ms), 0, 1 * S, 24 * H, 0 },
	{ "engine", "app_silence", "app_silence_ms", KT_DURATION, OFF(engine.app_silence_ms), 0, 1 * S,
	  24 * H, 0 },
	{ "engine", "max_session", "max_session_ms", KT_DURATION, OFF(engine.max_session_ms), 0, 1 * M,
	  7 * 24 * H, 0 },
	{ "engine", "min_cover", "min_cover_ms", KT_DURATION, OFF(engine.min_cover_ms), 0, 1 * S, 24 * H,
	  0 },
	{ "engine", "activation_length", "unit_ms", KT_DURATION, OFF(engine.unit_ms), 0, 1 * M, 24 * H,
	  0 },
	{ "engine", "move_speed", "move_speed_mps", KT_NUMBER, OFF(engine.move_speed_mps), 0, 0, 100,
	  KF_HI_OPEN },
	{ "engine", "max_eph", "max_eph_m", KT_NUMBER, OFF(engine.max_eph_m), 0, 0, 100000, 0 },
	{ "engine", "max_jump_speed", "max_jump_mps", KT_NUMBER, OFF(engine.max_jump_mps), 0, 0, 10000,
	  0 },
	{ "engine", "max_fix_gap", "max_fix_gap_ms", KT_DURATION, OFF(engine.max_fix_gap_ms), 0, 1 * S,
	  24 * H, 0 },
	{ "engine", "job_timeout", "job_timeout_ms", KT_DURATION, OFF(engine.job_timeout_ms), 0, 1 * M,
	  7 * 24 * H, 0 },

	{ "store", "state_dir", "state_dir", KT_PATH, OFF(state_dir), SZ(state_dir), 0, 0, 0 },
	{ "store", "track_flush", "track_flush_ms", KT_DURATION, OFF(track_flush_ms), 0, 100, 1 * H, 0 },
	{ "store", "max_size_kib", "max_size_kib", KT_INT64, OFF(max_size_kib), 0, 0, 1e9, 0 },

	{ "ipc", "socket", "socket_path", KT_PATH, OFF(socket_path), SZ(socket_path), 0, 0,
	  KF_EMPTY_OK },
	{ "ipc", "mode", "socket_mode", KT_MODE, OFF(socket_mode), 0, 0, 0777, 0 },
	{ "ipc", "max_app_skew", "max_app_skew_ms", KT_DURATION, OFF(max_app_skew_ms), 0, 1 * S,
	  24 * H, 0 },

	{ "gnss", "source", "gnss_source", KT_GNSS_SOURCE, OFF(gnss_source), SZ(gnss_source), 0, 0, 0 },
	{ "gnss", "gpsd_host", "gpsd_host", KT_HOST, OFF(gpsd_host), SZ(gpsd_host), 0, 0, 0 },
	{ "gnss", "gpsd_port", "gpsd_port", KT_PORT, OFF(gpsd_port), SZ(gpsd_port), 1, 65535, 0 },
	{ "gnss", "fix_stale", "fix_stale_ms", KT_DURATION, OFF(fix_stale_ms), 0, 1 * S, 24 * H, 0 },

	{ "log", "level", "log_level", KT_LOG_LEVEL, OFF(log_level), 0, 0, 0, 0 },
	{ "log", "syslog", "log_syslog", KT_BOOL, OFF(log_syslog), 0, 0, 0, 0 },

	{ "mqtt", "enabled", "mqtt_enabled", KT_BOOL, OFF(mqtt_enabled), 0, 0, 0, 0 },
	{ "mqtt", "host", "mqtt_host", KT_HOST, OFF(mqtt_host), SZ(mqtt_host), 0, 0, KF_EMPTY_OK },
	{ "mqtt", "port", "mqtt_port", KT_INT, OFF(mqtt_port), 0, 1, 65535, 0 },
	{ "mqtt", "protocol", "mqtt_protocol", KT_PROTOCOL, OFF(mqtt_protocol), 0, 0, 0, 0 },
	{ "mqtt", "keepalive", "mqtt_keepalive_s", KT_DURATION_S, OFF(mqtt_keepalive_s), 0, 5 * S,
	  65535 * S, 0 },
	{ "mqtt", "ca_file", "mqtt_ca_file", KT_PATH, OFF(mqtt_ca_file), SZ(mqtt_ca_file), 0, 0,
	  KF_EMPTY_OK },
	{ "mqtt", "cert_file", "mqtt_cert_file", KT_PATH, OFF(mqtt_cert_file), SZ(mqtt_cert_file), 0, 0,
	  KF_EMPTY_OK },
	{ "mqtt", "key_file", "mqtt_key_file", KT_PATH, OFF(mqtt_key_file), SZ(mqtt_key_file), 0, 0,
	  KF_EMPTY_OK },
	{ "mqtt", "tls_server_name", "mqtt_tls_server_name", KT_HOST, OFF(mqtt_tls_server_name),
	  SZ(mqtt_tls_server_name), 0, 0, KF_EMPTY_OK },
	{ "mqtt", "insecure_plaintext", "mqtt_insecure_plaintext", KT_BOOL,
	  OFF(mqtt_insecure_plaintext), 0, 0, 0, 0 },
	{ "mqtt", "inflight", "mqtt_inflight", KT_INT, OFF(mqtt_inflight), 0, 1, 65535, 0 },
	{ "mqtt", "backoff_min", "mqtt_backoff_min_ms", KT_DURATION, OFF(mqtt_backoff_min_ms), 0, 100,
	  1 * H, 0 },
	{ "mqtt", "backoff_max", "mqtt_backoff_max_ms", KT_DURATION, OFF(mqtt_backoff_max_ms), 0, 1 * S,
	  24 * H, 0 },
	{ "mqtt", "signing_key", "signing_key_file", KT_PATH, OFF(signing_key_file),
	  SZ(signing_key_file), 0, 0, KF_EMPTY_OK },
	{ "mqtt", "outbox_max_rows", "outbox_max_rows", KT_INT64, OFF(outbox_max_rows), 0, 1, 1e9, 0 },
};

#undef OFF
#undef SZ
#undef H
#undef M
#undef S

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = { "device", "engine", "store", "ipc", "gnss", "log", "mqtt" };
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

/* ---------------------------------------------------------------- defaults */

void config_defaults(struct coverd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	engine_config_defaults(&cfg->engine);
	snprintf(cfg->board, sizeof(cfg->board), "generic");
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/coverd");
	cfg->track_flush_ms = 30 * 1000;
	cfg->socket_path[0] = '\0';
	cfg->socket_mode = 0660;
	cfg->max_app_skew_ms = 2 * 60 * 1000;
	snprintf(cfg->gnss_source, sizeof(cfg->gnss_source), "gpsd");
	snprintf(cfg->gpsd_host, sizeof(cfg->gpsd_host), "127.0.0.1");
	snprintf(cfg->gpsd_port, sizeof(cfg->gpsd_port), "2947");
	cfg->fix_stale_ms = 2 * 60 * 1000;
	cfg->log_level = LOG_LVL_INFO;
	cfg->log_syslog = true;
	cfg->mqtt_enabled = false;
	cfg->mqtt_host[0] = '\0';
	cfg->mqtt_port = 8883;
	cfg->mqtt_protocol = 5;
	cfg->mqtt_keepalive_s = 30;
	cfg->mqtt_insecure_plaintext = false;
	cfg->mqtt_inflight = 32;
	cfg->mqtt_backoff_min_ms = 1000;
	cfg->mqtt_backoff_max_ms = 5 * 60 * 1000;
	cfg->signing_key_file[0] = '\0';
	cfg->outbox_max_rows = 100000;
}

void config_socket_path(const struct coverd_config *cfg, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	if (cfg->socket_path[0] != '\0')
		snprintf(buf, len, "%s", cfg->socket_path);
	else
		snprintf(buf, len, "%s/coverd.sock", cfg->state_dir);
}

/* ---------------------------------------------------------------- durations */

int config_parse_duration(const char *s, int64_t *ms)
{
	if (s == NULL || ms == NULL || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	int64_t n = 0;
	const char *p = s;
	for (; isdigit((unsigned char)*p); p++) {
		int d = *p - '0';
		if (n > (INT64_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	int64_t mult;
	if (*p == '\0' || strcmp(p, "s") == 0)
		mult = 1000;
	else if (strcmp(p, "ms") == 0)
		mult = 1;
	else if (strcmp(p, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(p, "h") == 0)
		mult = 3600 * 1000;
	else
		return -EINVAL;
	if (n > INT64_MAX / mult)
		return -EINVAL;
	*ms = n * mult;
	return 0;
}

void config_format_duration(int64_t ms, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	/* Negative durations are never valid configuration, but the printer must still say
	 * something exact about them; INT64_MIN is shown in milliseconds to avoid negating it. */
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % (3600 * 1000) == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / (3600 * 1000));
	else if (ms % (60 * 1000) == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / (60 * 1000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
}

/* ---------------------------------------------------------------- values */

/* Formats a double with the fewest digits that read back to the same value, so that
 * printing and loading again is exact. */
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

static bool is_token(const char *s)
{
	if (!isalnum((unsigned char)s[0]))
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Parses a whole decimal integer; returns false on anything else or overflow. */
static bool parse_int64(const char *s, int64_t *out)
{
	if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Writes a value into err as a quoted, sanitised and shortened string. */
static void quote(char *buf, size_t len, const char *s)
{
	size_t o = 0;
	if (len < 8) {
		if (len > 0)
			buf[0] = '\0';
		return;
	}
	buf[o++] = '"';
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (o + 8 >= len || i >= 80) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

/*
 * Only names are accepted, not POSIX TZ rules ("CET-1CEST,M3.5.0,M10.5.0/3"): a name is what
 * a driver's country uses and what the zone database keeps current. The file must begin
 * with the TZif magic, so a directory or a stray file under the zone directory is refused
 * too. Components may not be empty, "." or "..", so the name cannot leave the directory.
 */
int config_check_time_zone(const char *name, char *why, size_t whylen)
{
	char q[96];
	if (name == NULL) {
		snprintf(why, whylen, "no time zone given");
		return -EINVAL;
	}
	if (name[0] == '\0')
		return 0;
	quote(q, sizeof(q), name);
	size_t n = strlen(name);
	bool ok = n < CONFIG_TZ_MAX && name[0] != '/' && name[n - 1] != '/';
	for (size_t i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		ok = isalnum(c) || c == '/' || c == '_' || c == '-' || c == '+' || c == '.';
		if (ok && (i == 0 || name[i - 1] == '/')) {
			/* The start of a component: neither empty nor "." or "..". */
			size_t len = strcspn(name + i, "/");
			ok = len > 0 && !(len == 1 && c == '.') &&
			     !(len == 2 && c == '.' && name[i + 1] == '.');
		}
	}
	if (!ok) {
		snprintf(why, whylen, "%s is not a time zone name (an IANA name such as "
		         "Europe/Ljubljana, or empty for the system's zone)", q);
		return -EINVAL;
	}
	const char *dir = getenv("TZDIR");
	if (dir == NULL || dir[0] == '\0')
		dir = "/usr/share/zoneinfo";
	char path[CONFIG_PATH_MAX + CONFIG_TZ_MAX + 2];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char magic[4] = { 0 };
	FILE *fp = fopen(path, "rb");
	bool zone = fp != NULL && fread(magic, 1, sizeof(magic), fp) == sizeof(magic) &&
	            memcmp(magic, "TZif", 4) == 0;
	if (fp != NULL)
		fclose(fp);
	if (!zone) {
		snprintf(why, whylen, "%s is not a known time zone (no zone file %s; is the tzdata "
		         "package installed?)", q, path);
		return -EINVAL;
	}
	return 0;
}

/*
 * Parses one value into the field of cfg the key describes. Returns 0, or -EINVAL with
 * the reason in why (without the file, line and key, which the caller adds).
 */
static int set_value(struct coverd_config *cfg, const struct key_desc *k, const char *v,
                     char *why, size_t whylen)
{
	char *base = (char *)cfg;
	char q[128];
	quote(q, sizeof(q), v);

	if (v[0] == '\0' && !(k->flags & KF_EMPTY_OK)) {
		snprintf(why, whylen, "a value is required");
		return -EINVAL;
	}
	switch (k->type) {
	case KT_TOKEN: {
		size_t n = strlen(v);
		if (n >= k->size) {
			snprintf(why, whylen, "%s is too long (limit %zu characters)", q, k->size - 1);
			return -EINVAL;
		}
		if (!is_token(v)) {
			snprintf(why, whylen,
			         "%s may contain only letters, digits, '.', '_' and '-', and must "
			         "start with a letter or digit", q);
			return -EINVAL;
		}
		memcpy(base + k->off, v, n + 1);
		return 0;
	}
	case KT_TRIGGER: {
		enum engine_trigger t;
		if (engine_trigger_parse(v, &t) != 0) {
			snprintf(why, whylen, "%s is not a trigger (job, online or motion)", q);
			return -EINVAL;
		}
		*(enum engine_trigger *)(void *)(base + k->off) = t;
		return 0;
	}
	case KT_DURATION:
	case KT_DURATION_S: {
		int64_t ms;
		char lo[32], hi[32];
		if (config_parse_duration(v, &ms) != 0) {
			snprintf(why, whylen,
			         "%s is not a duration (a whole number with ms, s, m or h, e.g. 10m)", q);
			return -EINVAL;
		}
		config_format_duration((int64_t)k->lo, lo, sizeof(lo));
		config_format_duration((int64_t)k->hi, hi, sizeof(hi));
		if ((double)ms < k->lo || (double)ms > k->hi) {
			snprintf(why, whylen, "%s is out of range [%s, %s]", v, lo, hi);
			return -EINVAL;
		}
		if (k->type == KT_DURATION) {
			*(int64_t *)(void *)(base + k->off) = ms;
		} else {
			if (ms % 1000 != 0) {
				snprintf(why, whylen, "%s is not a whole number of seconds", v);
				return -EINVAL;
			}
			*(int *)(void *)(base + k->off) = (int)(ms / 1000);
		}
		return 0;
	}
	case KT_NUMBER: {
		char *end;
		char hi[32];
		errno = 0;
		double d = strtod(v, &end);
		/* strtod also reads "nan", "inf" and hex floats; only plain decimals are
		 * documented, and a NaN would slip through every range comparison. */
		if (end == v || *end != '\0' || errno == ERANGE || !isfinite(d) ||
		    strpbrk(v, "xXnNiI") != NULL) {
			snprintf(why, whylen, "%s is not a number", q);
			return -EINVAL;
		}
		format_number(k->hi, hi, sizeof(hi));
		bool hi_open = (k->flags & KF_HI_OPEN) != 0;
		if (d <= k->lo || d > k->hi || (hi_open && d >= k->hi)) {
			snprintf(why, whylen, "%s is out of range (must be > 0 and %s %s)", v,
			         hi_open ? "<" : "<=", hi);
			return -EINVAL;
		}
		*(double *)(void *)(base + k->off) = d;
		return 0;
	}
	case KT_PATH: {
		size_t n = strlen(v);
		if (n >= k->size) {
			snprintf(why, whylen, "path is too long (%zu characters, limit %zu)", n,
			         k->size - 1);
			return -EINVAL;
		}
		if (has_control(v)) {
			snprintf(why, whylen, "%s contains a control character", q);
			return -EINVAL;
		}
		/* The daemon changes its working directory and runs under a supervisor, so a
		 * relative path would silently mean something else there. */
		if (n > 0 && v[0] != '/') {
			snprintf(why, whylen, "%s is not an absolute path", q);
			return -EINVAL;
		}
		memcpy(base + k->off, v, n + 1);
		return 0;
	}
	case KT_HOST: {
		size_t n = strlen(v);
		if (n >= k->size) {
			snprintf(why, whylen, "%s is too long (limit %zu characters)", q, k->size - 1);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_' && c != '%') {
				snprintf(why, whylen, "%s is not a host name or address", q);
				return -EINVAL;
			}
		}
		memcpy(base + k->off, v, n + 1);
		return 0;
	}
	case KT_PORT:
	case KT_INT:
	case KT_INT64: {
		int64_t n;
		if (!parse_int64(v, &n)) {
			snprintf(why, whylen, "%s is not a whole number", q);
			return -EINVAL;
		}
		if ((double)n < k->lo || (double)n > k->hi) {
			snprintf(why, whylen, "%s is out of range [%.0f, %.0f]", v, k->lo, k->hi);
			return -EINVAL;
		}
		if (k->type == KT_PORT)
			snprintf(base + k->off, k->size, "%" PRId64, n);
		else if (k->type == KT_INT)
			*(int *)(void *)(base + k->off) = (int)n;
		else
			*(int64_t *)(void *)(base + k->off) = n;
		return 0;
	}
	case KT_MODE: {
		size_t n = strlen(v);
		if (n > 4 || strspn(v, "01234567") != n) {
			snprintf(why, whylen, "%s is not an octal file mode (e.g. 0660)", q);
			return -EINVAL;
		}
		unsigned long m = strtoul(v, NULL, 8);
		if (m > 0777) {
			snprintf(why, whylen, "%s is out of range [0000, 0777]", v);
			return -EINVAL;
		}
		*(unsigned *)(void *)(base + k->off) = (unsigned)m;
		return 0;
	}
	case KT_GNSS_SOURCE:
		if (strcmp(v, "gpsd") != 0 && strcmp(v, "app") != 0 && strcmp(v, "none") != 0) {
			snprintf(why, whylen, "%s is not a GNSS source (gpsd, app or none)", q);
			return -EINVAL;
		}
		snprintf(base + k->off, k->size, "%s", v);
		return 0;
	case KT_LOG_LEVEL: {
		enum log_level l;
		if (log_level_parse(v, &l) != 0) {
			snprintf(why, whylen, "%s is not a log level (error, warn, info or debug)", q);
			return -EINVAL;
		}
		*(enum log_level *)(void *)(base + k->off) = l;
		return 0;
	}
	case KT_BOOL: {
		bool b;
		if (parse_bool(v, &b) != 0) {
			snprintf(why, whylen, "%s is not a boolean (yes, no, true, false, on, off, 1, 0)",
			         q);
			return -EINVAL;
		}
		*(bool *)(void *)(base + k->off) = b;
		return 0;
	}
	case KT_TIME_ZONE:
		if (strlen(v) >= k->size) {
			snprintf(why, whylen, "%s is too long (limit %zu characters)", q, k->size - 1);
			return -EINVAL;
		}
		if (config_check_time_zone(v, why, whylen) != 0)
			return -EINVAL;
		snprintf(base + k->off, k->size, "%s", v);
		return 0;
	case KT_PROTOCOL: {
		int p;
		if (strcmp(v, "5") == 0)
			p = 5;
		else if (strcmp(v, "3.1.1") == 0)
			p = 311;
		else {
			snprintf(why, whylen, "%s is not an MQTT protocol version (5 or 3.1.1)", q);
			return -EINVAL;
		}
		*(int *)(void *)(base + k->off) = p;
		return 0;
	}
	}
	snprintf(why, whylen, "internal error: unknown key type");
	return -EINVAL;
}

/* Formats the value of a key as config_print() writes it. */
static void format_value(const struct coverd_config *cfg, const struct key_desc *k, char *buf,
                         size_t len)
{
	const char *base = (const char *)cfg;
	switch (k->type) {
	case KT_TOKEN:
	case KT_PATH:
	case KT_HOST:
	case KT_PORT:
	case KT_GNSS_SOURCE:
	case KT_TIME_ZONE:
		snprintf(buf, len, "%s", base + k->off);
		return;
	case KT_TRIGGER:
		snprintf(buf, len, "%s",
		         engine_trigger_name(*(const enum engine_trigger *)(const void *)(base + k->off)));
		return;
	case KT_DURATION:
		config_format_duration(*(const int64_t *)(const void *)(base + k->off), buf, len);
		return;
	case KT_DURATION_S:
		config_format_duration((int64_t)*(const int *)(const void *)(base + k->off) * 1000, buf,
		                       len);
		return;
	case KT_NUMBER:
		format_number(*(const double *)(const void *)(base + k->off), buf, len);
		return;
	case KT_INT:
		snprintf(buf, len, "%d", *(const int *)(const void *)(base + k->off));
		return;
	case KT_INT64:
		snprintf(buf, len, "%" PRId64, *(const int64_t *)(const void *)(base + k->off));
		return;
	case KT_MODE:
		snprintf(buf, len, "%04o", *(const unsigned *)(const void *)(base + k->off));
		return;
	case KT_LOG_LEVEL:
		snprintf(buf, len, "%s",
		         log_level_name(*(const enum log_level *)(const void *)(base + k->off)));
		return;
	case KT_BOOL:
		snprintf(buf, len, "%s", *(const bool *)(const void *)(base + k->off) ? "yes" : "no");
		return;
	case KT_PROTOCOL:
		snprintf(buf, len, "%s",
		         *(const int *)(const void *)(base + k->off) == 311 ? "3.1.1" : "5");
		return;
	}
	snprintf(buf, len, "?");
}

int config_print(const struct coverd_config *cfg, FILE *out)
{
	const char *section = NULL;
	char val[CONFIG_PATH_MAX + 16];
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_desc *k = &keys[i];
		if (section == NULL || strcmp(section, k->section) != 0) {
			if (fprintf(out, "%s[%s]\n", section != NULL ? "\n" : "", k->section) < 0)
				return -EIO;
			section = k->section;
		}
		format_value(cfg, k, val, sizeof(val));
		/* "key =" with nothing after it reads back as the empty string. */
		if (fprintf(out, val[0] != '\0' ? "%s = %s\n" : "%s =%s\n", k->name, val) < 0)
			return -EIO;
	}
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}

/* ---------------------------------------------------------------- loading */

struct load_ctx {
	struct coverd_config *cfg;
	FILE *fp;
	const char *path;
	int lineno;                 /* lines handed to inih so far */
	int key_line[NKEYS];        /* line each key was set at, 0 when not in the file */
	int err_line;               /* first error found by us, 0 when none */
	int err_rc;
	char *err;
	size_t errlen;
};

static void load_error(struct load_ctx *c, int line, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void load_error(struct load_ctx *c, int line, int rc, const char *fmt, ...)
{
	if (c->err_line != 0)
		return;   /* keep the first error: later ones may be its consequences */
	/* Line 0 means the rule involves only values that did not come from this file (the
	 * defaults or what the caller set), so there is no line to name. */
	c->err_line = line > 0 ? line : -1;
	c->err_rc = rc;
	if (c->err == NULL || c->errlen == 0)
		return;
	int n = line > 0 ? snprintf(c->err, c->errlen, "%s:%d: ", c->path, line)
	                 : snprintf(c->err, c->errlen, "%s: ", c->path);
	if (n < 0 || (size_t)n >= c->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static const struct key_desc *find_key(const char *section, const char *name, size_t *idx)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) {
			*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

static bool known_section(const char *name)
{
	for (size_t i = 0; i < NSECTIONS; i++)
		if (strcmp(sections[i], name) == 0)
			return true;
	return false;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *c = user;
	char q[96];
	if (c->err_line != 0)
		return 0;
	quote(q, sizeof(q), name);
	if (section[0] == '\0') {
		load_error(c, c->lineno, -EINVAL, "%s: key outside a section", q);
		return 0;
	}
	if (!known_section(section)) {
		/* The reader already refused the header line; this is a defence in depth. */
		load_error(c, c->lineno, -EINVAL, "unknown section [%s]", section);
		return 0;
	}
	size_t idx;
	const struct key_desc *k = find_key(section, name, &idx);
	if (k == NULL) {
		load_error(c, c->lineno, -EINVAL, "[%s] %s: unknown key (see coverd.conf(5))", section,
		           q);
		return 0;
	}
	if (c->key_line[idx] != 0) {
		load_error(c, c->lineno, -EINVAL, "[%s] %s: duplicate key (first set at line %d)",
		           section, name, c->key_line[idx]);
		return 0;
	}
	char why[320];
	if (set_value(c->cfg, k, value, why, sizeof(why)) != 0) {
		load_error(c, c->lineno, -EINVAL, "[%s] %s: %s", section, name, why);
		return 0;
	}
	c->key_line[idx] = c->lineno;
	return 1;
}

/*
 * The fgets-style reader given to inih. It reads one whole line, counts it, checks the
 * section header itself (inih does not report empty sections to the handler, so an
 * unknown empty section would otherwise pass) and hands inih the line without its
 * leading blanks.
 */
static char *reader(char *str, int num, void *stream)
{
	struct load_ctx *c = stream;
	if (c->err_line != 0)
		return NULL;   /* stop at our first error: inih then returns what it saw */
	if (num < 4) {
		load_error(c, c->lineno + 1, -EINVAL, "the INI parser's line buffer is too small");
		return NULL;
	}
	size_t cap = (size_t)num - 1;   /* room for the line, its newline and the NUL */
	size_t n = 0;
	int ch;
	bool long_line = false;
	while ((ch = getc(c->fp)) != EOF) {
		if (n + 1 < cap)
			str[n++] = (char)ch;
		else if (ch != '\n')
			long_line = true;
		if (ch == '\n')
			break;
	}
	if (ferror(c->fp)) {
		c->lineno++;
		load_error(c, c->lineno, -EIO, "read error: %s", strerror(errno));
		return NULL;
	}
	if (n == 0 && ch == EOF)
		return NULL;
	c->lineno++;
	str[n] = '\0';
	if (long_line) {
		load_error(c, c->lineno, -EINVAL, "line too long (limit %zu characters)", cap - 1);
		return NULL;
	}
	size_t lead = strspn(str, " \t");
	if (lead > 0)
		memmove(str, str + lead, n - lead + 1);
	if (c->lineno == 1 && strncmp(str, "\xef\xbb\xbf", 3) == 0) {
		/* inih skips a UTF-8 byte order mark itself; skip it here too so that the
		 * section check below sees the header. */
		memmove(str, str + 3, strlen(str + 3) + 1);
	}
	if (str[0] == '[') {
		char *close = strchr(str, ']');
		if (close != NULL) {
			char name[64];
			size_t len = (size_t)(close - str - 1);
			if (len >= sizeof(name))
				len = sizeof(name) - 1;
			memcpy(name, str + 1, len);
			name[len] = '\0';
			if (!known_section(name)) {
				for (size_t i = 0; i < len; i++)
					if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] >= 0x7f)
						name[i] = '?';
				load_error(c, c->lineno, -EINVAL,
				           "unknown section [%s] (known: device, engine, store, ipc, gnss, "
				           "log, mqtt)", name);
				return NULL;
			}
		}
	}
	return str;
}

/* The line of the later of two keys of a section; 0 when neither is in the file. */
static int later_line(const struct load_ctx *c, const char *section, const char *a,
                      const char *b, const char **which)
{
	int la = 0, lb = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		if (strcmp(keys[i].name, a) == 0)
			la = c->key_line[i];
		if (strcmp(keys[i].name, b) == 0)
			lb = c->key_line[i];
	}
	*which = la >= lb ? a : b;
	return la >= lb ? la : lb;
}

static bool is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
	       strncmp(host, "127.", 4) == 0;
}

/* Checks the rules that tie keys together, once the whole file is read. */
static void check_whole(struct load_ctx *c)
{
	const struct coverd_config *cfg = c->cfg;
	char a[32], b[32];
	const char *key;
	int line;

	if (cfg->engine.min_cover_ms > cfg->engine.unit_ms) {
		line = later_line(c, "engine", "min_cover", "activation_length", &key);
		config_format_duration(cfg->engine.min_cover_ms, a, sizeof(a));
		config_format_duration(cfg->engine.unit_ms, b, sizeof(b));
		load_error(c, line, -EINVAL,
		           "[engine] %s: min_cover (%s) must not exceed activation_length (%s)", key, a,
		           b);
		return;
	}
	if (cfg->engine.max_session_ms > cfg->engine.unit_ms * ENGINE_MAX_ACTS) {
		line = later_line(c, "engine", "max_session", "activation_length", &key);
		config_format_duration(cfg->engine.max_session_ms, a, sizeof(a));
		config_format_duration(cfg->engine.unit_ms, b, sizeof(b));
		load_error(c, line, -EINVAL,
		           "[engine] %s: max_session (%s) must not exceed %d activations of "
		           "activation_length (%s)", key, a, ENGINE_MAX_ACTS, b);
		return;
	}
	if (cfg->mqtt_backoff_min_ms > cfg->mqtt_backoff_max_ms) {
		line = later_line(c, "mqtt", "backoff_min", "backoff_max", &key);
		config_format_duration(cfg->mqtt_backoff_min_ms, a, sizeof(a));
		config_format_duration(cfg->mqtt_backoff_max_ms, b, sizeof(b));
		load_error(c, line, -EINVAL,
		           "[mqtt] %s: backoff_min (%s) must not exceed backoff_max (%s)", key, a, b);
		return;
	}
	if (cfg->mqtt_enabled) {
		line = later_line(c, "mqtt", "enabled", "host", &key);
		if (cfg->mqtt_host[0] == '\0') {
			load_error(c, line, -EINVAL, "[mqtt] host: required when [mqtt] enabled = yes");
			return;
		}
		if (cfg->mqtt_insecure_plaintext) {
			/* Invariant 6: plaintext exists for a developer's own broker and never
			 * leaves the machine. */
			if (!is_loopback(cfg->mqtt_host)) {
				line = later_line(c, "mqtt", "insecure_plaintext", "host", &key);
				load_error(c, line, -EINVAL,
				           "[mqtt] %s: insecure_plaintext is allowed only to a loopback "
				           "host (127.0.0.1, ::1, localhost), not \"%s\"", key,
				           cfg->mqtt_host);
				return;
			}
		} else {
			static const char *const tls[] = { "ca_file", "cert_file", "key_file" };
			const char *val[] = { cfg->mqtt_ca_file, cfg->mqtt_cert_file, cfg->mqtt_key_file };
			for (size_t i = 0; i < 3; i++) {
				if (val[i][0] == '\0') {
					line = later_line(c, "mqtt", "enabled", tls[i], &key);
					load_error(c, line, -EINVAL,
					           "[mqtt] %s: required for mutual TLS when [mqtt] enabled = "
					           "yes", tls[i]);
					return;
				}
			}
		}
	}

	const char *why = NULL;
	if (engine_config_check(&cfg->engine, &why) != 0) {
		/* Attribute the engine's reason to the key it names, when it names one that the
		 * file sets, so the message still points at a line. */
		const struct key_desc *best = NULL;
		int best_line = 0;
		for (size_t i = 0; i < NKEYS; i++) {
			if (strcmp(keys[i].section, "engine") != 0 || c->key_line[i] == 0 || why == NULL)
				continue;
			if ((strstr(why, keys[i].name) != NULL || strstr(why, keys[i].field) != NULL) &&
			    c->key_line[i] > best_line) {
				best = &keys[i];
				best_line = c->key_line[i];
			}
		}
		if (best != NULL)
			load_error(c, best_line, -EINVAL, "[engine] %s: %s", best->name, why);
		else
			load_error(c, 0, -EINVAL, "[engine]: %s",
			           why != NULL ? why : "invalid engine parameters");
	}
}

int config_load(struct coverd_config *cfg, const char *path, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (cfg == NULL || path == NULL) {
		snprintf(err, errlen, "config_load: NULL argument");
		return -EINVAL;
	}
	FILE *fp = fopen(path, "r");
	if (fp == NULL) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}

	/* Work on a copy so that a bad file leaves the running configuration untouched,
	 * which is what a SIGHUP reload needs. */
	struct coverd_config work = *cfg;
	struct load_ctx c = {
		.cfg = &work, .fp = fp, .path = path, .err = err, .errlen = errlen,
	};
	int r = ini_parse_stream(reader, &c, handler, &c);
	if (!ferror(fp) && c.err_line == 0 && r == 0)
		check_whole(&c);
	fclose(fp);

	if (c.err_line != 0 && (r <= 0 || c.err_line < 0 || c.err_line <= r))
		return c.err_rc;
	if (r > 0) {
		/* inih found a line it cannot parse before any error of ours. */
		snprintf(err, errlen,
		         "%s:%d: syntax error: expected \"key = value\", \"[section]\" or a comment",
		         path, r);
		return -EINVAL;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: out of memory while parsing", path);
		return -ENOMEM;
	}
	if (c.err_line != 0)
		return c.err_rc;
	*cfg = work;
	return 0;
}
