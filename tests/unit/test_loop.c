/*
 * test_loop.c - the event loop (daemon/loop.c): descriptors, timers and signals.
 *
 * Timers are checked for order and for firing at all, never for how late they fire: the
 * assertions compare loop times with each other, not with a wall-clock budget.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

struct rec {
	int order[16];
	int n;
	int64_t fired_at[16];
};

struct tctx {
	struct rec *rec;
	int id;
};

static void on_timer_rec(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)t;
	struct tctx *c = arg;
	if (c->rec->n < 16) {
		c->rec->fired_at[c->rec->n] = loop_now_ms();
		c->rec->order[c->rec->n++] = c->id;
	}
	if (c->id == 99)
		loop_stop(l);
}

static void test_timers_fire_in_time_order(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec rec = { 0 };
	struct tctx c1 = { &rec, 1 }, c2 = { &rec, 2 }, c3 = { &rec, 3 }, cs = { &rec, 99 };
	struct loop_timer t1, t2, t3, ts;
	loop_timer_init(&t1, on_timer_rec, &c1);
	loop_timer_init(&t2, on_timer_rec, &c2);
	loop_timer_init(&t3, on_timer_rec, &c3);
	loop_timer_init(&ts, on_timer_rec, &cs);
	int64_t now = loop_now_ms();
	assert_int_equal(loop_timer_start(l, &t3, now + 30, 0), 0);
	assert_int_equal(loop_timer_start(l, &t1, now + 10, 0), 0);
	assert_int_equal(loop_timer_start(l, &t2, now + 20, 0), 0);
	assert_int_equal(loop_timer_start(l, &ts, now + 40, 0), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(rec.n, 4);
	assert_int_equal(rec.order[0], 1);
	assert_int_equal(rec.order[1], 2);
	assert_int_equal(rec.order[2], 3);
	assert_int_equal(rec.order[3], 99);
	/* Never early: each fired at or after its time. */
	assert_true(rec.fired_at[0] >= now + 10);
	assert_true(rec.fired_at[2] >= now + 30);
	loop_free(l);
}

static void test_timer_stop_and_rearm(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec rec = { 0 };
	struct tctx c1 = { &rec, 1 }, c2 = { &rec, 2 }, cs = { &rec, 99 };
	struct loop_timer t1, t2, ts;
	loop_timer_init(&t1, on_timer_rec, &c1);
	loop_timer_init(&t2, on_timer_rec, &c2);
	loop_timer_init(&ts, on_timer_rec, &cs);
	assert_int_equal(loop_timer_after(l, &t1, 5, 0), 0);
	assert_int_equal(loop_timer_after(l, &t2, 10, 0), 0);
	loop_timer_stop(l, &t1);
	assert_false(t1.armed);
	/* Re-arming moves the timer: t2 now fires after the stop timer. */
	assert_int_equal(loop_timer_after(l, &t2, 1000, 0), 0);
	assert_int_equal(loop_timer_after(l, &ts, 20, 0), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.order[0], 99);
	loop_timer_stop(l, &t2);
	loop_free(l);
}

struct repeat_ctx {
	int count;
};

static void on_repeat(struct loop *l, struct loop_timer *t, void *arg)
{
	struct repeat_ctx *c = arg;
	if (++c->count == 3) {
		loop_timer_stop(l, t);
		loop_stop(l);
	}
}

static void test_repeating_timer(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct repeat_ctx c = { 0 };
	struct loop_timer t;
	loop_timer_init(&t, on_repeat, &c);
	assert_int_equal(loop_timer_after(l, &t, 1, 2), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(c.count, 3);
	assert_false(t.armed);
	loop_free(l);
}

/* A timer that re-arms itself for "now" must let descriptors run in between. */
struct yield_ctx {
	int ticks;
	int reads;
	int fd;
};

static void on_yield_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct yield_ctx *c = arg;
	c->ticks++;
	if (c->reads > 0) {
		loop_stop(l);
		return;
	}
	if (c->ticks > 1000)
		fail_msg("the descriptor never got a turn");
	assert_int_equal(loop_timer_after(l, t, 0, 0), 0);
}

static void on_yield_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	struct yield_ctx *c = arg;
	assert_true(events & LOOP_READ);
	char b;
	assert_int_equal(read(fd, &b, 1), 1);
	c->reads++;
}

static void test_zero_timer_yields_to_io(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct yield_ctx c = { 0, 0, p[0] };
	assert_int_equal(loop_add_fd(l, p[0], LOOP_READ, on_yield_fd, &c), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	struct loop_timer t;
	loop_timer_init(&t, on_yield_timer, &c);
	assert_int_equal(loop_timer_after(l, &t, 0, 0), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(c.reads, 1);
	assert_true(c.ticks >= 1);
	assert_int_equal(loop_del_fd(l, p[0]), 0);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

/* Two pipes ready in the same batch; the first callback removes the second's fd. */
struct del_ctx {
	struct loop *l;
	int other_fd;
	int calls;
};

static void on_del_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	struct del_ctx *c = arg;
	char b;
	assert_int_equal(read(fd, &b, 1), 1);
	c->calls++;
	assert_int_equal(loop_del_fd(l, c->other_fd), 0);
	loop_stop(l);
}

static void test_del_fd_inside_batch(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	int a[2], b[2];
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	struct del_ctx ca = { l, b[0], 0 }, cb = { l, a[0], 0 };
	assert_int_equal(loop_add_fd(l, a[0], LOOP_READ, on_del_fd, &ca), 0);
	assert_int_equal(loop_add_fd(l, b[0], LOOP_READ, on_del_fd, &cb), 0);
	assert_int_equal(loop_add_fd(l, a[0], LOOP_READ, on_del_fd, &ca), -EEXIST);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	/* Exactly one callback ran: the other descriptor was removed before its turn. */
	assert_int_equal(ca.calls + cb.calls, 1);
	(void)loop_del_fd(l, a[0]);
	(void)loop_del_fd(l, b[0]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	loop_free(l);
}

static void on_write_ready(struct loop *l, int fd, unsigned events, void *arg)
{
	int *seen = arg;
	if (events & LOOP_WRITE) {
		(*seen)++;
		assert_int_equal(loop_mod_fd(l, fd, LOOP_READ), 0);
		loop_stop(l);
	}
}

static void test_mod_fd_write_interest(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	int seen = 0;
	/* The write end of an empty pipe is writable as soon as write interest is on. */
	assert_int_equal(loop_add_fd(l, p[1], 0, on_write_ready, &seen), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(seen, 0);
	assert_int_equal(loop_mod_fd(l, p[1], LOOP_WRITE), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(seen, 1);
	assert_int_equal(loop_del_fd(l, p[1]), 0);
	assert_int_equal(loop_mod_fd(l, p[1], LOOP_READ), -EINVAL);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	int *got = arg;
	*got = signo;
	loop_stop(l);
}

static void test_signals_through_signalfd(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	int got = 0;
	static const int sigs[] = { SIGHUP, SIGUSR1 };
	assert_int_equal(loop_signals(l, sigs, 2, on_signal, &got), 0);
	/* Blocked and routed to the signalfd, so raising it does not kill the test. */
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(got, SIGUSR1);
	loop_free(l);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_add_fd(l, -1, LOOP_READ, on_write_ready, NULL), -EINVAL);
	assert_int_equal(loop_add_fd(l, LOOP_MAX_FDS, LOOP_READ, on_write_ready, NULL), -ERANGE);
	assert_int_equal(loop_del_fd(l, 5000), -EINVAL);
	struct loop_timer t;
	loop_timer_init(&t, NULL, NULL);
	assert_int_equal(loop_timer_after(l, &t, 1, 0), -EINVAL);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_fire_in_time_order),
		cmocka_unit_test(test_timer_stop_and_rearm),
		cmocka_unit_test(test_repeating_timer),
		cmocka_unit_test(test_zero_timer_yields_to_io),
		cmocka_unit_test(test_del_fd_inside_batch),
		cmocka_unit_test(test_mod_fd_write_interest),
		cmocka_unit_test(test_signals_through_signalfd),
		cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
