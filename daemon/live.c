/*
 * live.c - live sources wired into the loop: the clock, GNSS and ignition.
 */
#include "live.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "gnss.h"
#include "ignition.h"
#include "log.h"

struct live {
	struct core *core;
	struct loop *loop;
	struct clock clk;
	struct gnss *gnss;
	struct ignition *ign;
	int gnss_fd;                    /* registered with the loop, or -1 */
	int ign_fd;
	struct loop_timer gnss_retry;   /* reconnect with backoff */
	struct loop_timer gnss_drain;   /* libgps holds buffered reports */
	int gnss_failures;              /* consecutive failed opens, for quieter logs */
	uint64_t gnss_connects;
};

/* ---------------------------------------------------------------- timebase */

static int64_t tb_now(void *ctx)
{
	struct live *lv = ctx;
	return clock_now(&lv->clk);
}

static int64_t tb_to_loop(void *ctx, int64_t t_ms)
{
	struct live *lv = ctx;
	return clock_to_boottime(&lv->clk, t_ms);
}

static void tb_stamp(void *ctx, struct engine_event *ev, int64_t gnss_time_ms)
{
	struct live *lv = ctx;
	/* A wall clock that became trustworthy after start (NTP synced late, or set after a
	 * boot without RTC) is adopted only between sessions, where no billed duration can
	 * stretch or shrink because of it. */
	if (!core_state(lv->core)->s.open && clock_reanchor(&lv->clk))
		log_info("clock: timeline moved forward to the wall clock (%s)",
		         engine_tq_name(clock_quality(&lv->clk)));
	bool stepped_before = lv->clk.step_pending;
	/* The event may arrive flagged already (an app reporting clock_step, or a skewed app
	 * time): that is the source's report, not this device's clock stepping. */
	bool flagged = (ev->anomalies & ANOM_CLOCK_STEP) != 0;
	clock_stamp(&lv->clk, ev, gnss_time_ms);
	if (!stepped_before && !flagged && (ev->anomalies & ANOM_CLOCK_STEP))
		log_warnx("clock: the wall clock stepped; timeline kept, event flagged");
}

/* ---------------------------------------------------------------- GNSS */

static void gnss_schedule_retry(struct live *lv);

static void on_gnss_report(void *ctx, const struct gnss_report *r)
{
	struct live *lv = ctx;
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = COV_EV_FIX;
	ev.u.fix = r->fix;
	core_stamp(lv->core, &ev, r->gnss_time_ms);
	int e = core_submit(lv->core, &ev, lv->gnss->source, NULL, NULL);
	if (e != 0)
		log_warnx("gnss: fix not stored: %s", store_strerror(e));
}

static void gnss_drop(struct live *lv, const char *why, int err)
{
	if (lv->gnss_fd >= 0)
		(void)loop_del_fd(lv->loop, lv->gnss_fd);
	lv->gnss_fd = -1;
	loop_timer_stop(lv->loop, &lv->gnss_drain);
	gnss_close(lv->gnss);
	log_warnx("gnss: %s source at %s:%s %s: %s", lv->gnss->source, lv->gnss->host,
	          lv->gnss->port, why, strerror(err > 0 ? err : -err));
	gnss_schedule_retry(lv);
}

static void gnss_do_read(struct live *lv)
{
	int r = gnss_read(lv->gnss);
	if (r < 0) {
		core_count(lv->core, "gnss.disconnects", 1);
		gnss_drop(lv, "lost", r);
	} else if (r == 1) {
		(void)loop_timer_after(lv->loop, &lv->gnss_drain, 0, 0);
	}
}

static void on_gnss_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	struct live *lv = arg;
	if ((events & (LOOP_READ | LOOP_ERROR)) != 0)
		gnss_do_read(lv);
}

static void on_gnss_drain(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct live *lv = arg;
	if (lv->gnss_fd >= 0)
		gnss_do_read(lv);
}

/* Opens the source and watches its descriptor; on failure schedules a retry. */
static void gnss_connect(struct live *lv)
{
	int r = gnss_open(lv->gnss);
	if (r != 0) {
		lv->gnss_failures++;
		int64_t wait = gnss_backoff_next(lv->gnss);
		/* The first failure is worth a warning; a gpsd that stays away would otherwise
		 * fill the log, so later ones are debug. */
		if (lv->gnss_failures == 1)
			log_warnx("gnss: %s at %s:%s not available (%s); retrying in %" PRId64
			          " s, backing off up to %d s", lv->gnss->source, lv->gnss->host,
			          lv->gnss->port, strerror(-r), wait / 1000, GNSS_BACKOFF_MAX_MS / 1000);
		else
			log_debug("gnss: open failed again (%s); next try in %" PRId64 " ms",
			          strerror(-r), wait);
		(void)loop_timer_after(lv->loop, &lv->gnss_retry, wait, 0);
		return;
	}
	int fd = gnss_fd(lv->gnss);
	if (fd >= 0) {
		r = loop_add_fd(lv->loop, fd, LOOP_READ, on_gnss_fd, lv);
		if (r != 0) {
			gnss_close(lv->gnss);
			log_warnx("gnss: cannot watch the source: %s", strerror(-r));
			(void)loop_timer_after(lv->loop, &lv->gnss_retry, gnss_backoff_next(lv->gnss), 0);
			return;
		}
		lv->gnss_fd = fd;
	}
	lv->gnss_failures = 0;
	lv->gnss_connects++;
	if (gnss_active(lv->gnss))
		log_info("gnss: connected to %s at %s:%s", lv->gnss->source, lv->gnss->host,
		         lv->gnss->port);
}

static void on_gnss_retry(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	gnss_connect(arg);
}

static void gnss_schedule_retry(struct live *lv)
{
	(void)loop_timer_after(lv->loop, &lv->gnss_retry, gnss_backoff_next(lv->gnss), 0);
}

/* ---------------------------------------------------------------- ignition */

static void on_ignition(void *ctx, bool on)
{
	struct live *lv = ctx;
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = COV_EV_IGNITION;
	ev.u.ignition_on = on;
	core_stamp(lv->core, &ev, INT64_MIN);
	log_info("ignition %s", on ? "on" : "off");
	int e = core_submit(lv->core, &ev, "ignition", NULL, NULL);
	if (e != 0)
		log_warnx("ignition event not stored: %s", store_strerror(e));
}

static void on_ignition_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	(void)events;
	struct live *lv = arg;
	int r = ignition_read(lv->ign);
	if (r < 0)
		log_warnx("ignition: read failed: %s", strerror(-r));
}

/* ---------------------------------------------------------------- lifecycle */

int live_new(struct live **out, struct core *c, struct loop *l, const struct coverd_config *cfg,
             const char *ignition, char *err, size_t errlen)
{
	struct live *lv = calloc(1, sizeof(*lv));
	if (lv == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	lv->core = c;
	lv->loop = l;
	lv->gnss_fd = -1;
	lv->ign_fd = -1;
	loop_timer_init(&lv->gnss_retry, on_gnss_retry, lv);
	loop_timer_init(&lv->gnss_drain, on_gnss_drain, lv);

	const struct engine_state *st = core_state(c);
	clock_init(&lv->clk, clock_source_system(), st->started ? st->last_t_ms : INT64_MIN);
	if (!lv->clk.plausible)
		log_warnx("clock: the wall clock is before %s; continuing the timeline from there "
		          "and labelling times unsynced", st->started ? "the last stored event" :
		          "this build's date");
	struct core_timebase tb = { .now = tb_now, .to_loop = tb_to_loop, .stamp = tb_stamp,
	                            .ctx = lv };
	core_set_timebase(c, &tb);

	int r = gnss_new(&lv->gnss, cfg->gnss_source, cfg->gpsd_host, cfg->gpsd_port,
	                 on_gnss_report, lv);
	if (r != 0) {
		snprintf(err, errlen, "[gnss] source \"%s\": unknown (gpsd, app or none)",
		         cfg->gnss_source);
		free(lv);
		return r;
	}
	gnss_connect(lv);

	r = ignition_new(&lv->ign, ignition != NULL ? ignition : "none", on_ignition, lv);
	if (r == 0)
		r = ignition_open(lv->ign);
	if (r != 0) {
		snprintf(err, errlen, "ignition backend \"%s\": %s", ignition ? ignition : "none",
		         strerror(-r));
		live_free(lv);
		return r;
	}
	int fd = ignition_fd(lv->ign);
	if (fd >= 0) {
		r = loop_add_fd(l, fd, LOOP_READ, on_ignition_fd, lv);
		if (r != 0) {
			snprintf(err, errlen, "ignition: cannot watch the line: %s", strerror(-r));
			live_free(lv);
			return r;
		}
		lv->ign_fd = fd;
	}
	*out = lv;
	return 0;
}

void live_free(struct live *lv)
{
	if (lv == NULL)
		return;
	loop_timer_stop(lv->loop, &lv->gnss_retry);
	loop_timer_stop(lv->loop, &lv->gnss_drain);
	if (lv->gnss_fd >= 0)
		(void)loop_del_fd(lv->loop, lv->gnss_fd);
	if (lv->ign_fd >= 0)
		(void)loop_del_fd(lv->loop, lv->ign_fd);
	gnss_free(lv->gnss);
	ignition_free(lv->ign);
	free(lv);
}

void live_status(void *ctx, struct cJSON *status)
{
	struct live *lv = ctx;
	cJSON *g = cJSON_AddObjectToObject(status, "gnss");
	if (g != NULL) {
		(void)cJSON_AddStringToObject(g, "source", lv->gnss->source);
		(void)cJSON_AddBoolToObject(g, "connected", lv->gnss->is_open);
		(void)cJSON_AddNumberToObject(g, "fixes", (double)lv->gnss->delivered);
		(void)cJSON_AddNumberToObject(g, "dropped", (double)lv->gnss->dropped);
	}
	cJSON *c = cJSON_AddObjectToObject(status, "clock");
	if (c != NULL) {
		(void)cJSON_AddStringToObject(c, "quality", engine_tq_name(clock_quality(&lv->clk)));
		(void)cJSON_AddNumberToObject(c, "steps", (double)lv->clk.steps);
	}
}
