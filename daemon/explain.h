/*
 * explain.h - why an activation exists and what it bills, in words a driver can check
 * (design.md section 2, "Explaining a bill"). The socket's explain query and coverctl's
 * read-only mode both call explain_build(), so the daemon and the database say the same.
 *
 * What is said, for one activation: what started cover (the job accepted at T, going
 * online, moving with the ignition on, a job in progress when a policy was assigned or
 * the app came back); what kept cover alive when this hour began (a job in progress since
 * T, the grace after the delivery at T, movement while the app was silent, last at T);
 * what ended it and the facts that met that rule (the times of the last delivery, the
 * last app event and the last movement); and the billed consequence in one line ("1 unit
 * billed for 0:12 of cover: the minimum"). The words never use the engine's rule names
 * (those stay in the JSON fields): they say what happened and when. Every time is given
 * in the device's local zone with UTC beside it: "15:54 CET (14:54 UTC)".
 *
 * The object (docs/ipc.md, "explain"):
 *   activation, open_event, close_event   the records, as daemon/render.h renders them
 *   time_zone        the zone name used, or null for the system's zone
 *   started_by       {reason, at, event_id}: reason job_accepted | online | motion |
 *                    job_in_progress, with cause (policy_assigned | app_returned |
 *                    job_accepted | online | private_off | max_session | null)
 *   kept_alive_by    {reason, since, hour_start}: reason start | job | grace | movement |
 *                    online, or null when the store has no record (older rows)
 *   ended_by         {reason, at, event_at, last_delivery, last_app_event, last_movement}:
 *                    reason is the activation's end (hour, or the session's end reason:
 *                    gap_end, offline, ...; voided; null while open), at its end, event_at
 *                    when the daemon saw it; the facts are those of the session's end
 *                    (or, while open, so far), null when none
 *   session          {start, end, end_reason}
 *   billed_units, cover_seconds, billing (the one-line consequence)
 *   lines            [{label, text}, ...]: the explanation, line by line
 *   statement        the same words as one paragraph
 * A time is {"utc": RFC 3339 UTC, "local": RFC 3339 with the zone's offset, "zone":
 * abbreviation}, or null.
 */
#ifndef COVERD_EXPLAIN_H
#define COVERD_EXPLAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine.h"
#include "store.h"

#define EXPLAIN_NONE INT64_MIN   /* a time that is not known */

/* Everything explain_render() says is taken from here. Pointers may be NULL (not found). */
struct explain_facts {
	const struct store_activation_row *act;   /* the activation explained; required */
	const struct store_session_row *sess;     /* its session */
	const char *start_rule;                   /* the open rule of the session's activation 0 */
	const struct store_event_row *start_ev;   /* the journal event that started the session */
	const struct store_event_row *open_ev;    /* this activation's opening event */
	const struct store_event_row *close_ev;   /* this activation's closing event */
	const struct store_event_row *end_ev;     /* the event that ended the session */
	bool after_max_session;    /* the previous session reached max_session at this start */
	bool open;                 /* the session is still open: facts are the live ones */
	/* The facts of the session's end (or, while open, so far): EXPLAIN_NONE when none. */
	int64_t last_delivery_ms;  /* the last delivery or cancellation up to the end */
	int64_t last_app_ms;       /* the last app event of any kind */
	int64_t last_move_ms;      /* the last movement (a moving fix) */
	const char *last_delivery_event;  /* "job_delivered" or "job_cancelled", or NULL */
	int64_t now_ms;            /* while open: the engine's latest time, for cover so far */
	/* For kept_alive_by "grace": the job end event at alive_since, "job_delivered" or
	 * "job_cancelled"; NULL when the grace ran from the app's return after a silence. */
	const char *grace_event;
};

/*
 * The explain object for f, times in zone (an IANA name; NULL or "" for the system's zone;
 * the caller has validated it, config_check_time_zone()). cfg (NULL: defaults) gives the
 * durations named. NULL on allocation failure. Not thread-safe: the zone is selected by
 * setting TZ for the length of the call, and restored.
 */
cJSON *explain_render(const struct explain_facts *f, const struct engine_config *cfg,
                      const char *zone);

/*
 * Reads from st what explain_render() needs about the activation with this id (the
 * session, its start and end events, the facts from the journal and the track; live, the
 * engine state, may be NULL, supplies the running figures of an open activation) and
 * renders it into *out (caller frees). 0, -ENOENT when there is no such activation (with
 * store_errmsg() naming it), -ENOMEM, or a store error.
 */
int explain_build(struct store *st, const char *activation_id, const struct engine_state *live,
                  const struct engine_config *cfg, const char *zone, cJSON **out);

/*
 * One time as explain writes it, "15:54 CET (14:54 UTC)", with a day ("Sun 29 Nov") before
 * the clock of each part whose date differs from ref_ms's local date; seconds when not
 * zero. For tests and coverctl.
 */
void explain_format_time(int64_t ms, int64_t ref_ms, const char *zone, char *buf, size_t len);

#endif
