/*
 * watchdog.c - systemd's notify protocol by hand, and the "none" backend.
 */
#include "watchdog.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int none_open(struct watchdog *w)
{
	(void)w;
	return 0;
}

static int none_notify(struct watchdog *w, const char *state)
{
	(void)w;
	(void)state;
	return 0;
}

static void none_close(struct watchdog *w)
{
	(void)w;
}

static const struct watchdog_ops none_ops = {
	.name = "none", .open = none_open, .notify = none_notify, .close = none_close,
};

static int sd_open(struct watchdog *w)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return -ENOENT;
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(w->path))
		return -EINVAL;
	memcpy(w->path, path, len);
	if (w->path[0] == '@')
		w->path[0] = '\0';
	w->path_len = (unsigned)len;
	w->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd < 0)
		return -errno;

	/* systemd only expects keep-alives from the process it started; a WATCHDOG_PID
	 * naming another process means the variable was inherited by mistake. */
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	if (usec != NULL && (pid == NULL || strtol(pid, NULL, 10) == (long)getpid())) {
		char *end;
		errno = 0;
		unsigned long long us = strtoull(usec, &end, 10);
		if (errno == 0 && *end == '\0' && us > 0)
			w->interval_ms = (int64_t)(us / 2000);
		if (w->interval_ms == 0 && us > 0)
			w->interval_ms = 1;
	}
	return 0;
}

static int sd_notify_msg(struct watchdog *w, const char *state)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, w->path, w->path_len);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + w->path_len);
	/* A pathname address may include its NUL; an abstract one must not. */
	if (w->path[0] != '\0')
		salen++;
	ssize_t n = sendto(w->fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	                   salen);
	if (n < 0)
		return -errno;
	return 0;
}

static void sd_close(struct watchdog *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

static const struct watchdog_ops sd_ops = {
	.name = "systemd", .open = sd_open, .notify = sd_notify_msg, .close = sd_close,
};

int watchdog_new(struct watchdog **out, const char *name)
{
	if (out == NULL || name == NULL)
		return -EINVAL;
	const struct watchdog_ops *ops;
	if (strcmp(name, "systemd") == 0)
		ops = &sd_ops;
	else if (strcmp(name, "none") == 0)
		ops = &none_ops;
	else
		return -EINVAL;
	struct watchdog *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->ops = ops;
	w->fd = -1;
	int r = ops->open(w);
	if (r != 0) {
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

int watchdog_new_auto(struct watchdog **out)
{
	const char *s = getenv("NOTIFY_SOCKET");
	return watchdog_new(out, s != NULL && s[0] != '\0' ? "systemd" : "none");
}

void watchdog_free(struct watchdog *w)
{
	if (w == NULL)
		return;
	w->ops->close(w);
	free(w);
}

const char *watchdog_name(const struct watchdog *w)
{
	return w->ops->name;
}

int watchdog_ready(struct watchdog *w)
{
	return w->ops->notify(w, "READY=1");
}

int watchdog_pet(struct watchdog *w)
{
	return w->ops->notify(w, "WATCHDOG=1");
}

int watchdog_stopping(struct watchdog *w)
{
	return w->ops->notify(w, "STOPPING=1");
}

int watchdog_status(struct watchdog *w, const char *text)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "STATUS=%s", text);
	return w->ops->notify(w, buf);
}

int64_t watchdog_interval_ms(const struct watchdog *w)
{
	return w->interval_ms;
}
