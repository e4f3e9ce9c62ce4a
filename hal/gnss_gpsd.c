/*
 * gnss_gpsd.c - fixes from gpsd through libgps.
 *
 * gps_open() connects over TCP; the connect itself is the one call here that can wait,
 * which is why [gnss] host should be a numeric loopback or LAN address (gpsd runs on the
 * device): a refused or accepted loopback connect returns at once. After that the socket
 * is only read when the event loop says it is readable, and gps_waiting(…, 0) is a
 * zero-timeout poll, so nothing blocks.
 *
 * Each TPV report with a 2D or 3D fix becomes one gnss_report: gpsd already gives speed
 * in m/s, course in degrees and eph in metres, exactly the engine's units.
 */
#include <errno.h>
#include <gps.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnss.h"

/* Reports handled per gnss_read(): enough to drain a burst, small enough to stay fair
 * to the other descriptors of the loop. */
#define GPSD_READS_PER_CALL 32

struct gpsd_priv {
	struct gps_data_t data;
};

static int gpsd_open(struct gnss *g)
{
	struct gpsd_priv *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	errno = 0;
	if (gps_open(g->host, g->port, &p->data) != 0) {
		/* libgps reports its own negative codes in errno for name and connect
		 * failures; they all mean "gpsd is not there now". */
		int e = errno > 0 ? errno : ECONNREFUSED;
		free(p);
		return -e;
	}
	if (gps_stream(&p->data, WATCH_ENABLE | WATCH_JSON, NULL) != 0) {
		int e = errno > 0 ? errno : EIO;
		(void)gps_close(&p->data);
		free(p);
		return -e;
	}
	g->priv = p;
	return 0;
}

static int gpsd_fd(const struct gnss *g)
{
	const struct gpsd_priv *p = g->priv;
	return p != NULL ? (int)p->data.gps_fd : -1;
}

static int64_t ts_ms(const timespec_t *ts)
{
	return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

/* Turns the TPV just read into a report, when it holds a usable fix. */
static void gpsd_handle(struct gnss *g, const struct gps_data_t *d)
{
	if ((d->set & MODE_SET) == 0 || (d->set & LATLON_SET) == 0)
		return;
	if (d->fix.mode < MODE_2D)
		return;
	struct gnss_report r;
	memset(&r, 0, sizeof(r));
	r.fix.lat = d->fix.latitude;
	r.fix.lon = d->fix.longitude;
	r.fix.speed_mps = (d->set & SPEED_SET) ? d->fix.speed : NAN;
	r.fix.course_deg = (d->set & TRACK_SET) ? d->fix.track : NAN;
	r.fix.eph_m = d->fix.eph;
	r.fix.mode = d->fix.mode;
	r.gnss_time_ms = (d->set & TIME_SET) && d->fix.time.tv_sec > 0 ? ts_ms(&d->fix.time)
	                                                                : INT64_MIN;
	/* An invalid fix is counted by the wrapper; the stream goes on. */
	(void)gnss__deliver(g, &r);
}

static int gpsd_read(struct gnss *g)
{
	struct gpsd_priv *p = g->priv;
	if (p == NULL)
		return -EBADF;
	for (int i = 0; i < GPSD_READS_PER_CALL; i++) {
		p->data.set = 0;
		errno = 0;
		int n = gps_read(&p->data, NULL, 0);
		if (n < 0)
			return errno > 0 ? -errno : -ECONNRESET;
		if (n == 0)
			return 0;
		gpsd_handle(g, &p->data);
		if (!gps_waiting(&p->data, 0))
			return 0;
	}
	/* More is buffered inside libgps, where epoll cannot see it. */
	return 1;
}

static void gpsd_close(struct gnss *g)
{
	struct gpsd_priv *p = g->priv;
	if (p == NULL)
		return;
	(void)gps_stream(&p->data, WATCH_DISABLE, NULL);
	(void)gps_close(&p->data);
	free(p);
	g->priv = NULL;
}

const struct gnss_ops gnss_gpsd_ops = {
	.name = "gpsd",
	.open = gpsd_open,
	.fd = gpsd_fd,
	.read = gpsd_read,
	.close = gpsd_close,
};
