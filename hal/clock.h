/*
 * clock.h - the engine's timeline (see daemon/engine.h, "Time").
 *
 * t_ms = CLOCK_BOOTTIME ms + offset. The offset is fixed once, at start:
 *  - when the wall clock is plausible (not before the build date and not before the last
 *    persisted event time), t_ms starts equal to CLOCK_REALTIME, so it serves as a UTC
 *    label;
 *  - otherwise the timeline continues from the last persisted event time (or the build
 *    date when nothing was ever stored), and every label is TQ_UNSYNCED.
 * Because the offset never changes while a session may be open, durations stay right
 * across wall-clock steps and suspends (invariant 4). A wall-clock step (the difference
 * between CLOCK_REALTIME and the timeline changing by more than CLOCK_STEP_MS) is
 * reported as ANOM_CLOCK_STEP on the next stamped event. clock_reanchor() moves the
 * timeline forward to a wall clock that became plausible later (say NTP synced after
 * boot), and is only called by the daemon while no session is open.
 *
 * Time quality of a stamp: TQ_UNSYNCED when the anchor was implausible; TQ_GNSS when a
 * fix's GNSS time agreed with the timeline within CLOCK_STEP_MS less than
 * CLOCK_GNSS_HOLD_MS ago (the timeline is then as good as GNSS time, whatever event the
 * stamp is for: an app event or a tick as well as the fix); TQ_NTP when the kernel says
 * the clock is synchronised (adjtimex) and the timeline agrees with it within
 * CLOCK_STEP_MS; TQ_RTC otherwise. A GNSS time that disagrees with the timeline (a
 * receiver after a week-number rollover) ends the hold, and so does a re-anchoring.
 *
 * The readings come from a struct clock_source: clock_source_system() for the daemon, or a
 * caller-made table (tests drive a fake boot time, wall time and sync flag).
 */
#ifndef COVERD_HAL_CLOCK_H
#define COVERD_HAL_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define CLOCK_STEP_MS 2000
/* How long a GNSS agreement vouches for the timeline. CLOCK_BOOTTIME drifts by at most a
 * few hundred ppm, well under CLOCK_STEP_MS in this time. */
#define CLOCK_GNSS_HOLD_MS (10 * 60 * 1000)

struct clock_source {
	int64_t (*boottime_ms)(void *ctx);   /* CLOCK_BOOTTIME */
	int64_t (*realtime_ms)(void *ctx);   /* CLOCK_REALTIME */
	bool (*synced)(void *ctx);           /* the kernel's clock is NTP-disciplined */
	void *ctx;
};

/* The real clocks; a static table, never NULL. */
const struct clock_source *clock_source_system(void);

/* The build time in ms since the epoch: a wall clock before it is implausible. */
int64_t clock_build_epoch_ms(void);

struct clock {
	struct clock_source src;
	int64_t offset_ms;          /* t_ms = boottime + offset */
	int64_t floor_ms;           /* plausibility floor: max(build epoch, last persisted) */
	bool plausible;             /* anchored to a plausible wall clock */
	int64_t ref_skew_ms;        /* realtime - timeline when last judged */
	bool step_pending;          /* a step was seen and not yet reported */
	int64_t gnss_agreed_boot_ms; /* boot time of the last GNSS time that agreed, or INT64_MIN */
	uint64_t steps;             /* wall-clock steps seen since start */
};

/*
 * Anchors the timeline. last_event_ms is the last persisted event time, or INT64_MIN when
 * nothing was stored. src is copied. Never fails.
 */
void clock_init(struct clock *c, const struct clock_source *src, int64_t last_event_ms);

/* The timeline now. */
int64_t clock_now(struct clock *c);
/* Converts between the timeline and CLOCK_BOOTTIME ms (the event loop's time). */
int64_t clock_to_boottime(const struct clock *c, int64_t t_ms);

/* Looks for a wall-clock step since the last look; true when one was seen now. */
bool clock_check_step(struct clock *c);

/* The quality a stamp taken now carries. */
enum engine_time_quality clock_quality(struct clock *c);

/*
 * Stamps ev with the timeline now: sets t_ms and tq and adds ANOM_CLOCK_STEP when a step
 * was seen since the last stamp. gnss_time_ms is the fix's own GNSS time or INT64_MIN.
 */
void clock_stamp(struct clock *c, struct engine_event *ev, int64_t gnss_time_ms);

/*
 * When the anchor was implausible or the wall clock has since stepped ahead, moves the
 * timeline forward to the wall clock (never backward). Call only when no session is open:
 * it changes every duration measured across it. Returns true when it moved.
 */
bool clock_reanchor(struct clock *c);

#endif
