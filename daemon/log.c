/*
 * log.c - logging to stderr or syslog, after OpenBSD's log.c.
 *
 * Each message is formatted into a fixed buffer and written with one call, so lines
 * from a crashing process are not interleaved or lost to a failed allocation. Every
 * function preserves errno: a caller may log and then still inspect or return it.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static struct {
	char ident[64];
	int to_syslog;
	enum log_level level;
} lg = { "coverd", 0, LOG_LVL_INFO };

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_init(const char *ident, int to_syslog, enum log_level level)
{
	int saved = errno;
	if (lg.to_syslog)
		closelog();
	/* openlog() keeps the pointer it is given, so the name is copied into static
	 * storage that outlives the caller's string. */
	const char *base = ident != NULL ? strrchr(ident, '/') : NULL;
	snprintf(lg.ident, sizeof(lg.ident), "%s",
	         base != NULL ? base + 1 : (ident != NULL ? ident : "coverd"));
	lg.to_syslog = to_syslog;
	lg.level = level;
	if (to_syslog)
		openlog(lg.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	errno = saved;
}

void log_set_level(enum log_level level)
{
	if (level >= LOG_LVL_ERR && level <= LOG_LVL_DEBUG)
		lg.level = level;
}

enum log_level log_get_level(void)
{
	return lg.level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	if (name == NULL || out == NULL)
		return -EINVAL;
	for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	if (level < LOG_LVL_ERR || level > LOG_LVL_DEBUG)
		return "unknown";
	return level_names[level];
}

/* Formats and emits one message; errnum > 0 appends ": strerror(errnum)". */
static void log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "fatal: ", "warning: ", "", "debug: " };
	char msg[LOG_LINE_MAX];
	int saved = errno;

	if (level > lg.level) {
		errno = saved;
		return;
	}
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		snprintf(msg, sizeof(msg), "(unformattable log message)");
	if (errnum > 0) {
		size_t used = strlen(msg);
		snprintf(msg + used, sizeof(msg) - used, ": %s", strerror(errnum));
	}

	if (lg.to_syslog) {
		syslog(prio[level], "%s%s", tag[level], msg);
	} else {
		char stamp[96] = "";
		struct timespec ts;
		struct tm tm;
		/* UTC with milliseconds, so lines sort and match the daemon's records. */
		if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm) != NULL)
			snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
			         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			         tm.tm_sec, (ts.tv_nsec / 1000000L) % 1000);
		char line[LOG_LINE_MAX + 160];
		int n = snprintf(line, sizeof(line), "%s%s[%ld]: %s%s\n", stamp, lg.ident,
		                 (long)getpid(), tag[level], msg);
		if (n > 0) {
			size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
			/* One write() per line keeps lines whole when several processes share
			 * stderr; a failure has nowhere better to be reported. */
			ssize_t w = write(STDERR_FILENO, line, len);
			(void)w;
		}
	}
	errno = saved;
}

void log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_warnx(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_WARN, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_info(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_INFO, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_debug(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_DEBUG, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* EX_SOFTWARE from sysexits.h, spelled out because that header is not POSIX. */
#define FATAL_EXIT 70

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_ERR, saved, fmt, ap);
	va_end(ap);
	exit(FATAL_EXIT);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(FATAL_EXIT);
}
