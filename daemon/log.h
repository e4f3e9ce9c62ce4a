/*
 * log.h - a tiny logging module after OpenBSD's log.h. log_warn() appends strerror(errno);
 * log_warnx() does not. Messages go to stderr (foreground) or syslog, filtered by level.
 */
#ifndef COVERD_LOG_H
#define COVERD_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* to_syslog: 0 stderr, 1 syslog (ident is the program name). */
void log_init(const char *ident, int to_syslog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Returns 0 or -EINVAL for names "error", "warn", "info", "debug". */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A broken invariant: logs and exits with status 70 (EX_SOFTWARE). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
