/*
 * test_activation_prop.c - property test of the hourly activation split (design.md
 * section 2, engine.h "Activations") over at least 100,000 random sessions.
 *
 * Rules: design.md section 2, revision 2, as engine.h settles it.
 *
 * Sessions come in chains of one to four on one device state, each with a random
 * trigger and config: starts on hour edges (exact and a millisecond or so either side),
 * around midnight UTC and anywhere; durations of zero, under min_cover, exact multiples
 * of an hour and a millisecond around them, and anything up to 16 h; ends by an event
 * (offline, end-cover command, policy revoked, private mode; mid-job, or after the
 * delivery inside the grace, which backdates the end to the delivery), by max_session
 * (with the job delivered exactly then, or still in progress, which opens the next
 * session at once), and by backdating rules (gap_end, idle_end, app silence) with grace
 * periods of up to three hours, so hours opened in a grace get voided. Long jobs get
 * pickups at most job_timeout apart; stray pickups and re-sent deliveries with nothing in
 * progress must change nothing. For every session the test asserts:
 *  - the activations that are not void tile [start, end) exactly, with no gap and no
 *    overlap; activation k starts at start + k h; only a zero-length session has an
 *    empty activation 0; their number is max(1, ceil(duration / 1 h)), except that a
 *    zero-length session with no job accepted has its activation 0 voided;
 *  - voided activations start at or after the end, and exactly the hours that began
 *    before the end was detected were opened;
 *  - revisions, end reasons, the session record and the ids follow the spec;
 *  - replaying the chain into a fresh state gives identical ids and records, and so
 *    does continuing from a struct copy of the state taken at a random step.
 * Each chain is driven either ticking at every deadline or with no ticks but one at the
 * end, at random, which must make no difference.
 *
 * Usage: test_activation_prop [SEED [SESSIONS]]; COVERD_PROP_SEED and
 * COVERD_PROP_SESSIONS work too. The seed is printed so a failure can be reproduced.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "engine_harness.h"

#define DEFAULT_SEED 20261128ULL
#define MIN_SESSIONS 100000L
#define MAX_CHAIN 4
#define MAX_EV 1024
#define MAX_REPORTS 8

#define LAT0 51.5
#define LON0 (-0.12)

enum chain_kind { CH_JOB, CH_JOB_SILENCE, CH_ONLINE, CH_MOTION };

struct gsess {
	int64_t start, dur, end, detect;
	enum engine_end_reason reason;
	bool backdated;   /* the end was decided by a deadline after it */
	bool by_deadline; /* ended by a deadline (not by an event) */
	bool no_job;      /* no job accepted in it: of zero length, it bills nothing */
	bool cont;        /* opened at once by max_session ending the previous one mid-job */
	const char *how;  /* the ending, for failure reports */
};

struct chain {
	struct engine_config cfg;
	enum chain_kind kind;
	bool tick;
	int n;
	struct gsess s[MAX_CHAIN];
	size_t nev;
	struct engine_event ev[MAX_EV];
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: small, fast and good enough to spread test cases. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t rnd_range(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static struct chain g_ch;
static struct engine_state g_st1, g_st2, g_st3, g_snap;
static struct model g_m1, g_m2, g_m3, g_msnap;
static struct engine_actions g_out;

static void push(struct chain *c, struct engine_event e)
{
	if (c->nev >= MAX_EV) {
		fprintf(stderr, "test bug: chain needs more than %d events\n", MAX_EV);
		exit(2);
	}
	if (c->nev > 0 && e.t_ms < c->ev[c->nev - 1].t_ms) {
		fprintf(stderr, "test bug: events out of order\n");
		exit(2);
	}
	c->ev[c->nev++] = e;
}

static struct engine_event moving_fix(int64_t t)
{
	return ev_fix(t, LAT0, LON0, 5.0, 5.0);
}

static struct engine_event still_fix(int64_t t)
{
	return ev_fix(t, LAT0, LON0, 0.0, 5.0);
}

/* A duration: zero, under min_cover, hour multiples and their neighbours, or any. */
static int64_t pick_dur(const struct engine_config *cfg, int64_t max)
{
	int r = (int)(rnd() % 100);
	int64_t hours = max / HOUR_MS, d;
	if (r < 10)
		d = 0;
	else if (r < 25)
		d = rnd_range(1, cfg->min_cover_ms - 1);
	else if (r < 42)
		d = rnd_range(1, hours) * HOUR_MS;
	else if (r < 55)
		d = rnd_range(1, hours) * HOUR_MS + ((rnd() & 1) ? 1 : -1);
	else if (r < 62)
		d = rnd_range(1, hours) * HOUR_MS + rnd_range(-999, 999);
	else
		d = rnd_range(1, max);
	if (d < 0)
		d = 0;
	if (d > max)
		d = max;
	return d;
}

/* A start no earlier than earliest: on an hour edge, around midnight UTC, or anywhere. */
static int64_t pick_start(int64_t earliest)
{
	static const int64_t edge_off[] = { 0, 0, 0, -1, 1, -999, 999, 1000 };
	int r = (int)(rnd() % 10);
	if (r < 3) {
		int64_t e = ceil_div(earliest + SEC_MS, HOUR_MS) * HOUR_MS;
		return e + edge_off[rnd() % 8];
	}
	if (r < 5) {
		int64_t e = ceil_div(earliest + 3 * HOUR_MS, DAY_MS) * DAY_MS;
		int64_t off = (rnd() & 1) ? edge_off[rnd() % 8] : rnd_range(-2 * HOUR_MS, 2 * HOUR_MS);
		return e + off;
	}
	if (r < 6)
		return earliest;
	return earliest + rnd_range(0, 3 * HOUR_MS);
}

/* A session ended by a deadline that fires once time passes d (its end being end),
 * unless max_session comes first. At equal instants the backdating rules win over
 * max_session (engine.h: job_timeout, gap_end, app silence, idle_end, max_session). */
static void deadline_end(struct gsess *g, const struct engine_config *cfg, int64_t end,
                         int64_t d, enum engine_end_reason why)
{
	int64_t max_at = g->start + cfg->max_session_ms;
	g->by_deadline = true;
	if (d > max_at) {
		g->end = max_at;
		g->detect = max_at;
		g->reason = END_MAX_SESSION;
		g->backdated = false;
	} else {
		g->end = end;
		g->detect = d;
		g->reason = why;
		g->backdated = d > end;
	}
}

struct needs {
	bool online, policy, private_off, job_done;
};

/* Pickups every `every` after the job's last event while before `until`, so a long job
 * never reaches job_timeout (rev 2); at most job_timeout apart, which is still in time. */
static void push_pickups(struct chain *c, int64_t *job_last, int64_t every, int64_t until)
{
	while (*job_last + every < until) {
		*job_last += every;
		push(c, ev_app(*job_last, APP_JOB_PICKED_UP));
	}
}

/* Now and then a stray pickup or a re-sent delivery in [from, to] with no job in
 * progress: rev 2 says neither ends nor extends anything. */
static void maybe_stray(struct chain *c, int64_t from, int64_t to)
{
	if (to < from || rnd() % 3 != 0)
		return;
	push(c, ev_app(rnd_range(from, to), (rnd() & 1) ? APP_JOB_PICKED_UP : APP_JOB_DELIVERED));
}

/*
 * An ending event (offline, end cover, revoke, private_on) of a JOB-trigger session at
 * start + dur. Either mid-job (cover ends at the event), or after the delivery at
 * start + dur, up to gap_end later (inside the grace, so cover ends at the delivery,
 * under the event's reason). A revoke leaves jobs in progress, so it always comes after
 * the delivery (otherwise the next assign would reopen cover mid-job).
 */
static void job_event_end(struct chain *c, struct gsess *g, struct needs *nd, int64_t start,
                          int64_t dur, enum engine_end_reason why_end, int64_t *job_last,
                          int64_t every)
{
	const struct engine_config *cfg = &c->cfg;
	int64_t end = start + dur, t = end;
	bool mid_job = why_end != END_POLICY_REVOKED && (rnd() & 1);
	push_pickups(c, job_last, every, end);
	if (!mid_job) {
		push(c, ev_app(end, APP_JOB_DELIVERED));
		int64_t room = start + cfg->max_session_ms - end;
		int64_t x = (rnd() & 1) ? cfg->gap_end_ms : rnd_range(0, cfg->gap_end_ms);
		t = end + (x < room ? x : room);
		maybe_stray(c, end, t);
	}
	if (why_end == END_OFFLINE) {
		push(c, ev_app(t, APP_OFFLINE));
		nd->online = true;
	} else if (why_end == END_COMMAND) {
		push(c, ev_cmd(t, CMD_END_COVER));
	} else if (why_end == END_POLICY_REVOKED) {
		push(c, ev_revoke(t, "P-9"));
		nd->policy = true;
	} else {
		push(c, ev_app(t, APP_PRIVATE_ON));
		nd->private_off = true;
	}
	g->how = mid_job ? engine_end_reason_name(why_end) :
	         why_end == END_OFFLINE ? "offline in grace" : why_end == END_COMMAND ?
	         "end_cover in grace" : why_end == END_POLICY_REVOKED ? "revoke in grace" :
	         "private in grace";
	g->end = end;
	g->detect = t;
	g->reason = why_end;
	g->backdated = t > end;
}

static void gen_chain(struct chain *c, int nsess)
{
	engine_config_defaults(&c->cfg);
	int r = (int)(rnd() % 100);
	c->kind = r < 50 ? CH_JOB : r < 65 ? CH_JOB_SILENCE : r < 85 ? CH_ONLINE : CH_MOTION;
	c->tick = (rnd() & 1) != 0;
	c->nev = 0;
	c->n = 0;
	struct engine_config *cfg = &c->cfg;
	/* Grace periods from one second to three hours: long ones open hours to void. */
	int64_t grace;
	switch (rnd() % 4) {
	case 0: grace = SEC_MS; break;
	case 1: grace = rnd_range(SEC_MS, 3 * HOUR_MS); break;
	case 2: grace = (int64_t)rnd_range(1, 3) * HOUR_MS; break;
	default: grace = 0; break;
	}
	switch (c->kind) {
	case CH_JOB:
		cfg->trigger = TRIGGER_JOB;
		if (grace > 0)
			cfg->gap_end_ms = grace;
		/* The app never falls silent within a session here; silence has its own kind. */
		cfg->app_silence_ms = 17 * HOUR_MS;
		break;
	case CH_JOB_SILENCE:
		cfg->trigger = TRIGGER_JOB;
		break;
	case CH_ONLINE:
		cfg->trigger = TRIGGER_ONLINE;
		if (grace > 0)
			cfg->idle_end_ms = grace;
		cfg->app_silence_ms = 17 * HOUR_MS;
		break;
	case CH_MOTION:
		/* Only movement keeps these sessions alive, and the test moves every
		 * idle_end / 2, so very short idle times would cost too many fixes. */
		cfg->trigger = TRIGGER_MOTION;
		if (grace >= 20 * MIN_MS)
			cfg->idle_end_ms = grace;
		break;
	}
	snprintf(cfg->device_id, sizeof(cfg->device_id), "prop-%u", (unsigned)(rnd() % 1000));
	const char *why = NULL;
	if (engine_config_check(cfg, &why) != 0) {
		fprintf(stderr, "config rejected (kind %d, gap %" PRId64 ", idle %" PRId64
		        ", silence %" PRId64 "): %s\n", c->kind, cfg->gap_end_ms, cfg->idle_end_ms,
		        cfg->app_silence_ms, why ? why : "?");
		exit(1);
	}
	/* Pickups keep long jobs from job_timeout: sometimes exactly job_timeout apart (an
	 * event at the deadline's instant is applied before it is judged). */
	int64_t every = (rnd() & 1) ? cfg->job_timeout_ms :
	                rnd_range(30 * MIN_MS, cfg->job_timeout_ms);

	/* Any time in 2026-2027. */
	int64_t earliest = 1767225600000LL + rnd_range(0, 2 * 365 * DAY_MS);
	struct needs nd = { .online = true, .policy = true };
	/* cont: max_session ended the previous session mid-job, so this one opened at once
	 * at cont_at, the job still in progress (rev 2). */
	bool cont = false;
	int64_t cont_at = 0, job_last = 0;
	for (int j = 0; j < nsess; j++) {
		struct gsess *g = &c->s[c->n++];
		memset(g, 0, sizeof(*g));
		int64_t start = cont ? cont_at : pick_start(earliest);
		g->start = start;
		g->cont = cont;
		int64_t pre = start - 1;
		if (!cont) {
			if (nd.policy)
				push(c, ev_assign(pre, "P-9", "D-9", "V-9"));
			if (nd.private_off)
				push(c, ev_app(pre, APP_PRIVATE_OFF));
			if (nd.online && (c->kind == CH_JOB || c->kind == CH_JOB_SILENCE))
				push(c, ev_app(pre, APP_ONLINE));
		}
		memset(&nd, 0, sizeof(nd));
		int64_t max = cfg->max_session_ms;
		int64_t last_t = start;
		/* Only a session that can reopen at once, not the chain's last, continues. */
		bool may_continue = j + 1 < nsess;
		bool next_cont = false;
		switch (c->kind) {
		case CH_JOB: {
			if (!cont) {
				push(c, ev_app(start, APP_JOB_ACCEPTED));
				job_last = start;
			}
			int e = (int)(rnd() % 8);
			int64_t dur = pick_dur(cfg, max);
			/* A delivery or an ending event at the continued session's start would be
			 * applied before max_session ended the previous one. */
			if (cont && dur < 2)
				dur = 2;
			if (e <= 2) {
				/* gap_end after a delivery or a cancellation. */
				push_pickups(c, &job_last, every, start + dur);
				push(c, ev_app(start + dur, e == 0 ? APP_JOB_CANCELLED : APP_JOB_DELIVERED));
				g->how = e == 0 ? "cancel+gap_end" : "deliver+gap_end";
				deadline_end(g, cfg, start + dur, start + dur + cfg->gap_end_ms, END_GAP);
				maybe_stray(c, start + dur, g->detect);
			} else if (e == 3) {
				/* A job through max_session: delivered exactly then (applied before
				 * max_session is judged), or still in progress, which opens the next
				 * session at once. */
				push_pickups(c, &job_last, every, start + max);
				next_cont = may_continue && (rnd() & 1);
				if (!next_cont)
					push(c, ev_app(start + max, APP_JOB_DELIVERED));
				g->how = next_cont ? "max_session mid-job" : "max_session";
				deadline_end(g, cfg, start + max, start + max, END_MAX_SESSION);
			} else {
				static const enum engine_end_reason rs[] = { END_OFFLINE, END_COMMAND,
					END_POLICY_REVOKED, END_PRIVATE };
				job_event_end(c, g, &nd, start, dur, rs[e - 4], &job_last, every);
			}
			g->dur = g->end - start;
			break;
		}
		case CH_JOB_SILENCE: {
			push(c, ev_app(start, APP_JOB_ACCEPTED));
			/* Moving at the start, then standing: the last movement is the start. */
			push(c, moving_fix(start));
			push(c, still_fix(start));
			/* Heartbeats every 4 min keep the app alive up to the last app event; every
			 * hour one is a pickup, so the job never reaches job_timeout. */
			int64_t dur = pick_dur(cfg, 3 * HOUR_MS);
			int k = 0;
			for (int64_t t = start + 4 * MIN_MS; t < start + dur; t += 4 * MIN_MS)
				push(c, ev_app(t, ++k % 15 == 0 ? APP_JOB_PICKED_UP : APP_HEARTBEAT));
			if (dur > 0)
				push(c, ev_app(start + dur, APP_HEARTBEAT));
			/* Rev 2: with a job in progress the vehicle must stand for idle_end (not
			 * gap_end); standing since the start. */
			int64_t d = start + dur + cfg->app_silence_ms;
			if (d < start + cfg->idle_end_ms)
				d = start + cfg->idle_end_ms;
			g->how = "app_silence";
			deadline_end(g, cfg, start + dur, d, END_APP_SILENCE);
			g->dur = dur;
			nd.job_done = true;
			break;
		}
		case CH_ONLINE: {
			if (!cont) {
				if (j > 0)
					push(c, ev_app(pre, APP_OFFLINE));
				push(c, ev_app(start, APP_ONLINE));
				push(c, ev_app(start, APP_JOB_ACCEPTED));
				job_last = start;
			}
			int e = (int)(rnd() % 7);
			int64_t dur = pick_dur(cfg, max);
			if (cont && dur < 2)
				dur = 2;
			if (e <= 2) {
				push_pickups(c, &job_last, every, start + dur);
				push(c, ev_app(start + dur, APP_JOB_DELIVERED));
				g->how = "idle_end";
				deadline_end(g, cfg, start + dur, start + dur + cfg->idle_end_ms, END_IDLE);
				maybe_stray(c, start + dur, g->detect);
			} else if (e == 3) {
				push_pickups(c, &job_last, every, start + max);
				next_cont = may_continue && (rnd() & 1);
				if (!next_cont)
					push(c, ev_app(start + max, APP_JOB_DELIVERED));
				g->how = next_cont ? "max_session mid-job" : "max_session";
				deadline_end(g, cfg, start + max, start + max, END_MAX_SESSION);
			} else {
				/* No grace under the online trigger: cover ends at the event. */
				static const enum engine_end_reason rs[] = { END_COMMAND,
					END_POLICY_REVOKED, END_PRIVATE };
				enum engine_end_reason why_end = rs[e - 4];
				int64_t t = start + dur;
				push_pickups(c, &job_last, every, t > start ? t - 1 : t);
				push(c, ev_app(t > start ? t - 1 : t, APP_JOB_DELIVERED));
				if (why_end == END_COMMAND) {
					push(c, ev_cmd(t, CMD_END_COVER));
				} else if (why_end == END_POLICY_REVOKED) {
					push(c, ev_revoke(t, "P-9"));
					nd.policy = true;
				} else {
					push(c, ev_app(t, APP_PRIVATE_ON));
					nd.private_off = true;
				}
				g->how = engine_end_reason_name(why_end);
				g->end = g->detect = t;
				g->reason = why_end;
			}
			g->dur = g->end - start;
			break;
		}
		case CH_MOTION: {
			/* No app, no job: a zero-length session bills nothing (rev 2). */
			g->no_job = true;
			if (j == 0)
				push(c, ev_ignition(pre, true));
			push(c, moving_fix(start));
			int e = (int)(rnd() % 4);
			int64_t dur = pick_dur(cfg, max);
			/* Keep moving until the end; the last movement is at start + dur. */
			for (int64_t t = start + cfg->idle_end_ms / 2; t < start + dur - 1;
			     t += cfg->idle_end_ms / 2)
				push(c, moving_fix(t));
			if (e <= 1) {
				if (dur > 0)
					push(c, moving_fix(start + dur));
				push(c, still_fix(start + dur));
				g->how = "motion idle_end";
				deadline_end(g, cfg, start + dur, start + dur + cfg->idle_end_ms, END_IDLE);
			} else {
				enum engine_end_reason why_end = e == 2 ? END_COMMAND : END_POLICY_REVOKED;
				int64_t t = start + dur;
				if (dur > 0)
					push(c, moving_fix(t - 1));
				if (why_end == END_COMMAND) {
					push(c, ev_cmd(t, CMD_END_COVER));
				} else {
					push(c, ev_revoke(t, "P-9"));
					nd.policy = true;
				}
				g->how = engine_end_reason_name(why_end);
				g->end = g->detect = t;
				g->reason = why_end;
			}
			g->dur = g->end - start;
			break;
		}
		}
		for (size_t i = 0; i < c->nev; i++)
			if (c->ev[i].t_ms > last_t)
				last_t = c->ev[i].t_ms;
		cont = next_cont;
		if (cont) {
			/* The next session's events follow; they judge max_session. */
			cont_at = g->end;
			continue;
		}
		/* Time must pass the detection: a deadline at d fires at the first event or
		 * tick later than d; the daemon's timer ticks at d + 1. */
		if (g->by_deadline && g->detect >= last_t) {
			push(c, ev_tick(g->detect + 1));
			last_t = g->detect + 1;
		}
		if (nd.job_done) {
			push(c, ev_app(last_t + 1, APP_JOB_DELIVERED));
			last_t += 1;
			nd.job_done = false;
		}
		earliest = last_t + 2;
	}
}

/* Feeds events [from, to). A ticking chain leaves out the chain's own TICKs and lives on
 * engine_next_deadline() alone, as the daemon does, and at the end ticks until nothing is
 * pending; the other mode sends only the chain's events. */
static void run_range(const struct chain *c, struct engine_state *st, struct model *m,
                      size_t from, size_t to, bool probe)
{
	m->check_deadlines = probe;
	for (size_t i = from; i < to; i++) {
		if (c->tick && c->ev[i].type == COV_EV_TICK)
			continue;
		harness_feed(&c->cfg, st, &c->ev[i], &g_out, m, c->tick);
	}
	if (c->tick && to == c->nev)
		harness_drain(&c->cfg, st, &g_out, m, 100);
}

static long g_failed_chains;
static struct errbuf g_eb;

/* The spec's answer for session j of the chain, checked against the model. */
static void check_session(const struct chain *c, const struct model *m, int j,
                          struct errbuf *eb)
{
	const struct gsess *g = &c->s[j];
	const struct model_session *ms = &m->s[j];
	const int64_t unit = c->cfg.unit_ms;
	char sid[ENGINE_SESSION_ID_MAX];
	engine_session_id(sid, sizeof(sid), c->cfg.device_id, g->start, (uint64_t)j + 1);
	if (strcmp(ms->id, sid) != 0 || ms->ordinal != (uint64_t)j + 1)
		errbuf_add(eb, "session %d id %s ordinal %" PRIu64 ", want %s", j, ms->id,
		           ms->ordinal, sid);
	if (ms->start_ms != g->start)
		errbuf_add(eb, "session %d starts %+" PRId64 " ms off", j, ms->start_ms - g->start);
	if (!ms->closed) {
		errbuf_add(eb, "session %d never closed", j);
		return;
	}
	if (ms->end_ms != g->end || ms->end_reason != g->reason)
		errbuf_add(eb, "session %d (%s, duration %" PRId64 " ms): end %+" PRId64
		           " ms from start %s%s, want %+" PRId64 " %s", j, g->how, g->dur,
		           ms->end_ms - g->start, engine_end_reason_name(ms->end_reason),
		           "", g->end - g->start,
		           engine_end_reason_name(g->reason));
	if (ms->close_at_ms != g->detect)
		errbuf_add(eb, "session %d (%s) closed at %+" PRId64 " ms from start, want %+"
		           PRId64, j, g->how, ms->close_at_ms - g->start, g->detect - g->start);

	int64_t dur = g->end - g->start;
	/* Rev 2: a zero-length session in which no job was accepted bills nothing, its
	 * activation 0 voided; any other one bills at least activation 0. */
	bool void0 = dur == 0 && g->no_job;
	int want_n = void0 ? 0 : dur == 0 ? 1 : (int)ceil_div(dur, unit);
	/* Hours that began before the end was detected were opened; at equal times the
	 * session-ending rule comes first, so an hour starting at the detection is not. */
	int opened = 0;
	while (opened < ENGINE_MAX_ACTS && g->start + (int64_t)opened * unit < g->detect)
		opened++;
	if (opened < 1)
		opened = 1;
	int want_void = opened > want_n ? opened - want_n : 0;
	int n_live = 0, n_void = 0;
	int64_t cursor = g->start;
	for (int k = 0; k < ENGINE_MAX_ACTS; k++) {
		const struct model_act *ma = &ms->acts[k];
		if (!ma->seen)
			continue;
		const struct engine_activation *a = &ma->a;
		char aid[ENGINE_ACT_ID_MAX];
		engine_activation_id(aid, sizeof(aid), ms->id, k);
		char want_aid[ENGINE_ACT_ID_MAX + 16];
		snprintf(want_aid, sizeof(want_aid), "%s-%d", sid, k);
		if (strcmp(aid, want_aid) != 0)
			errbuf_add(eb, "activation id %s, want %s", aid, want_aid);
		int64_t hs = g->start + (int64_t)k * unit, he = hs + unit;
		if (a->start_ms != hs)
			errbuf_add(eb, "session %d activation %d starts %+" PRId64 " ms from its hour",
			           j, k, a->start_ms - hs);
		if (a->status == ACT_VOID) {
			n_void++;
			if (k < want_n || a->start_ms < g->end)
				errbuf_add(eb, "session %d (%s, duration %" PRId64 "): activation %d voided "
				           "but starts %+" PRId64 " ms from the end", j, g->how, dur, k,
				           a->start_ms - g->end);
			if (k == 0 && !void0)
				errbuf_add(eb, "session %d (%s, duration %" PRId64 "): activation 0 voided",
				           j, g->how, dur);
			if (a->end_reason != END_VOID)
				errbuf_add(eb, "session %d activation %d void with reason %s", j, k,
				           engine_end_reason_name(a->end_reason));
			int rev = he < g->detect ? 3 : 2;
			if (a->revision != rev)
				errbuf_add(eb, "session %d (%s) void activation %d revision %d, want %d", j,
				           g->how, k, a->revision, rev);
			continue;
		}
		n_live++;
		if (a->status != ACT_CLOSED) {
			errbuf_add(eb, "session %d activation %d status %d after the session closed", j,
			           k, a->status);
			continue;
		}
		int64_t we = he < g->end ? he : g->end;
		if (a->start_ms != cursor || a->end_ms != we)
			errbuf_add(eb, "session %d (%s, duration %" PRId64 "): activation %d covers [%+"
			           PRId64 ", %+" PRId64 ") from start, want [%+" PRId64 ", %+" PRId64 ")",
			           j, g->how, dur, k, a->start_ms - g->start, a->end_ms - g->start,
			           cursor - g->start, we - g->start);
		if (a->end_ms == a->start_ms && dur != 0)
			errbuf_add(eb, "session %d activation %d is empty in a %" PRId64 " ms session",
			           j, k, dur);
		cursor = a->end_ms;
		/* The end reason: an hour closed by its boundary says END_HOUR, the last one
		 * the session's reason, unless a backdated end fell exactly on its boundary
		 * (then it is not inside it and the hour's record stands). */
		bool last = k == want_n - 1;
		bool hour_closed = he < g->detect;
		enum engine_end_reason wr = END_HOUR;
		if (last && !(g->backdated && g->end == he && hour_closed))
			wr = g->reason;
		if (a->end_reason != wr)
			errbuf_add(eb, "session %d (%s, duration %" PRId64 ") activation %d end reason "
			           "%s, want %s", j, g->how, dur, k, engine_end_reason_name(a->end_reason),
			           engine_end_reason_name(wr));
		int rev = hour_closed && g->end < he ? 3 : 2;
		if (a->revision != rev)
			errbuf_add(eb, "session %d (%s, duration %" PRId64 ") activation %d revision %d, "
			           "want %d", j, g->how, dur, k, a->revision, rev);
	}
	if (n_live != want_n)
		errbuf_add(eb, "session %d (%s, duration %" PRId64 " ms): %d live activations, want "
		           "%s = %d", j, g->how, dur, n_live,
		           void0 ? "0 (zero length, no job)" : "max(1, ceil(d/1h))", want_n);
	if (cursor != g->end)
		errbuf_add(eb, "session %d: activations end %+" PRId64 " ms from the session end",
		           j, cursor - g->end);
	if (n_void != want_void)
		errbuf_add(eb, "session %d (%s, duration %" PRId64 ", detected %+" PRId64 "): %d "
		           "voided activations, want %d", j, g->how, dur, g->detect - g->end, n_void,
		           want_void);
}

static void report_chain(long idx, const struct chain *c, const struct errbuf *eb)
{
	g_failed_chains++;
	if (g_failed_chains > MAX_REPORTS)
		return;
	char tb[40];
	fprintf(stderr, "--- chain %ld (kind %d, %s, gap %" PRId64 " idle %" PRId64
	        " silence %" PRId64 ") failed:\n%s", idx, c->kind, c->tick ? "ticking" : "no ticks",
	        c->cfg.gap_end_ms, c->cfg.idle_end_ms, c->cfg.app_silence_ms, eb->s);
	for (int j = 0; j < c->n; j++) {
		harness_fmt_time(tb, sizeof(tb), c->s[j].start);
		fprintf(stderr, "    session %d: start %s duration %" PRId64 " ms, %s\n", j, tb,
		        c->s[j].dur, c->s[j].how);
	}
	for (size_t i = 0; i < c->nev && i < 40; i++) {
		harness_fmt_time(tb, sizeof(tb), c->ev[i].t_ms);
		fprintf(stderr, "    event %zu: %s type %d arg %d\n", i, tb, (int)c->ev[i].type,
		        c->ev[i].type == COV_EV_APP ? (int)c->ev[i].u.app : -1);
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = DEFAULT_SEED;
	long want = MIN_SESSIONS;
	const char *es = getenv("COVERD_PROP_SEED");
	const char *en = getenv("COVERD_PROP_SESSIONS");
	if (argc > 1)
		es = argv[1];
	if (argc > 2)
		en = argv[2];
	if (es && *es)
		seed = strtoull(es, NULL, 0);
	if (en && *en)
		want = strtol(en, NULL, 0);
	if (want < 1)
		want = 1;
	printf("activation property test: seed=%" PRIu64 " sessions>=%ld "
	       "(reproduce with: test_activation_prop %" PRIu64 " %ld)\n", seed, want, seed, want);
	fflush(stdout);
	rng_state = seed;
	clock_t t0 = clock();

	long sessions = 0, chains = 0, steps = 0, voids = 0, zero = 0, hour_mult = 0;
	char why[256];
	while (sessions < want) {
		int nsess = (int)rnd_range(1, MAX_CHAIN);
		gen_chain(&g_ch, nsess);
		errbuf_init(&g_eb);
		size_t cut = (size_t)rnd_range(1, (int64_t)g_ch.nev);
		bool probe = chains % 4 == 0;

		/* Run 1, with a snapshot of the state at a random step. */
		engine_state_init(&g_st1);
		model_init(&g_m1);
		run_range(&g_ch, &g_st1, &g_m1, 0, cut, probe);
		g_snap = g_st1;
		g_msnap = g_m1;
		run_range(&g_ch, &g_st1, &g_m1, cut, g_ch.nev, probe);
		if (g_m1.err.n > 0)
			errbuf_add(&g_eb, "action stream broke %d rule(s):\n%s", g_m1.err.n, g_m1.err.s);
		if (g_m1.rejects > 0)
			errbuf_add(&g_eb, "%zu events rejected (last %s)", g_m1.rejects,
			           engine_reject_name(g_m1.last_reject));
		if (g_m1.n != g_ch.n)
			errbuf_add(&g_eb, "%d sessions, want %d", g_m1.n, g_ch.n);
		for (int j = 0; j < g_ch.n && j < g_m1.n; j++)
			check_session(&g_ch, &g_m1, j, &g_eb);

		/* Run 2: the same input replayed into a fresh state. */
		engine_state_init(&g_st2);
		model_init(&g_m2);
		run_range(&g_ch, &g_st2, &g_m2, 0, g_ch.nev, false);
		if (!harness_model_equal(&g_m1, &g_m2, why, sizeof(why)))
			errbuf_add(&g_eb, "replay into a fresh state differs: %s", why);
		if (!harness_state_equal(&g_st1, &g_st2, why, sizeof(why)))
			errbuf_add(&g_eb, "replayed state differs: %s", why);

		/* Run 3: continue from the struct copy, as after a reload from the store. */
		g_st3 = g_snap;
		g_m3 = g_msnap;
		run_range(&g_ch, &g_st3, &g_m3, cut, g_ch.nev, false);
		if (!harness_model_equal(&g_m1, &g_m3, why, sizeof(why)))
			errbuf_add(&g_eb, "continuing from a state copy at event %zu differs: %s", cut,
			           why);
		if (!harness_state_equal(&g_st1, &g_st3, why, sizeof(why)))
			errbuf_add(&g_eb, "state continued from a copy differs: %s", why);

		if (g_eb.n > 0)
			report_chain(chains, &g_ch, &g_eb);
		for (int j = 0; j < g_ch.n; j++) {
			int64_t d = g_ch.s[j].end - g_ch.s[j].start;
			zero += d == 0;
			hour_mult += d > 0 && d % HOUR_MS == 0;
		}
		for (int j = 0; j < g_m1.n; j++)
			for (int k = 0; k < ENGINE_MAX_ACTS; k++)
				voids += g_m1.s[j].acts[k].seen && g_m1.s[j].acts[k].a.status == ACT_VOID;
		steps += (long)(g_m1.steps + g_m2.steps + g_m3.steps - g_msnap.steps);
		sessions += g_ch.n;
		chains++;
	}
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("%ld sessions in %ld chains, %ld engine steps, %ld zero-length, %ld exact hour "
	       "multiples, %ld voided activations, %.2f s CPU\n", sessions, chains, steps, zero,
	       hour_mult, voids, secs);
	if (g_failed_chains > 0) {
		printf("FAILED: %ld of %ld chains (seed %" PRIu64 ")\n", g_failed_chains, chains, seed);
		return 1;
	}
	printf("OK\n");
	return 0;
}
