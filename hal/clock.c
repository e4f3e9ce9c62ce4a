/*
 * clock.c - the engine timeline built on CLOCK_BOOTTIME, labelled by the best wall clock.
 */
#include "clock.h"

#include <stdlib.h>
#include <sys/timex.h>
#include <time.h>

#ifndef COVERD_BUILD_EPOCH
#define COVERD_BUILD_EPOCH 1767225600   /* 2026-01-01T00:00:00Z when the build gives none */
#endif

static int64_t read_clock(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sys_boottime(void *ctx)
{
	(void)ctx;
	return read_clock(CLOCK_BOOTTIME);
}

static int64_t sys_realtime(void *ctx)
{
	(void)ctx;
	return read_clock(CLOCK_REALTIME);
}

static bool sys_synced(void *ctx)
{
	(void)ctx;
	struct timex tx = { 0 };
	/* adjtimex with modes 0 only reads. TIME_ERROR (or STA_UNSYNC) means no time
	 * service is disciplining the clock, so it is only as good as the RTC it was set from. */
	int state = adjtimex(&tx);
	if (state < 0 || state == TIME_ERROR)
		return false;
	return (tx.status & STA_UNSYNC) == 0;
}

static const struct clock_source system_source = {
	.boottime_ms = sys_boottime,
	.realtime_ms = sys_realtime,
	.synced = sys_synced,
	.ctx = NULL,
};

const struct clock_source *clock_source_system(void)
{
	return &system_source;
}

int64_t clock_build_epoch_ms(void)
{
	return (int64_t)COVERD_BUILD_EPOCH * 1000;
}

static int64_t llabs64(int64_t v)
{
	return v < 0 ? -v : v;
}

void clock_init(struct clock *c, const struct clock_source *src, int64_t last_event_ms)
{
	c->src = *src;
	c->floor_ms = clock_build_epoch_ms();
	if (last_event_ms != INT64_MIN && last_event_ms > c->floor_ms)
		c->floor_ms = last_event_ms;
	int64_t boot = c->src.boottime_ms(c->src.ctx);
	int64_t real = c->src.realtime_ms(c->src.ctx);
	c->plausible = real >= c->floor_ms;
	c->offset_ms = (c->plausible ? real : c->floor_ms) - boot;
	c->ref_skew_ms = real - (boot + c->offset_ms);
	c->step_pending = false;
	c->steps = 0;
	c->gnss_agreed_boot_ms = INT64_MIN;
}

int64_t clock_now(struct clock *c)
{
	return c->src.boottime_ms(c->src.ctx) + c->offset_ms;
}

int64_t clock_to_boottime(const struct clock *c, int64_t t_ms)
{
	return t_ms - c->offset_ms;
}

bool clock_check_step(struct clock *c)
{
	int64_t boot = c->src.boottime_ms(c->src.ctx);
	int64_t real = c->src.realtime_ms(c->src.ctx);
	int64_t skew = real - (boot + c->offset_ms);
	if (llabs64(skew - c->ref_skew_ms) <= CLOCK_STEP_MS)
		return false;
	c->ref_skew_ms = skew;
	c->step_pending = true;
	c->steps++;
	return true;
}

enum engine_time_quality clock_quality(struct clock *c)
{
	if (!c->plausible)
		return TQ_UNSYNCED;
	int64_t boot = c->src.boottime_ms(c->src.ctx);
	if (c->gnss_agreed_boot_ms != INT64_MIN && boot >= c->gnss_agreed_boot_ms &&
	    boot - c->gnss_agreed_boot_ms < CLOCK_GNSS_HOLD_MS)
		return TQ_GNSS;
	int64_t real = c->src.realtime_ms(c->src.ctx);
	if (llabs64(real - (boot + c->offset_ms)) <= CLOCK_STEP_MS && c->src.synced(c->src.ctx))
		return TQ_NTP;
	return TQ_RTC;
}

void clock_stamp(struct clock *c, struct engine_event *ev, int64_t gnss_time_ms)
{
	(void)clock_check_step(c);
	ev->t_ms = clock_now(c);
	if (gnss_time_ms != INT64_MIN && c->plausible) {
		if (llabs64(gnss_time_ms - ev->t_ms) <= CLOCK_STEP_MS)
			c->gnss_agreed_boot_ms = clock_to_boottime(c, ev->t_ms);
		else
			c->gnss_agreed_boot_ms = INT64_MIN;
	}
	if (gnss_time_ms != INT64_MIN && llabs64(gnss_time_ms - ev->t_ms) <= CLOCK_STEP_MS)
		ev->tq = TQ_GNSS;
	else
		ev->tq = clock_quality(c);
	if (c->step_pending) {
		ev->anomalies |= ANOM_CLOCK_STEP;
		c->step_pending = false;
	}
}

bool clock_reanchor(struct clock *c)
{
	int64_t boot = c->src.boottime_ms(c->src.ctx);
	int64_t real = c->src.realtime_ms(c->src.ctx);
	int64_t now = boot + c->offset_ms;
	if (real < c->floor_ms || real - now <= CLOCK_STEP_MS)
		return false;
	if (c->plausible && !c->src.synced(c->src.ctx))
		return false;
	/* Only forward: the timeline must never run backwards, or the engine would reject
	 * every later event as out of order. */
	c->offset_ms = real - boot;
	c->plausible = true;
	c->ref_skew_ms = 0;
	c->gnss_agreed_boot_ms = INT64_MIN;
	c->step_pending = true;
	c->steps++;
	return true;
}
