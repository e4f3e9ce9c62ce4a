/*
 * loop.c - epoll, one timerfd and one signalfd: the whole event loop.
 *
 * Each registered descriptor has a slot indexed by its number, holding the callback and a
 * generation count. The generation travels in the epoll event's data, so an event
 * collected in a batch for a descriptor that a previous callback of the same batch closed
 * (and perhaps reused) is recognised as stale and dropped rather than delivered to the
 * wrong owner.
 *
 * Timers are few (the engine deadline, the track flush, replay pacing, reconnect backoff,
 * the watchdog, the client sweep, later MQTT housekeeping), so a sorted singly linked list
 * is both the simplest and the fastest structure; the timerfd is programmed for its head.
 */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_BATCH 64

struct loop_slot {
	loop_fd_cb cb;
	void *arg;
	unsigned events;
	uint32_t gen;
};

struct loop {
	int epfd, tfd, sfd;
	struct loop_slot slots[LOOP_MAX_FDS];
	struct loop_timer *timers;     /* armed, sorted by at_ms */
	struct loop_timer *due;        /* detached for firing in the current pass */
	int64_t programmed_ms;         /* what the timerfd is set to; INT64_MAX when disarmed */
	loop_signal_cb sig_cb;
	void *sig_arg;
	bool stop;
	int64_t last_iter_ms;
	uint64_t iterations;
};

int64_t loop_now_ms(void)
{
	struct timespec ts;
	/* CLOCK_BOOTTIME exists on every Linux the daemon targets; it cannot fail with a
	 * valid clock id and pointer, so a failure is treated as time standing still. */
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t epoll_mask(unsigned events)
{
	uint32_t m = 0;
	if (events & LOOP_READ)
		m |= EPOLLIN | EPOLLRDHUP;
	if (events & LOOP_WRITE)
		m |= EPOLLOUT;
	return m;
}

static int ctl(struct loop *l, int op, int fd, unsigned events)
{
	struct epoll_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.events = epoll_mask(events);
	ev.data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)l->slots[fd].gen << 32);
	if (epoll_ctl(l->epfd, op, fd, &ev) != 0)
		return -errno;
	return 0;
}

int loop_add_fd(struct loop *l, int fd, unsigned events, loop_fd_cb cb, void *arg)
{
	if (l == NULL || fd < 0 || cb == NULL)
		return -EINVAL;
	if (fd >= LOOP_MAX_FDS)
		return -ERANGE;
	struct loop_slot *s = &l->slots[fd];
	if (s->cb != NULL)
		return -EEXIST;
	s->gen++;
	int r = ctl(l, EPOLL_CTL_ADD, fd, events);
	if (r != 0)
		return r;
	s->cb = cb;
	s->arg = arg;
	s->events = events;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, unsigned events)
{
	if (l == NULL || fd < 0 || fd >= LOOP_MAX_FDS || l->slots[fd].cb == NULL)
		return -EINVAL;
	if (l->slots[fd].events == events)
		return 0;
	int r = ctl(l, EPOLL_CTL_MOD, fd, events);
	if (r == 0)
		l->slots[fd].events = events;
	return r;
}

int loop_del_fd(struct loop *l, int fd)
{
	if (l == NULL || fd < 0 || fd >= LOOP_MAX_FDS || l->slots[fd].cb == NULL)
		return -EINVAL;
	struct loop_slot *s = &l->slots[fd];
	s->cb = NULL;
	s->arg = NULL;
	s->events = 0;
	s->gen++;
	/* The kernel drops a closed descriptor by itself; a failure here only means the
	 * caller closed it first, which leaves nothing to undo. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	return 0;
}

/* ---------------------------------------------------------------- timers */

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
}

static void list_remove(struct loop_timer **head, struct loop_timer *t)
{
	for (struct loop_timer **pp = head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			t->next = NULL;
			return;
		}
	}
}

static void timer_unlink(struct loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	list_remove(&l->timers, t);
	list_remove(&l->due, t);
	t->armed = false;
}

static void timer_insert(struct loop *l, struct loop_timer *t)
{
	struct loop_timer **pp = &l->timers;
	/* Equal times keep arming order, so two timers due together fire first-armed first. */
	while (*pp != NULL && (*pp)->at_ms <= t->at_ms)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
	t->armed = true;
}

int loop_timer_start(struct loop *l, struct loop_timer *t, int64_t at_ms, int64_t repeat_ms)
{
	if (l == NULL || t == NULL || t->cb == NULL || repeat_ms < 0)
		return -EINVAL;
	timer_unlink(l, t);
	t->at_ms = at_ms;
	t->repeat_ms = repeat_ms;
	timer_insert(l, t);
	return 0;
}

int loop_timer_after(struct loop *l, struct loop_timer *t, int64_t after_ms, int64_t repeat_ms)
{
	if (after_ms < 0)
		after_ms = 0;
	return loop_timer_start(l, t, loop_now_ms() + after_ms, repeat_ms);
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	if (l != NULL && t != NULL)
		timer_unlink(l, t);
}

/*
 * Fires every timer due at the start of the pass. Due timers are detached first, so a
 * callback that re-arms itself for "now" (the replay yielding to I/O) runs in the next
 * iteration, after the descriptors had their turn, instead of spinning here.
 */
static void timers_fire(struct loop *l)
{
	int64_t now = loop_now_ms();
	struct loop_timer **tail = &l->due;
	while (l->timers != NULL && l->timers->at_ms <= now) {
		struct loop_timer *t = l->timers;
		l->timers = t->next;
		t->next = NULL;
		*tail = t;
		tail = &t->next;
	}
	while (l->due != NULL) {
		struct loop_timer *t = l->due;
		l->due = t->next;
		t->next = NULL;
		t->armed = false;
		if (t->repeat_ms > 0) {
			t->at_ms += t->repeat_ms;
			/* After a long stall (or a suspend) the missed periods are not replayed. */
			if (t->at_ms <= now)
				t->at_ms = now + t->repeat_ms;
			timer_insert(l, t);
		}
		t->cb(l, t, t->arg);
		if (l->stop)
			break;
	}
	/* Stopped mid-pass: the timers not fired yet stay armed for a later loop_run(). */
	while (l->due != NULL) {
		struct loop_timer *t = l->due;
		l->due = t->next;
		timer_insert(l, t);
	}
}

static int timers_program(struct loop *l)
{
	int64_t want = l->timers != NULL ? l->timers->at_ms : INT64_MAX;
	if (want == l->programmed_ms)
		return 0;
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (want != INT64_MAX) {
		/* An all-zero it_value disarms the timer, so "already due" becomes 1 ns. */
		int64_t at = want > 0 ? want : 0;
		its.it_value.tv_sec = at / 1000;
		its.it_value.tv_nsec = (long)(at % 1000) * 1000000L;
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
		return -errno;
	l->programmed_ms = want;
	return 0;
}

static void on_timerfd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	(void)arg;
	uint64_t expirations;
	/* The count is not needed: due timers are found by comparing times. A failed read is
	 * EAGAIN after a re-program raced the expiry, which is harmless. */
	ssize_t n = read(fd, &expirations, sizeof(expirations));
	(void)n;
	/* The timerfd fired at its programmed time; forget it so it is programmed again. */
	l->programmed_ms = INT64_MIN;
}

static void on_signalfd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	(void)arg;
	struct signalfd_siginfo si;
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			break;
		if (l->sig_cb != NULL)
			l->sig_cb(l, (int)si.ssi_signo, l->sig_arg);
	}
}

int loop_signals(struct loop *l, const int *signals, int n, loop_signal_cb cb, void *arg)
{
	if (l == NULL || signals == NULL || n <= 0 || cb == NULL || l->sfd >= 0)
		return -EINVAL;
	sigset_t set;
	sigemptyset(&set);
	for (int i = 0; i < n; i++)
		if (sigaddset(&set, signals[i]) != 0)
			return -EINVAL;
	/* Blocked signals stay pending for the signalfd instead of running a handler. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -errno;
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = loop_add_fd(l, fd, LOOP_READ, on_signalfd, NULL);
	if (r != 0) {
		close(fd);
		return r;
	}
	l->sfd = fd;
	l->sig_cb = cb;
	l->sig_arg = arg;
	return 0;
}

/* ---------------------------------------------------------------- lifecycle */

int loop_new(struct loop **out)
{
	if (out == NULL)
		return -EINVAL;
	struct loop *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->sfd = -1;
	l->programmed_ms = INT64_MAX;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = -errno;
		free(l);
		return e;
	}
	l->tfd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->tfd < 0) {
		int e = -errno;
		close(l->epfd);
		free(l);
		return e;
	}
	int r = loop_add_fd(l, l->tfd, LOOP_READ, on_timerfd, NULL);
	if (r != 0) {
		close(l->tfd);
		close(l->epfd);
		free(l);
		return r;
	}
	l->last_iter_ms = loop_now_ms();
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	if (l->sfd >= 0)
		close(l->sfd);
	close(l->tfd);
	close(l->epfd);
	free(l);
}

void loop_stop(struct loop *l)
{
	if (l != NULL)
		l->stop = true;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	int r = timers_program(l);
	if (r != 0)
		return r;
	struct epoll_event evs[LOOP_BATCH];
	int n = epoll_wait(l->epfd, evs, LOOP_BATCH, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	l->last_iter_ms = loop_now_ms();
	l->iterations++;
	for (int i = 0; i < n && !l->stop; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		if (fd < 0 || fd >= LOOP_MAX_FDS)
			continue;
		struct loop_slot *s = &l->slots[fd];
		if (s->cb == NULL || s->gen != gen)
			continue;
		unsigned ev = 0;
		if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
			ev |= LOOP_READ;
		if (evs[i].events & EPOLLOUT)
			ev |= LOOP_WRITE;
		if (evs[i].events & (EPOLLERR | EPOLLHUP))
			ev |= LOOP_ERROR;
		s->cb(l, fd, ev, s->arg);
	}
	if (!l->stop)
		timers_fire(l);
	return 0;
}

int loop_run(struct loop *l)
{
	if (l == NULL)
		return -EINVAL;
	l->stop = false;
	while (!l->stop) {
		int r = loop_run_once(l, -1);
		if (r != 0)
			return r;
	}
	return 0;
}

int64_t loop_last_iteration_ms(const struct loop *l)
{
	return l->last_iter_ms;
}

uint64_t loop_iterations(const struct loop *l)
{
	return l->iterations;
}
