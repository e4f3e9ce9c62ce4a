/*
 * gnss_mock.c - a GNSS source for tests: fixes pushed by the test come out of gnss_read()
 * when an eventfd says so, exactly as a real source's would. It is also the template for
 * a new backend: open acquires, fd exposes something pollable, read delivers through
 * gnss__deliver(), close releases.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gnss.h"

#define MOCK_QUEUE 64

struct mock_priv {
	int efd;
	int fail_opens;
	size_t head, count;
	struct gnss_report q[MOCK_QUEUE];
};

static struct mock_priv *mock_priv(struct gnss *g)
{
	if (g->priv == NULL) {
		struct mock_priv *p = calloc(1, sizeof(*p));
		if (p == NULL)
			return NULL;
		p->efd = -1;
		g->priv = p;
	}
	return g->priv;
}

static int mock_open(struct gnss *g)
{
	struct mock_priv *p = mock_priv(g);
	if (p == NULL)
		return -ENOMEM;
	if (p->fail_opens > 0) {
		p->fail_opens--;
		return -ECONNREFUSED;
	}
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0)
		return -errno;
	if (p->count > 0) {
		uint64_t one = 1;
		if (write(p->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			return -errno;
	}
	return 0;
}

static int mock_fd(const struct gnss *g)
{
	const struct mock_priv *p = g->priv;
	return p != NULL ? p->efd : -1;
}

static int mock_read(struct gnss *g)
{
	struct mock_priv *p = g->priv;
	if (p == NULL || p->efd < 0)
		return -EBADF;
	uint64_t v;
	/* EAGAIN only means the counter was already drained by an earlier read. */
	if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	while (p->count > 0) {
		struct gnss_report r = p->q[p->head];
		p->head = (p->head + 1) % MOCK_QUEUE;
		p->count--;
		(void)gnss__deliver(g, &r);
	}
	return 0;
}

static void mock_close(struct gnss *g)
{
	struct mock_priv *p = g->priv;
	if (p != NULL && p->efd >= 0) {
		close(p->efd);
		p->efd = -1;
	}
}

const struct gnss_ops gnss_mock_ops = {
	.name = "mock",
	.open = mock_open,
	.fd = mock_fd,
	.read = mock_read,
	.close = mock_close,
};

int gnss_mock_push(struct gnss *g, const struct gnss_report *r)
{
	if (g == NULL || r == NULL || g->ops != &gnss_mock_ops)
		return -EINVAL;
	struct mock_priv *p = mock_priv(g);
	if (p == NULL)
		return -ENOMEM;
	if (p->count == MOCK_QUEUE)
		return -ENOSPC;
	p->q[(p->head + p->count) % MOCK_QUEUE] = *r;
	p->count++;
	if (p->efd >= 0) {
		uint64_t one = 1;
		if (write(p->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			return -errno;
	}
	return 0;
}

void gnss_mock_fail_opens(struct gnss *g, int n)
{
	if (g == NULL || g->ops != &gnss_mock_ops)
		return;
	struct mock_priv *p = mock_priv(g);
	if (p != NULL)
		p->fail_opens = n;
}
