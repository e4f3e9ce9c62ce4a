/*
 * gnss.c - the GNSS wrapper: backend choice, fix validation, reconnect backoff.
 */
#include "gnss.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

static int none_open(struct gnss *g)
{
	(void)g;
	return 0;
}

static int none_fd(const struct gnss *g)
{
	(void)g;
	return -1;
}

static int none_read(struct gnss *g)
{
	(void)g;
	return 0;
}

static void none_close(struct gnss *g)
{
	(void)g;
}

const struct gnss_ops gnss_none_ops = {
	.name = "none",
	.open = none_open,
	.fd = none_fd,
	.read = none_read,
	.close = none_close,
};

static const struct {
	const char *name;
	const struct gnss_ops *ops;
} backends[] = {
	{ "gpsd", &gnss_gpsd_ops },
	{ "app", &gnss_none_ops },
	{ "none", &gnss_none_ops },
	{ "mock", &gnss_mock_ops },
};

int gnss_new(struct gnss **out, const char *source, const char *host, const char *port,
             gnss_report_cb cb, void *ctx)
{
	if (out == NULL || source == NULL || cb == NULL)
		return -EINVAL;
	const struct gnss_ops *ops = NULL;
	const char *name = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (strcmp(source, backends[i].name) == 0) {
			ops = backends[i].ops;
			name = backends[i].name;
		}
	}
	if (ops == NULL)
		return -EINVAL;
	struct gnss *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	g->ops = ops;
	g->source = name;
	snprintf(g->host, sizeof(g->host), "%s", host != NULL ? host : "127.0.0.1");
	snprintf(g->port, sizeof(g->port), "%s", port != NULL ? port : "2947");
	g->cb = cb;
	g->cb_ctx = ctx;
	g->backoff_ms = 0;
	*out = g;
	return 0;
}

void gnss_free(struct gnss *g)
{
	if (g == NULL)
		return;
	gnss_close(g);
	/* The mock keeps its queue in priv even while closed. */
	free(g->priv);
	free(g);
}

int gnss_open(struct gnss *g)
{
	if (g == NULL)
		return -EINVAL;
	if (g->is_open)
		return 0;
	int r = g->ops->open(g);
	if (r == 0)
		g->is_open = true;
	return r;
}

int gnss_fd(const struct gnss *g)
{
	if (g == NULL || !g->is_open)
		return -1;
	return g->ops->fd(g);
}

int gnss_read(struct gnss *g)
{
	if (g == NULL || !g->is_open)
		return -EBADF;
	return g->ops->read(g);
}

void gnss_close(struct gnss *g)
{
	if (g == NULL || !g->is_open)
		return;
	g->ops->close(g);
	g->is_open = false;
}

bool gnss_active(const struct gnss *g)
{
	return g != NULL && g->ops != &gnss_none_ops;
}

int64_t gnss_backoff_next(struct gnss *g)
{
	if (g->backoff_ms < GNSS_BACKOFF_MIN_MS)
		g->backoff_ms = GNSS_BACKOFF_MIN_MS;
	else if (g->backoff_ms < GNSS_BACKOFF_MAX_MS / 2)
		g->backoff_ms *= 2;
	else
		g->backoff_ms = GNSS_BACKOFF_MAX_MS;
	return g->backoff_ms;
}

static double finite_or_nan(double v)
{
	return isfinite(v) ? v : NAN;
}

int gnss__deliver(struct gnss *g, const struct gnss_report *r)
{
	const char *why = NULL;
	if (r->fix.mode < 2 || r->fix.mode > 3)
		why = "no 2D or 3D fix";
	else if (!isfinite(r->fix.lat) || r->fix.lat < -90.0 || r->fix.lat > 90.0)
		why = "latitude out of range";
	else if (!isfinite(r->fix.lon) || r->fix.lon < -180.0 || r->fix.lon > 180.0)
		why = "longitude out of range";
	if (why != NULL) {
		g->dropped++;
		g->last_drop = why;
		return -EINVAL;
	}
	struct gnss_report n = *r;
	/* Unknown quantities are NaN for the engine; negative speeds or errors are nonsense
	 * from a receiver and are treated as unknown rather than trusted. */
	n.fix.speed_mps = finite_or_nan(n.fix.speed_mps);
	if (n.fix.speed_mps < 0)
		n.fix.speed_mps = NAN;
	n.fix.eph_m = finite_or_nan(n.fix.eph_m);
	if (n.fix.eph_m < 0)
		n.fix.eph_m = NAN;
	n.fix.course_deg = finite_or_nan(n.fix.course_deg);
	if (isfinite(n.fix.course_deg) && (n.fix.course_deg < 0 || n.fix.course_deg >= 360.0))
		n.fix.course_deg = fmod(fmod(n.fix.course_deg, 360.0) + 360.0, 360.0);
	g->delivered++;
	g->backoff_ms = 0;
	g->cb(g->cb_ctx, &n);
	return 0;
}
