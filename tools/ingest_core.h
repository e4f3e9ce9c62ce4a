/*
 * ingest_core.h - the reference backend's storage and per-message checks, without MQTT
 * (tools/ingest.c is the MQTT side). docs/protocol.md is the contract implemented here.
 *
 * One message from coverd/v1/<device>/activations is checked in this order, and the
 * first failure names the counter "rejected.<reason>":
 *   malformed            topic, envelope or body not as documented (bad JSON, a missing or
 *                        mistyped field, bad base64, oversized, alg not ES256)
 *   unsupported_version  envelope or body "v" is not 1
 *   device_mismatch      envelope or body device_id, or the activation's session id, not
 *                        of the device named by the topic
 *   unknown_device       no public key enrolled for the device
 *   bad_signature        the signature does not verify over the decoded body bytes
 *   rewrite              a different body for a sequence number already stored or held
 *   chain                prev_hash is not the SHA-256 of the stored body seq-1 (or not 64
 *                        zeros for seq 1)
 *   gap                  seq-1 is missing and INGEST_HOLD_MAX records of the device are
 *                        already held
 * A record passing every check whose predecessor is stored is stored (counter "stored")
 * with its activation revision in the same transaction. A record whose predecessor has
 * not arrived yet (several ingests share the subscription, so a device's records are
 * spread over them) is held, unacknowledged (counter "held"), and chained as soon as the
 * predecessor is stored, by whichever ingest stores it. A byte-identical resend is counted
 * "duplicate" and stores nothing. Stored records and duplicates are acknowledged with the
 * device's highest stored sequence number (the stored records of a device are always
 * 1..n without holes), after the transaction commits; held and rejected ones are not.
 *
 * Transactions. ingest_batch_begin() opens one; ingest_handle() works inside it (each
 * message in a savepoint, so a failed one leaves the others intact); ingest_batch_commit()
 * makes the whole batch durable (WAL, synchronous=FULL) and only then may the caller
 * publish the acks it collected. ingest_handle() outside a batch commits by itself.
 *
 * Errors: 0 or a negative errno-style code (-EIO database failure, -EINVAL bad argument,
 * -EEXIST a different key already enrolled, -EBADMSG bad key) with a message in err.
 */
#ifndef COVERD_INGEST_CORE_H
#define COVERD_INGEST_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INGEST_SCHEMA_VERSION 1
#define INGEST_PAYLOAD_MAX 65536   /* the protocol limit for any payload */
#define INGEST_BODY_MAX 32768      /* decoded record body */
#define INGEST_ID_MAX 48           /* device id incl. NUL, as engine.h ENGINE_ID_MAX */
#define INGEST_HOLD_MAX 4096       /* records held per device waiting for a predecessor */

struct ingest_db;

enum ingest_outcome { INGEST_STORED = 0, INGEST_HELD, INGEST_DUPLICATE, INGEST_REJECTED };

struct ingest_result {
	enum ingest_outcome outcome;
	const char *reason;            /* static string; NULL unless rejected */
	char detail[256];              /* one line: what exactly was wrong, or what was stored */
	char device_id[INGEST_ID_MAX]; /* from the topic; "?" when the topic is unusable */
	int64_t seq;                   /* from the envelope; 0 when unknown */
	bool ack;                      /* true: publish {"v":1,"upto":ack_upto} after commit */
	int64_t ack_upto;
	int promoted;                  /* held records chained after this one was stored */
	int dropped;                   /* held records dropped (counted rejected.chain) */
};

/* Opens (creating when create is true) the database and runs pending migrations. */
int ingest_db_open(const char *path, bool create, struct ingest_db **out, char *err,
                   size_t errlen);
void ingest_db_close(struct ingest_db *db);

/* Enrolls a device's PEM public key. Enrolling the same key again is a no-op; a different
 * key for an enrolled device is -EEXIST unless replace is true. */
int ingest_enroll(struct ingest_db *db, const char *device_id, const char *pem, size_t len,
                  bool replace, char *err, size_t errlen);

/* Changes how many records per device may be held (default INGEST_HOLD_MAX); for tests. */
void ingest_set_hold_max(struct ingest_db *db, int64_t n);

/* 1 when id is a valid device id: 1..47 characters of A-Z a-z 0-9 . _ - */
int ingest_device_id_valid(const char *id);

int ingest_batch_begin(struct ingest_db *db);
int ingest_batch_commit(struct ingest_db *db);
void ingest_batch_rollback(struct ingest_db *db);

/*
 * Checks and stores one message. Returns 0 with *res filled whatever the outcome, or
 * -EIO when the database failed (nothing of this message is stored or counted; the
 * caller must not acknowledge it).
 */
int ingest_handle(struct ingest_db *db, const char *topic, const void *payload, size_t len,
                  int64_t now_ms, struct ingest_result *res);

/* Calls cb for every counter, by name. Stops and returns cb's value when non-zero. */
int ingest_counters(struct ingest_db *db,
                    int (*cb)(void *ctx, const char *name, int64_t value), void *ctx);
/* The value of one counter (0 when never raised), or a negative code. */
int64_t ingest_counter(struct ingest_db *db, const char *name);

/* Billed hours: activations whose latest stored revision is not "voided", by device,
 * policy and UTC day of the activation's start. device may be NULL for all. */
struct ingest_report_row {
	const char *device_id, *policy_id, *day;
	int64_t hours;
};
int ingest_report(struct ingest_db *db, const char *device,
                  int (*cb)(void *ctx, const struct ingest_report_row *r), void *ctx);

/* Parses an RFC 3339 time ("2024-05-01T08:00:00Z", optional fraction, Z or +hh:mm) into
 * UTC milliseconds. 0 or -EINVAL. */
int ingest_parse_time(const char *s, int64_t *ms);

#endif
