/*
 * loop.h - the daemon's one single-threaded event loop, after Redis' ae.h.
 *
 * Every file descriptor the daemon owns (the local socket and its clients, the gpsd
 * socket, later the MQTT socket) is registered here with a callback; timers share one
 * timerfd; SIGTERM, SIGINT and SIGHUP arrive through a signalfd, so no work ever runs in
 * a signal handler. Callbacks must not block: they read or write what is ready and
 * return.
 *
 * Time. Loop time (loop_now_ms) is CLOCK_BOOTTIME in milliseconds: it never jumps with
 * the wall clock and it keeps counting while the device is suspended, so a timer armed
 * for "in ten minutes" fires ten real minutes later even across a suspend.
 *
 * Hook for sync/ (MQTT through libmosquitto): register mosquitto_socket() with
 * loop_add_fd(LOOP_READ), call mosquitto_loop_read() when readable, toggle LOOP_WRITE
 * with loop_mod_fd() whenever mosquitto_want_write() changes, call mosquitto_loop_write()
 * when writable, run mosquitto_loop_misc() from a periodic timer, and loop_del_fd()
 * before the socket closes.
 *
 * Ownership: timers are embedded in the caller's structs (no allocation per timer) and
 * must stay alive while armed. The loop never closes a registered descriptor.
 * Errors: 0 or a negative errno.
 */
#ifndef COVERD_LOOP_H
#define COVERD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#define LOOP_READ  0x1u
#define LOOP_WRITE 0x2u
#define LOOP_ERROR 0x4u    /* reported only: hang-up or error on the descriptor */

/* The highest descriptor number the loop accepts is LOOP_MAX_FDS - 1. */
#define LOOP_MAX_FDS 1024

struct loop;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *l, int fd, unsigned events, void *arg);
typedef void (*loop_timer_cb)(struct loop *l, struct loop_timer *t, void *arg);
typedef void (*loop_signal_cb)(struct loop *l, int signo, void *arg);

/* A timer; its fields are the loop's. Initialise with loop_timer_init before use. */
struct loop_timer {
	loop_timer_cb cb;
	void *arg;
	int64_t at_ms;              /* loop time it fires at */
	int64_t repeat_ms;          /* 0: one shot */
	bool armed;
	struct loop_timer *next;    /* armed timers, sorted by at_ms */
};

int loop_new(struct loop **out);
/* Frees the loop and its own descriptors (epoll, timerfd, signalfd), not the callers'. */
void loop_free(struct loop *l);

/* events is LOOP_READ and/or LOOP_WRITE. -EEXIST when fd is already registered. */
int loop_add_fd(struct loop *l, int fd, unsigned events, loop_fd_cb cb, void *arg);
int loop_mod_fd(struct loop *l, int fd, unsigned events);
/* Safe from inside any callback, including fd's own; pending events for fd are dropped. */
int loop_del_fd(struct loop *l, int fd);

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg);
/* Arms (or re-arms) t to fire at loop time at_ms, then every repeat_ms if non-zero. */
int loop_timer_start(struct loop *l, struct loop_timer *t, int64_t at_ms, int64_t repeat_ms);
/* Arms t to fire after_ms from now. */
int loop_timer_after(struct loop *l, struct loop_timer *t, int64_t after_ms, int64_t repeat_ms);
void loop_timer_stop(struct loop *l, struct loop_timer *t);

/*
 * Blocks the given signals for the process and delivers them through a signalfd to cb.
 * Call once, before any thread exists (the daemon has none).
 */
int loop_signals(struct loop *l, const int *signals, int n, loop_signal_cb cb, void *arg);

/* Runs until loop_stop(); returns 0, or a negative errno when epoll fails. */
int loop_run(struct loop *l);
/* Makes loop_run return after the current iteration. */
void loop_stop(struct loop *l);
/* Runs one iteration, waiting at most timeout_ms (-1: until something happens). */
int loop_run_once(struct loop *l, int timeout_ms);

/* CLOCK_BOOTTIME in milliseconds. */
int64_t loop_now_ms(void);
/* Loop time at which the current (or last) iteration woke up: the health check's age. */
int64_t loop_last_iteration_ms(const struct loop *l);
uint64_t loop_iterations(const struct loop *l);

#endif
