/*
 * replay.c - scenario files through the core, paced by the loop's timer.
 *
 * Deadlines. While the file is being read, the core's own deadline timer is off (the
 * timebase's to_loop says "never") and the replay fires deadlines itself: before waiting
 * for the next event at time e, a deadline d < e is ticked when the scaled clock reaches
 * it. Only deadlines strictly before e are ticked, exactly as engine_step() would fire
 * them, so an event at the very instant of a deadline is still applied first (a job
 * accepted exactly at gap_end keeps the session) and a paced replay gives the same
 * sessions and activations as --speed max.
 */
#include "replay.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evjson.h"
#include "log.h"

/* Lines per slice at --speed max before yielding to the loop. */
#define REPLAY_SLICE 256
/* The read buffer holds two maximal lines so a line never has to be read twice. */
#define REPLAY_BUF (2 * EVJSON_LINE_MAX)

enum { RL_EOF = 0, RL_LINE = 1, RL_TOO_LONG = 2 };

struct replay {
	char path[4096];
	int fd;
	double speed;                  /* 0: as fast as possible */
	struct core *core;
	struct loop *loop;
	replay_done_cb done;
	void *done_ctx;
	struct loop_timer timer;

	char buf[REPLAY_BUF + 1];
	size_t off, len;
	bool eof, discarding;
	uint64_t lineno;

	bool have_pending;
	struct engine_event pending;
	enum evjson_kind pending_kind;
	char *pending_line;

	bool anchored;
	int64_t anchor_t, anchor_loop; /* timeline anchor_t happens at loop time anchor_loop */
	double pace;                   /* the timebase's speed: speed, or 1 after the end */
	bool have_last;
	int64_t last_t;
	bool finished;
	struct replay_counts counts;
};

int replay_parse_speed(const char *s, double *speed)
{
	if (s == NULL || speed == NULL)
		return -EINVAL;
	if (strcmp(s, "max") == 0) {
		*speed = 0;
		return 0;
	}
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 1e6)
		return -EINVAL;
	*speed = v;
	return 0;
}

/* ---------------------------------------------------------------- timebase */

static int64_t wall_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t tb_now(void *ctx)
{
	struct replay *r = ctx;
	if (r->anchored && r->pace > 0)
		return r->anchor_t + (int64_t)((double)(loop_now_ms() - r->anchor_loop) * r->pace);
	if (r->have_last)
		return r->last_t;
	return wall_ms();
}

/* Loop time at which the scaled timeline reaches t; rounded up so it is never early. */
static int64_t scaled_loop_time(const struct replay *r, int64_t t)
{
	return r->anchor_loop + (int64_t)ceil((double)(t - r->anchor_t) / r->pace);
}

static int64_t tb_to_loop(void *ctx, int64_t t)
{
	struct replay *r = ctx;
	/* While the file is read the replay fires deadlines itself (see the top comment). */
	if (!r->finished || !r->anchored || r->pace <= 0)
		return INT64_MAX;
	return scaled_loop_time(r, t);
}

static void anchor(struct replay *r, int64_t t)
{
	r->anchored = true;
	r->anchor_t = t;
	r->anchor_loop = loop_now_ms();
}

/* ---------------------------------------------------------------- reading */

static int read_line(struct replay *r, char **line, size_t *n)
{
	for (;;) {
		char *start = r->buf + r->off;
		char *nl = r->len > 0 ? memchr(start, '\n', r->len) : NULL;
		if (nl != NULL) {
			size_t k = (size_t)(nl - start);
			*nl = '\0';
			r->off += k + 1;
			r->len -= k + 1;
			r->lineno++;
			*line = start;
			*n = k;
			if (r->discarding) {
				r->discarding = false;
				return RL_TOO_LONG;
			}
			/* The limit counts the newline, as on the socket. */
			return k + 1 > EVJSON_LINE_MAX ? RL_TOO_LONG : RL_LINE;
		}
		if (r->discarding || r->len >= EVJSON_LINE_MAX) {
			r->discarding = true;
			r->off = r->len = 0;
		}
		if (r->eof) {
			if (r->discarding) {
				r->discarding = false;
				r->lineno++;
				return RL_TOO_LONG;
			}
			if (r->len == 0)
				return RL_EOF;
			/* A last line without a newline. */
			start[r->len] = '\0';
			*line = start;
			*n = r->len;
			r->off = r->len = 0;
			r->lineno++;
			return RL_LINE;
		}
		if (r->off > 0) {
			memmove(r->buf, r->buf + r->off, r->len);
			r->off = 0;
		}
		ssize_t got = read(r->fd, r->buf + r->len, REPLAY_BUF - r->len);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0)
			r->eof = true;
		r->len += (size_t)got;
	}
}

static void bad_line(struct replay *r, const char *why)
{
	fprintf(stderr, "%s:%" PRIu64 ": %s\n", r->path, r->lineno, why);
	r->counts.bad++;
	core_count(r->core, "scenario.bad_line", 1);
}

static void finish(struct replay *r, int status)
{
	loop_timer_stop(r->loop, &r->timer);
	if (status == 0 && r->have_last) {
		/* The end of the replay: deadlines due at the last event's time are judged now,
		 * 1 ms after it, as the daemon's timer would (engine.h, instants and ties). */
		int e = core_tick(r->core, r->last_t + 1, "replay");
		if (e != 0) {
			fprintf(stderr, "%s: final tick not stored: %s\n", r->path, store_strerror(e));
			status = e;
		}
	}
	if (status == 0) {
		int e = core_flush(r->core);
		if (e != 0) {
			fprintf(stderr, "%s: flush failed: %s\n", r->path, store_strerror(e));
			status = e;
		}
	}
	printf("replay: %" PRIu64 " lines, %" PRIu64 " applied, %" PRIu64 " rejected, %" PRIu64
	       " bad\n", r->counts.lines, r->counts.applied, r->counts.rejected, r->counts.bad);
	fflush(stdout);
	/* From here on the timeline runs at the recorded pace from the last event, so a
	 * daemon that stays up keeps firing deadlines like a live one. */
	r->finished = true;
	r->pace = 1.0;
	if (r->have_last)
		anchor(r, r->last_t);
	else
		anchor(r, wall_ms());
	struct core_timebase tb = { .now = tb_now, .to_loop = tb_to_loop, .ctx = r };
	core_set_timebase(r->core, &tb);
	if (r->done != NULL)
		r->done(r->done_ctx, status);
}

/* Submits the pending line; 0 or the store's error. */
static int submit_pending(struct replay *r)
{
	r->have_pending = false;
	if (r->pending_kind == EVJSON_RESTART) {
		char err[512];
		int e = core_restart(r->core, err, sizeof(err));
		if (e != 0) {
			fprintf(stderr, "%s:%" PRIu64 ": restart failed: %s\n", r->path, r->lineno, err);
			return e;
		}
		r->counts.restarts++;
		return 0;
	}
	struct core_result res;
	int e = core_submit(r->core, &r->pending, "replay", r->pending_line, &res);
	if (e != 0) {
		fprintf(stderr, "%s:%" PRIu64 ": event not stored: %s\n", r->path, r->lineno,
		        store_strerror(e));
		return e;
	}
	if (res.accepted) {
		r->counts.applied++;
	} else {
		/* The engine's refusals are reported with the line, like the parser's, so a
		 * scenario author can find every line that had no effect. */
		r->counts.rejected++;
		fprintf(stderr, "%s:%" PRIu64 ": event rejected: %s\n", r->path, r->lineno,
		        engine_reject_name(res.reject));
	}
	if (!r->have_last || r->pending.t_ms > r->last_t) {
		r->last_t = r->pending.t_ms;
		r->have_last = true;
	}
	return 0;
}

/*
 * With pacing: 0 when the pending event is due now, else arms the timer (for the event or
 * for an earlier deadline) and returns 1. A deadline that came due is ticked here.
 */
static int wait_for_pending(struct replay *r)
{
	int64_t e = r->pending.t_ms;
	if (!r->anchored)
		anchor(r, e);
	const struct engine_state *st = core_state(r->core);
	int64_t d = engine_next_deadline(&core_config(r->core)->engine, st);
	int64_t now = loop_now_ms();
	while (d < e && d != INT64_MAX) {
		int64_t at = scaled_loop_time(r, d);
		if (at > now) {
			(void)loop_timer_start(r->loop, &r->timer, at, 0);
			return 1;
		}
		/* The deadline fires at the first time past it; d < e, so d + 1 <= e. */
		int64_t t = st->started && d + 1 < st->last_t_ms ? st->last_t_ms : d + 1;
		int rc = core_tick(r->core, t, "timer");
		if (rc != 0)
			return rc;
		int64_t nd = engine_next_deadline(&core_config(r->core)->engine, st);
		/* A deadline that does not move would loop forever; the engine guarantees it
		 * moves, and this guard keeps a bug there from hanging the daemon. */
		if (nd <= d)
			break;
		d = nd;
	}
	int64_t at = scaled_loop_time(r, e);
	if (at > now) {
		(void)loop_timer_start(r->loop, &r->timer, at, 0);
		return 1;
	}
	return 0;
}

static void on_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct replay *r = arg;
	for (int budget = REPLAY_SLICE; budget > 0; budget--) {
		if (!r->have_pending) {
			char *line = NULL;
			size_t n = 0;
			int rc = read_line(r, &line, &n);
			if (rc < 0) {
				fprintf(stderr, "%s: read: %s\n", r->path, strerror(-rc));
				finish(r, rc);
				return;
			}
			if (rc == RL_EOF) {
				finish(r, 0);
				return;
			}
			if (rc == RL_TOO_LONG) {
				char why[96];
				r->counts.lines++;
				snprintf(why, sizeof(why), "line too long (limit %d bytes)",
				         EVJSON_LINE_MAX);
				bad_line(r, why);
				continue;
			}
			if (evjson_skip_line(line, n))
				continue;
			r->counts.lines++;
			char err[256];
			if (evjson_parse(line, n, 1, &r->pending, &r->pending_kind, err,
			                 sizeof(err)) != 0) {
				bad_line(r, err);
				continue;
			}
			r->pending_line = line;
			r->have_pending = true;
		}
		if (r->speed > 0 && r->pending.t_ms != INT64_MIN) {
			int w = wait_for_pending(r);
			if (w == 1)
				return;
			if (w < 0) {
				fprintf(stderr, "%s: deadline tick not stored: %s\n", r->path,
				        store_strerror(w));
				finish(r, w);
				return;
			}
		}
		int e = submit_pending(r);
		if (e != 0) {
			finish(r, e);
			return;
		}
	}
	/* Yield: the socket and signals get their turn before the next slice. */
	(void)loop_timer_after(r->loop, &r->timer, 0, 0);
}

/* ---------------------------------------------------------------- lifecycle */

int replay_new(struct replay **out, const char *path, double speed, struct core *c,
               struct loop *l, replay_done_cb done, void *ctx, char *err, size_t errlen)
{
	if (out == NULL || path == NULL || c == NULL || l == NULL || speed < 0)
		return -EINVAL;
	struct replay *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open the scenario: %s", path, strerror(e));
		free(r);
		return -e;
	}
	r->speed = speed;
	r->pace = speed;
	r->core = c;
	r->loop = l;
	r->done = done;
	r->done_ctx = ctx;
	loop_timer_init(&r->timer, on_timer, r);
	*out = r;
	return 0;
}

int replay_start(struct replay *r)
{
	struct core_timebase tb = { .now = tb_now, .to_loop = tb_to_loop, .ctx = r };
	core_set_timebase(r->core, &tb);
	return loop_timer_after(r->loop, &r->timer, 0, 0);
}

void replay_free(struct replay *r)
{
	if (r == NULL)
		return;
	loop_timer_stop(r->loop, &r->timer);
	close(r->fd);
	free(r);
}

const struct replay_counts *replay_counts(const struct replay *r)
{
	return &r->counts;
}

bool replay_finished(const struct replay *r)
{
	return r->finished;
}
