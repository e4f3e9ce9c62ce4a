/*
 * test_hal.c - hal/: the clock timeline (with a fake clock source), the GNSS wrapper and
 * its mock, the ignition mock, and the systemd notify protocol of the watchdog.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "gnss.h"
#include "ignition.h"
#include "watchdog.h"

/* ---------------------------------------------------------------- clock */

struct fake_clock {
	int64_t boot, real;
	bool synced;
};

static int64_t fk_boot(void *ctx)
{
	return ((struct fake_clock *)ctx)->boot;
}

static int64_t fk_real(void *ctx)
{
	return ((struct fake_clock *)ctx)->real;
}

static bool fk_synced(void *ctx)
{
	return ((struct fake_clock *)ctx)->synced;
}

static struct clock_source fake_source(struct fake_clock *f)
{
	struct clock_source s = { fk_boot, fk_real, fk_synced, f };
	return s;
}

static void advance(struct fake_clock *f, int64_t ms)
{
	f->boot += ms;
	f->real += ms;
}

static void test_clock_plausible_anchor(void **state)
{
	(void)state;
	struct fake_clock f = { 5000, clock_build_epoch_ms() + 86400000, true };
	struct clock_source src = fake_source(&f);
	struct clock c;
	clock_init(&c, &src, INT64_MIN);
	assert_true(c.plausible);
	assert_int_equal(clock_now(&c), f.real);
	assert_int_equal(clock_quality(&c), TQ_NTP);
	advance(&f, 60000);
	assert_int_equal(clock_now(&c), f.real);
	assert_int_equal(clock_to_boottime(&c, clock_now(&c)), f.boot);
	f.synced = false;
	assert_int_equal(clock_quality(&c), TQ_RTC);
}

static void test_clock_implausible_continues_from_last_event(void **state)
{
	(void)state;
	int64_t last = clock_build_epoch_ms() + 10 * 86400000LL;
	/* A device without RTC booting in 1970. */
	struct fake_clock f = { 1000, 20000, false };
	struct clock_source src = fake_source(&f);
	struct clock c;
	clock_init(&c, &src, last);
	assert_false(c.plausible);
	assert_int_equal(clock_now(&c), last);
	assert_int_equal(clock_quality(&c), TQ_UNSYNCED);
	advance(&f, 5000);
	assert_int_equal(clock_now(&c), last + 5000);

	/* A wall clock behind the last stored event is just as implausible. */
	struct fake_clock g = { 1000, last - 3600000, true };
	struct clock_source src2 = fake_source(&g);
	clock_init(&c, &src2, last);
	assert_false(c.plausible);
	assert_int_equal(clock_now(&c), last);
}

static void test_clock_step_flagged_once_and_durations_kept(void **state)
{
	(void)state;
	struct fake_clock f = { 1000, clock_build_epoch_ms() + 86400000, true };
	struct clock_source src = fake_source(&f);
	struct clock c;
	clock_init(&c, &src, INT64_MIN);
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	int64_t t1 = ev.t_ms;
	assert_int_equal(ev.anomalies, 0);

	/* Someone sets the wall clock back an hour; the timeline does not follow. */
	advance(&f, 10000);
	f.real -= 3600000;
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_int_equal(ev.t_ms - t1, 10000);
	assert_true(ev.anomalies & ANOM_CLOCK_STEP);
	/* The timeline now disagrees with the (synced) wall clock: only RTC quality. */
	assert_int_equal(ev.tq, TQ_RTC);
	assert_int_equal(c.steps, 1);

	/* Reported once, and small drift is not a step. */
	advance(&f, 10000);
	f.real += 1500;
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_int_equal(ev.anomalies, 0);
	assert_int_equal(ev.t_ms - t1, 20000);
}

static void test_clock_gnss_quality(void **state)
{
	(void)state;
	struct fake_clock f = { 1000, clock_build_epoch_ms() + 86400000, false };
	struct clock_source src = fake_source(&f);
	struct clock c;
	clock_init(&c, &src, INT64_MIN);
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, f.real + 500);
	assert_int_equal(ev.tq, TQ_GNSS);
	/* The timeline is now GNSS-disciplined: an app event stamped a minute later (no GNSS
	 * time of its own) carries GNSS quality too, for CLOCK_GNSS_HOLD_MS. */
	advance(&f, 60000);
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_int_equal(ev.tq, TQ_GNSS);
	assert_int_equal(clock_quality(&c), TQ_GNSS);
	advance(&f, CLOCK_GNSS_HOLD_MS);
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_int_equal(ev.tq, TQ_RTC);
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, f.real - 1500);
	assert_int_equal(ev.tq, TQ_GNSS);
	memset(&ev, 0, sizeof(ev));
	/* A receiver whose time is years off (a week-number rollover) is not trusted, and
	 * ends the hold of the earlier agreement. */
	clock_stamp(&c, &ev, f.real + 20LL * 365 * 86400000);
	assert_int_equal(ev.tq, TQ_RTC);
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_int_equal(ev.tq, TQ_RTC);
	/* On an implausible timeline nothing is held. */
	int64_t last = clock_build_epoch_ms() + 10 * 86400000LL;
	struct fake_clock g = { 1000, 20000, false };
	struct clock_source src2 = fake_source(&g);
	clock_init(&c, &src2, last);
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, last);
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_int_equal(ev.tq, TQ_UNSYNCED);
}

static void test_clock_reanchor_forward_only(void **state)
{
	(void)state;
	int64_t last = clock_build_epoch_ms() + 86400000;
	struct fake_clock f = { 1000, 5000, false };
	struct clock_source src = fake_source(&f);
	struct clock c;
	clock_init(&c, &src, last);
	assert_false(c.plausible);
	/* Still implausible: nothing moves. */
	assert_false(clock_reanchor(&c));
	/* NTP sets the clock after boot. */
	f.real = last + 7200000;
	f.synced = true;
	int64_t before = clock_now(&c);
	assert_true(clock_reanchor(&c));
	assert_true(c.plausible);
	assert_int_equal(clock_now(&c), f.real);
	assert_true(clock_now(&c) > before);
	assert_int_equal(clock_quality(&c), TQ_NTP);
	struct engine_event ev;
	memset(&ev, 0, sizeof(ev));
	clock_stamp(&c, &ev, INT64_MIN);
	assert_true(ev.anomalies & ANOM_CLOCK_STEP);
	/* A wall clock set backwards never pulls the timeline back. */
	f.real -= 3600000;
	assert_false(clock_reanchor(&c));
	assert_true(clock_now(&c) >= before);
}

/* ---------------------------------------------------------------- gnss */

struct got_fixes {
	int n;
	struct gnss_report last;
};

static void on_fix(void *ctx, const struct gnss_report *r)
{
	struct got_fixes *g = ctx;
	g->n++;
	g->last = *r;
}

static struct gnss_report report(double lat, double lon, int mode)
{
	struct gnss_report r;
	memset(&r, 0, sizeof(r));
	r.fix.lat = lat;
	r.fix.lon = lon;
	r.fix.mode = mode;
	r.fix.speed_mps = 3.0;
	r.fix.course_deg = 90;
	r.fix.eph_m = 5;
	r.gnss_time_ms = INT64_MIN;
	return r;
}

static void test_gnss_mock_delivers_valid_fixes(void **state)
{
	(void)state;
	struct got_fixes got = { 0 };
	struct gnss *g;
	assert_int_equal(gnss_new(&g, "mock", NULL, NULL, on_fix, &got), 0);
	assert_true(gnss_active(g));
	struct gnss_report r = report(51.5, -0.12, 3);
	assert_int_equal(gnss_mock_push(g, &r), 0);
	assert_int_equal(gnss_open(g), 0);
	assert_true(gnss_fd(g) >= 0);
	assert_int_equal(gnss_read(g), 0);
	assert_int_equal(got.n, 1);
	assert_true(fabs(got.last.fix.lat - 51.5) < 1e-12);

	/* Invalid fixes are dropped by the wrapper and counted. */
	struct gnss_report bad[] = { report(91, 0, 3), report(0, -181, 3), report(10, 10, 1),
	                             report(NAN, 0, 2) };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gnss_mock_push(g, &bad[i]), 0);
	/* Nonsense values are normalised to "unknown". */
	struct gnss_report odd = report(10, 20, 2);
	odd.fix.speed_mps = -4;
	odd.fix.eph_m = INFINITY;
	odd.fix.course_deg = 450;
	assert_int_equal(gnss_mock_push(g, &odd), 0);
	assert_int_equal(gnss_read(g), 0);
	assert_int_equal(got.n, 2);
	assert_int_equal(g->dropped, 4);
	assert_true(isnan(got.last.fix.speed_mps));
	assert_true(isnan(got.last.fix.eph_m));
	assert_true(fabs(got.last.fix.course_deg - 90) < 1e-9);
	gnss_free(g);
}

static void test_gnss_backoff_and_failed_open(void **state)
{
	(void)state;
	struct got_fixes got = { 0 };
	struct gnss *g;
	assert_int_equal(gnss_new(&g, "mock", NULL, NULL, on_fix, &got), 0);
	gnss_mock_fail_opens(g, 2);
	assert_int_equal(gnss_open(g), -ECONNREFUSED);
	assert_int_equal(gnss_fd(g), -1);
	assert_int_equal(gnss_read(g), -EBADF);
	assert_int_equal(gnss_backoff_next(g), GNSS_BACKOFF_MIN_MS);
	assert_int_equal(gnss_open(g), -ECONNREFUSED);
	assert_int_equal(gnss_backoff_next(g), 2 * GNSS_BACKOFF_MIN_MS);
	int64_t b = 0;
	for (int i = 0; i < 20; i++)
		b = gnss_backoff_next(g);
	assert_int_equal(b, GNSS_BACKOFF_MAX_MS);
	assert_int_equal(gnss_open(g), 0);
	/* A good fix resets the backoff. */
	struct gnss_report r = report(1, 2, 2);
	assert_int_equal(gnss_mock_push(g, &r), 0);
	assert_int_equal(gnss_read(g), 0);
	assert_int_equal(gnss_backoff_next(g), GNSS_BACKOFF_MIN_MS);
	gnss_free(g);
}

static void test_gnss_names(void **state)
{
	(void)state;
	struct got_fixes got = { 0 };
	struct gnss *g;
	assert_int_equal(gnss_new(&g, "serial", NULL, NULL, on_fix, &got), -EINVAL);
	assert_int_equal(gnss_new(&g, "none", NULL, NULL, on_fix, &got), 0);
	assert_false(gnss_active(g));
	assert_int_equal(gnss_open(g), 0);
	assert_int_equal(gnss_fd(g), -1);
	gnss_free(g);
	assert_int_equal(gnss_new(&g, "app", NULL, NULL, on_fix, &got), 0);
	assert_false(gnss_active(g));
	gnss_free(g);
	/* gpsd that is not there: a clean error, not a hang or a crash. Port 1 on loopback
	 * is privileged and unused. */
	assert_int_equal(gnss_new(&g, "gpsd", "127.0.0.1", "1", on_fix, &got), 0);
	assert_true(gnss_open(g) < 0);
	assert_int_equal(gnss_fd(g), -1);
	gnss_free(g);
}

/* ---------------------------------------------------------------- ignition */

struct ign_seen {
	int n;
	bool on;
};

static void on_ign(void *ctx, bool on)
{
	struct ign_seen *s = ctx;
	s->n++;
	s->on = on;
}

static void test_ignition_mock_reports_changes_only(void **state)
{
	(void)state;
	struct ign_seen s = { 0 };
	struct ignition *ig;
	assert_int_equal(ignition_new(&ig, "gpio", on_ign, &s), -EINVAL);
	assert_int_equal(ignition_new(&ig, "mock", on_ign, &s), 0);
	assert_int_equal(ignition_open(ig), 0);
	assert_true(ignition_fd(ig) >= 0);
	assert_int_equal(ignition_mock_set(ig, true), 0);
	assert_int_equal(ignition_read(ig), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.on);
	assert_int_equal(ignition_mock_set(ig, true), 0);
	assert_int_equal(ignition_read(ig), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(ignition_mock_set(ig, false), 0);
	assert_int_equal(ignition_read(ig), 0);
	assert_int_equal(s.n, 2);
	assert_false(s.on);
	ignition_free(ig);
	assert_int_equal(ignition_new(&ig, "none", on_ign, &s), 0);
	assert_int_equal(ignition_open(ig), 0);
	assert_int_equal(ignition_fd(ig), -1);
	ignition_free(ig);
}

/* ---------------------------------------------------------------- watchdog */

static int recv_msg(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static void test_watchdog_systemd_notify(void **state)
{
	(void)state;
	char dir[] = "/tmp/coverd-wd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%.40s/notify", dir);
	int srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(srv >= 0);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(srv, (struct sockaddr *)&sa, sizeof(sa)), 0);

	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	assert_int_equal(setenv("WATCHDOG_USEC", "30000000", 1), 0);
	char pid[32];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);

	struct watchdog *w;
	assert_int_equal(watchdog_new_auto(&w), 0);
	assert_string_equal(watchdog_name(w), "systemd");
	assert_int_equal(watchdog_interval_ms(w), 15000);
	char buf[256];
	assert_int_equal(watchdog_ready(w), 0);
	assert_true(recv_msg(srv, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "READY=1");
	assert_int_equal(watchdog_pet(w), 0);
	assert_true(recv_msg(srv, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "WATCHDOG=1");
	assert_int_equal(watchdog_status(w, "on cover"), 0);
	assert_true(recv_msg(srv, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "STATUS=on cover");
	assert_int_equal(watchdog_stopping(w), 0);
	assert_true(recv_msg(srv, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "STOPPING=1");
	watchdog_free(w);

	/* The keep-alive interval belongs to another process: no pets. */
	assert_int_equal(setenv("WATCHDOG_PID", "1", 1), 0);
	assert_int_equal(watchdog_new(&w, "systemd"), 0);
	assert_int_equal(watchdog_interval_ms(w), 0);
	watchdog_free(w);

	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(watchdog_new_auto(&w), 0);
	assert_string_equal(watchdog_name(w), "none");
	assert_int_equal(watchdog_ready(w), 0);
	watchdog_free(w);
	assert_int_equal(watchdog_new(&w, "systemd"), -ENOENT);

	close(srv);
	unlink(path);
	rmdir(dir);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void test_watchdog_abstract_socket(void **state)
{
	(void)state;
	int srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(srv >= 0);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	char name[64];
	snprintf(name, sizeof(name), "coverd-test-%ld", (long)getpid());
	memcpy(sa.sun_path + 1, name, strlen(name));
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	assert_int_equal(bind(srv, (struct sockaddr *)&sa, len), 0);
	char env[80];
	snprintf(env, sizeof(env), "@%s", name);
	assert_int_equal(setenv("NOTIFY_SOCKET", env, 1), 0);
	struct watchdog *w;
	assert_int_equal(watchdog_new(&w, "systemd"), 0);
	assert_int_equal(watchdog_ready(w), 0);
	char buf[64];
	assert_true(recv_msg(srv, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "READY=1");
	watchdog_free(w);
	close(srv);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clock_plausible_anchor),
		cmocka_unit_test(test_clock_implausible_continues_from_last_event),
		cmocka_unit_test(test_clock_step_flagged_once_and_durations_kept),
		cmocka_unit_test(test_clock_gnss_quality),
		cmocka_unit_test(test_clock_reanchor_forward_only),
		cmocka_unit_test(test_gnss_mock_delivers_valid_fixes),
		cmocka_unit_test(test_gnss_backoff_and_failed_open),
		cmocka_unit_test(test_gnss_names),
		cmocka_unit_test(test_ignition_mock_reports_changes_only),
		cmocka_unit_test(test_watchdog_systemd_notify),
		cmocka_unit_test(test_watchdog_abstract_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
