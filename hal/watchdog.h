/*
 * watchdog.h - telling a supervisor the daemon is alive.
 *
 * Backends: "systemd" (the sd_notify protocol, written by hand: one datagram per message
 * to the AF_UNIX socket named by $NOTIFY_SOCKET, "@" meaning the abstract namespace, so
 * no libsystemd is needed) and "none". watchdog_new_auto() picks systemd when
 * $NOTIFY_SOCKET is set, none otherwise.
 *
 * The daemon sends READY=1 once it serves, WATCHDOG=1 from a loop timer every
 * watchdog_interval_ms() (half of $WATCHDOG_USEC, so a stalled loop misses the deadline
 * and systemd restarts it), and STOPPING=1 when it shuts down. Sends never block: the
 * socket is non-blocking and a lost datagram is only logged by the caller.
 *
 * A /dev/watchdog backend would open the device in open(), write one byte in pet() and
 * "V" (the magic close) before closing in close().
 */
#ifndef COVERD_HAL_WATCHDOG_H
#define COVERD_HAL_WATCHDOG_H

#include <stdint.h>

struct watchdog;

struct watchdog_ops {
	const char *name;
	int (*open)(struct watchdog *w);
	/* Sends one state line such as "READY=1". 0 or a negative errno. */
	int (*notify)(struct watchdog *w, const char *state);
	void (*close)(struct watchdog *w);
};

struct watchdog {
	const struct watchdog_ops *ops;
	int fd;
	char path[108];          /* sun_path; a leading NUL for the abstract namespace */
	unsigned path_len;
	int64_t interval_ms;     /* 0: no keep-alive wanted */
};

/* By name: "systemd" or "none". -EINVAL for another name or a bad $NOTIFY_SOCKET. */
int watchdog_new(struct watchdog **out, const char *name);
int watchdog_new_auto(struct watchdog **out);
void watchdog_free(struct watchdog *w);
const char *watchdog_name(const struct watchdog *w);

int watchdog_ready(struct watchdog *w);
int watchdog_pet(struct watchdog *w);
int watchdog_stopping(struct watchdog *w);
/* Sends "STATUS=<text>" (shown by systemctl status). */
int watchdog_status(struct watchdog *w, const char *text);
/* How often to pet, from $WATCHDOG_USEC / 2; 0 when the supervisor wants no pets. */
int64_t watchdog_interval_ms(const struct watchdog *w);

#endif
