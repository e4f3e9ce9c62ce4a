/*
 * pump.c - the outbox pump and the backend's acknowledgements (docs/protocol.md,
 * "Exactly once in effect").
 *
 * Records go out in sequence order, at most `window` beyond the last acknowledged one.
 * Each envelope is built at send time from the stored body and signature bytes, so a
 * resend is byte-identical to the first send. A record counts as delivered only when an
 * ack from the backend covers it (store_outbox_ack); PUBACK plays no part. After every
 * reconnect, and when no ack has advanced for ack_timeout while records are in flight,
 * the pump starts again from the first unacknowledged record: the backend stores by
 * (device, seq) and counts a resend as a duplicate.
 *
 * Acks that arrive together (one read of the socket can hold several) are written to the
 * store once, with the highest, after libmosquitto returns: one transaction per burst
 * rather than per ack.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "proto.h"
#include "sync_int.h"

#define PRUNE_BATCHES 64      /* track rows per prune transaction */
#define ACK_WRITE_MS 100      /* the acked position is written at most this often */
#define PRUNE_ROUNDS 16       /* prune transactions per check at most */

struct first_ctx {
	int64_t seq;
};

static int first_row(void *ctx, const struct store_outbox_row *r)
{
	((struct first_ctx *)ctx)->seq = r->seq;
	return 1;
}

static int pruned_counter(void *ctx, const char *name, int64_t value)
{
	if (strcmp(name, "track.pruned") == 0)
		*(int64_t *)ctx = value;
	return 0;
}

int sync__pump_load(struct sync *s)
{
	struct store *st = core_store(s->core);
	int64_t last = 0;
	int r = store_outbox_last_seq(st, &last);
	if (r != 0)
		return r;
	struct first_ctx f = { 0 };
	r = store_outbox_next(st, 0, 1, first_row, &f);
	if (r < 0)
		return r;
	s->acked_upto = f.seq > 0 ? f.seq - 1 : last;
	s->stored_upto = s->acked_upto;
	s->sent_upto = s->acked_upto;
	s->highest_sent = s->acked_upto;
	s->last_seq_seen = last;
	s->pending_ack = 0;
	s->track_pruned = 0;
	(void)store_counters(st, pruned_counter, &s->track_pruned);
	return 0;
}

/* ---------------------------------------------------------------- sending */

static int publish_row(void *ctx, const struct store_outbox_row *row)
{
	struct sync *s = ctx;
	unsigned char sig[SIGN_SIG_MAX];
	const unsigned char *sp = row->sig;
	size_t slen = row->sig_len, n;

	if (row->body_len == 0 || row->body_len > SYNC_BODY_MAX) {
		log_warnx("outbox: record %" PRId64 " has a %zu-byte body; not sent", row->seq,
		          row->body_len);
		return -EINVAL;
	}
	if (sp == NULL || slen == 0) {
		/* A row committed before the device had a signer (delivery was off): sign the
		 * stored bytes now. ECDSA here is deterministic, so every resend of this row
		 * carries the same signature. */
		int r = s->key != NULL ? sign_body(s->key, (const unsigned char *)row->body,
		                                   row->body_len, sig, sizeof(sig), &slen)
		                       : -EINVAL;
		if (r != 0) {
			log_warnx("outbox: record %" PRId64 " is unsigned and cannot be signed: %s",
			          row->seq, sign_strerror(r));
			return r;
		}
		sp = sig;
	}
	if (sign_b64_encode(row->body, row->body_len, s->b64_body, sizeof(s->b64_body), &n) != 0 ||
	    sign_b64_encode(sp, slen, s->b64_sig, sizeof(s->b64_sig), &n) != 0)
		return -ENOSPC;

	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL && cJSON_AddNumberToObject(o, "v", 1) != NULL &&
	          cJSON_AddStringToObject(o, "alg", "ES256") != NULL &&
	          cJSON_AddStringToObject(o, "device_id", s->device_id) != NULL &&
	          cJSON_AddNumberToObject(o, "seq", (double)row->seq) != NULL;
	/* The base64 strings are referenced, not copied: they live in s until printed. */
	if (ok) {
		cJSON *b = cJSON_CreateStringReference(s->b64_body);
		ok = b != NULL && cJSON_AddItemToObject(o, "body", b);
		if (!ok)
			cJSON_Delete(b);
	}
	if (ok) {
		cJSON *g = cJSON_CreateStringReference(s->b64_sig);
		ok = g != NULL && cJSON_AddItemToObject(o, "sig", g);
		if (!ok)
			cJSON_Delete(g);
	}
	ok = ok && cJSON_PrintPreallocated(o, s->envelope, (int)sizeof(s->envelope), 0);
	cJSON_Delete(o);
	if (!ok)
		return -ENOMEM;
	if (sync__publish(s, s->t_records, s->envelope, strlen(s->envelope), false, NULL) != 0)
		return -EIO;
	s->sent_upto = row->seq;
	if (row->seq > s->highest_sent)
		s->highest_sent = row->seq;
	s->published++;
	return 0;
}

void sync__pump_run(struct sync *s)
{
	if (s->link != LINK_UP || s->mosq == NULL || s->lost)
		return;
	struct store *st = core_store(s->core);
	/* With nothing in flight nothing is awaited: the ack timeout counts from now. */
	if (s->sent_upto == s->acked_upto)
		s->last_progress_ms = loop_now_ms();
	while (s->sent_upto - s->acked_upto < s->window) {
		int64_t before = s->sent_upto;
		int room = (int)(s->window - (s->sent_upto - s->acked_upto));
		int r = store_outbox_next(st, s->sent_upto, room, publish_row, s);
		if (r < 0 && r != -EIO && r != -ENOTCONN)
			log_warnx("outbox: cannot send from seq %" PRId64 ": %s", s->sent_upto + 1,
			          store_errmsg(st)[0] != '\0' ? store_errmsg(st) : store_strerror(r));
		if (r != 0 || s->sent_upto == before)
			break;
	}
}

void sync__pump_reset(struct sync *s)
{
	s->sent_upto = s->acked_upto;
	s->last_progress_ms = loop_now_ms();
}

void sync__pump_check(struct sync *s)
{
	if (s->sent_upto <= s->acked_upto)
		return;
	int64_t now = loop_now_ms();
	if (now - s->last_progress_ms < s->ack_timeout_ms)
		return;
	log_info("outbox: no ack for %.0f s with %" PRId64 " records in flight; resending from "
	         "seq %" PRId64, (double)(now - s->last_progress_ms) / 1000.0,
	         s->sent_upto - s->acked_upto, s->acked_upto + 1);
	s->resends++;
	core_count(s->core, "outbox.resend", 1);
	sync__pump_reset(s);
	sync__pump_run(s);
}

/* ---------------------------------------------------------------- acks */

void sync__pump_on_ack(struct sync *s, const void *payload, size_t len)
{
	const char *reason = "malformed";
	char why[160], name[48];
	int64_t upto = 0;
	if (sync_proto_ack(payload, len, &upto, &reason, why, sizeof(why)) != 0) {
		snprintf(name, sizeof(name), "ack.%s", reason);
		log_warnx("MQTT: ack refused (%s): %s", reason, why);
		core_count(s->core, name, 1);
		return;
	}
	int64_t last = 0;
	if (store_outbox_last_seq(core_store(s->core), &last) != 0) {
		log_warnx("MQTT: ack upto %" PRId64 " not checked: the store cannot be read", upto);
		return;
	}
	if (upto > last) {
		/* The backend cannot hold a record this device never wrote: a replayed or
		 * foreign ack, or a backend that confuses devices. Applying it would mark
		 * records delivered before they exist. */
		log_warnx("MQTT: ack refused (beyond): upto %" PRId64 " but the highest record "
		          "written is %" PRId64, upto, last);
		core_count(s->core, "ack.beyond", 1);
		return;
	}
	if (upto > s->highest_sent) {
		/* Written but never sent by this process: the backend cannot have stored it from
		 * us (a record from before a restart is sent again and acked again). Applying it
		 * would mark records delivered on an ack for something else. */
		log_warnx("MQTT: ack refused (unsent): upto %" PRId64 " but the highest record "
		          "sent is %" PRId64, upto, s->highest_sent);
		core_count(s->core, "ack.unsent", 1);
		return;
	}
	int64_t have = s->pending_ack > s->acked_upto ? s->pending_ack : s->acked_upto;
	if (upto <= have) {
		/* Acks from several ingests cross, and a resend is acked again: harmless. */
		log_debug("MQTT: stale ack upto %" PRId64 " (have %" PRId64 ")", upto, have);
		return;
	}
	s->pending_ack = upto;
}

static void lat_record(struct sync *s, int64_t now)
{
	while (s->lat_n > 0) {
		struct sync_lat_pending *p = &s->lat_pend[s->lat_head];
		if (p->seq > s->acked_upto)
			break;
		int64_t d = now - p->t_ms;
		s->lat_samples[s->lat_next] = (int32_t)(d > INT32_MAX ? INT32_MAX : d < 0 ? 0 : d);
		s->lat_next = (s->lat_next + 1) % SYNC_LAT_SAMPLES;
		if (s->lat_count < SYNC_LAT_SAMPLES)
			s->lat_count++;
		s->lat_head = (s->lat_head + 1) % SYNC_LAT_PENDING;
		s->lat_n--;
	}
}

/*
 * Writes the acknowledged position to the store (one transaction, fsynced). The window
 * does not wait for this: the pump refills as soon as an ack arrives, and the writes are
 * spaced at least ACK_WRITE_MS apart, so a fast drain pays one fsync per interval rather
 * than one per ack. A write lost to a power cut only means those records are sent again,
 * and the backend counts them as duplicates.
 */
void sync__pump_store_ack(struct sync *s)
{
	loop_timer_stop(s->loop, &s->ack_timer);
	if (s->stored_upto >= s->acked_upto)
		return;
	struct store *st = core_store(s->core);
	int r = store_outbox_ack(st, s->acked_upto, s->last_ack_t_ms);
	s->last_ack_write_ms = loop_now_ms();
	if (r != 0) {
		/* Not marked: the records stay undelivered in the store and are sent again
		 * after a restart; the next ack retries the write. */
		log_warnx("outbox: ack upto %" PRId64 " not stored: %s", s->acked_upto,
		          store_strerror(r));
		return;
	}
	s->stored_upto = s->acked_upto;
	sync__pump_bound(s);
	if (s->stored_upto >= s->last_seq_seen)
		sync__status_changed(s);
}

static void on_ack_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct sync *s = arg;
	sync__pump_store_ack(s);
	sync__after(s);
}

void sync__pump_init(struct sync *s)
{
	loop_timer_init(&s->ack_timer, on_ack_timer, s);
}

void sync__pump_flush_ack(struct sync *s)
{
	if (s->pending_ack <= s->acked_upto) {
		s->pending_ack = 0;
		return;
	}
	int64_t upto = s->pending_ack;
	s->pending_ack = 0;
	int64_t now = loop_now_ms();
	s->acked_upto = upto;
	if (s->sent_upto < upto)
		s->sent_upto = upto;
	s->last_progress_ms = now;
	s->last_ack_t_ms = core_now(s->core);
	s->acks++;
	lat_record(s, now);
	log_debug("outbox: acked upto %" PRId64, upto);
	if (s->backlog_upto > 0 && upto >= s->backlog_upto) {
		double secs = (double)(now - s->backlog_t0) / 1000.0;
		log_info("outbox: backlog of %" PRId64 " records delivered in %.2f s since connecting "
		         "(%.0f records/s)", s->backlog_n, secs,
		         secs > 0 ? (double)s->backlog_n / secs : 0.0);
		s->backlog_upto = 0;
	}
	/* Refill the window first: the store write below then overlaps the round trip. */
	sync__pump_run(s);
	if (now - s->last_ack_write_ms >= ACK_WRITE_MS)
		sync__pump_store_ack(s);
	else if (!s->ack_timer.armed)
		(void)loop_timer_start(s->loop, &s->ack_timer, s->last_ack_write_ms + ACK_WRITE_MS, 0);
}

/* ---------------------------------------------------------------- commits */

void sync__pump_committed(struct sync *s)
{
	int64_t last = 0;
	if (store_outbox_last_seq(core_store(s->core), &last) != 0 || last <= s->last_seq_seen)
		return;
	s->last_seq_seen = last;
	/* Remember when these records were committed, for the commit-to-ack figure. When
	 * too many are unacknowledged the oldest are forgotten (not measured). */
	if (s->lat_n == SYNC_LAT_PENDING) {
		s->lat_head = (s->lat_head + 1) % SYNC_LAT_PENDING;
		s->lat_n--;
	}
	struct sync_lat_pending *p = &s->lat_pend[(s->lat_head + s->lat_n) % SYNC_LAT_PENDING];
	p->seq = last;
	p->t_ms = loop_now_ms();
	s->lat_n++;
	sync__pump_bound(s);
}

void sync__pump_bound(struct sync *s)
{
	int64_t depth = s->last_seq_seen - s->acked_upto;
	if (depth < s->cfg.outbox_max_rows) {
		if (s->outbox_full) {
			s->outbox_full = false;
			log_info("outbox: %" PRId64 " undelivered records, below the bound of %" PRId64
			         " again", depth, s->cfg.outbox_max_rows);
			sync__status_changed(s);
		}
		return;
	}
	if (!s->outbox_full) {
		s->outbox_full = true;
		log_warnx("outbox: %" PRId64 " undelivered records reach the bound of %" PRId64
		          " ([mqtt] outbox_max_rows): dropping stored track detail of the oldest "
		          "sessions; billing records are kept", depth, s->cfg.outbox_max_rows);
		core_count(s->core, "outbox.full", 1);
		sync__status_changed(s);
	}
	const struct engine_state *es = core_state(s->core);
	const char *keep = es->s.open ? es->s.id : NULL;
	struct store *st = core_store(s->core);
	int64_t total = 0;
	for (int i = 0; i < PRUNE_ROUNDS; i++) {
		int64_t pts = 0;
		int r = store_track_prune(st, keep, PRUNE_BATCHES, &pts);
		if (r == -ENOENT)
			break;
		if (r != 0) {
			log_warnx("outbox: track detail not dropped: %s", store_strerror(r));
			break;
		}
		total += pts;
	}
	if (total > 0) {
		s->track_pruned += total;
		log_info("outbox: dropped %" PRId64 " track points to make room", total);
	}
}

/* ---------------------------------------------------------------- figures */

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

void sync__lat_status(struct sync *s, cJSON *o)
{
	size_t n = s->lat_count;
	cJSON *l = cJSON_AddObjectToObject(o, "commit_to_ack_ms");
	if (l == NULL)
		return;
	(void)cJSON_AddNumberToObject(l, "n", (double)n);
	if (n == 0)
		return;
	int32_t *v = malloc(n * sizeof(*v));
	if (v == NULL)
		return;
	memcpy(v, s->lat_samples, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_i32);
	(void)cJSON_AddNumberToObject(l, "p50", v[(n - 1) / 2]);
	(void)cJSON_AddNumberToObject(l, "p99", v[(size_t)((double)(n - 1) * 0.99)]);
	(void)cJSON_AddNumberToObject(l, "max", v[n - 1]);
	free(v);
}
