/*
 * ignition.c - the ignition wrapper and its "none" and "mock" backends.
 */
#include "ignition.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int none_open(struct ignition *ig)
{
	(void)ig;
	return 0;
}

static int none_fd(const struct ignition *ig)
{
	(void)ig;
	return -1;
}

static int none_read(struct ignition *ig)
{
	(void)ig;
	return 0;
}

static void none_close(struct ignition *ig)
{
	(void)ig;
}

static const struct ignition_ops none_ops = {
	.name = "none", .open = none_open, .fd = none_fd, .read = none_read, .close = none_close,
};

/* The mock: the wanted level and an eventfd that wakes the loop when it changes. */
struct mock_priv {
	int efd;
	bool level;
};

static int mock_open(struct ignition *ig)
{
	struct mock_priv *p = ig->priv;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return p->efd < 0 ? -errno : 0;
}

static int mock_fd(const struct ignition *ig)
{
	const struct mock_priv *p = ig->priv;
	return p->efd;
}

static int mock_read(struct ignition *ig)
{
	struct mock_priv *p = ig->priv;
	uint64_t v;
	if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	ignition__report(ig, p->level);
	return 0;
}

static void mock_close(struct ignition *ig)
{
	struct mock_priv *p = ig->priv;
	if (p->efd >= 0)
		close(p->efd);
	p->efd = -1;
}

static const struct ignition_ops mock_ops = {
	.name = "mock", .open = mock_open, .fd = mock_fd, .read = mock_read, .close = mock_close,
};

int ignition_new(struct ignition **out, const char *name, ignition_cb cb, void *ctx)
{
	if (out == NULL || name == NULL || cb == NULL)
		return -EINVAL;
	const struct ignition_ops *ops;
	if (strcmp(name, "none") == 0)
		ops = &none_ops;
	else if (strcmp(name, "mock") == 0)
		ops = &mock_ops;
	else
		return -EINVAL;
	struct ignition *ig = calloc(1, sizeof(*ig));
	if (ig == NULL)
		return -ENOMEM;
	if (ops == &mock_ops) {
		struct mock_priv *p = calloc(1, sizeof(*p));
		if (p == NULL) {
			free(ig);
			return -ENOMEM;
		}
		p->efd = -1;
		ig->priv = p;
	}
	ig->ops = ops;
	ig->cb = cb;
	ig->cb_ctx = ctx;
	*out = ig;
	return 0;
}

void ignition_free(struct ignition *ig)
{
	if (ig == NULL)
		return;
	ignition_close(ig);
	free(ig->priv);
	free(ig);
}

int ignition_open(struct ignition *ig)
{
	if (ig == NULL)
		return -EINVAL;
	if (ig->is_open)
		return 0;
	int r = ig->ops->open(ig);
	if (r == 0)
		ig->is_open = true;
	return r;
}

int ignition_fd(const struct ignition *ig)
{
	return ig != NULL && ig->is_open ? ig->ops->fd(ig) : -1;
}

int ignition_read(struct ignition *ig)
{
	if (ig == NULL || !ig->is_open)
		return -EBADF;
	return ig->ops->read(ig);
}

void ignition_close(struct ignition *ig)
{
	if (ig == NULL || !ig->is_open)
		return;
	ig->ops->close(ig);
	ig->is_open = false;
}

void ignition__report(struct ignition *ig, bool on)
{
	if (ig->known && ig->on == on)
		return;
	ig->known = true;
	ig->on = on;
	ig->cb(ig->cb_ctx, on);
}

int ignition_mock_set(struct ignition *ig, bool on)
{
	if (ig == NULL || ig->ops != &mock_ops)
		return -EINVAL;
	struct mock_priv *p = ig->priv;
	p->level = on;
	if (p->efd >= 0) {
		uint64_t one = 1;
		if (write(p->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			return -errno;
	}
	return 0;
}
