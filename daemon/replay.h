/*
 * replay.h - `coverd --replay FILE`: a scenario (JSON Lines, docs/scenario-format.md) fed
 * through the same core as live input.
 *
 * Pacing: with speed > 0 an event is submitted when the loop's clock reaches its recorded
 * time divided by speed (speed 1 is the recorded pace), using a loop timer, never sleep();
 * the engine's deadlines between events fire on their own timer at the same scale. With
 * speed 0 (--speed max) lines are processed as fast as the store commits them, in slices
 * that yield to the loop so the socket stays served; engine_step fires deadlines itself
 * before each event.
 *
 * Lines: blank lines and '#' comments are skipped. A line that is too long (over
 * EVJSON_LINE_MAX bytes) or does not parse is reported on stderr as "FILE:LINE: reason",
 * counted (scenario.bad_line) and skipped. An event the engine rejects is reported the same
 * way ("FILE:LINE: event rejected: out_of_order"). {"type":"restart"} restarts the core in
 * process (flush, close, reopen, reload), as a real restart would.
 *
 * At end of file the engine is ticked to the last event time, the state is flushed and
 * "replay: N lines, A applied, R rejected, B bad" is printed on stdout; then done() is
 * called with 0, or with a negative errno when the store failed.
 */
#ifndef COVERD_REPLAY_H
#define COVERD_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "loop.h"

struct replay;

struct replay_counts {
	uint64_t lines, applied, rejected, bad, restarts;
};

typedef void (*replay_done_cb)(void *ctx, int status);

/*
 * Opens path for reading. speed: > 0 a multiple of the recorded pace, 0 as fast as
 * possible. -errno with err naming the path when it cannot be opened.
 */
int replay_new(struct replay **out, const char *path, double speed, struct core *c,
               struct loop *l, replay_done_cb done, void *ctx, char *err, size_t errlen);
/* Installs the replay's timebase in the core and starts reading. */
int replay_start(struct replay *r);
void replay_free(struct replay *r);

/*
 * After end of file the timeline goes on at the recorded pace from the last event (for
 * --stay), so socket events without a time and later deadlines follow the replayed clock.
 */
const struct replay_counts *replay_counts(const struct replay *r);
bool replay_finished(const struct replay *r);
/* Parses "--speed" values: a positive number, or "max" (0). 0 or -EINVAL. */
int replay_parse_speed(const char *s, double *speed);

#endif
