/*
 * ingest.c - coverd-ingest, the reference backend ingest (docs/man/coverd-ingest.1,
 * docs/protocol.md).
 *
 * `run` subscribes to $share/<group>/coverd/v1/+/activations over MQTT 5 with mutual TLS,
 * checks and stores each record (ingest_core.c) and acknowledges what it committed.
 * Messages are handled in batches: every message that arrives within one pass of the
 * libmosquitto loop goes into one SQLite transaction, and the acks for the batch are
 * published only after it commits. The loop is mosquitto_loop_forever()'s own loop made
 * explicit, because loop_forever cannot see the SIGTERM flag: a signal interrupts the
 * select() inside mosquitto_loop(), the flag is seen, the batch is committed and the
 * client disconnects cleanly.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "ingest_core.h"
#include "mqtt_tls.h"
#include "sign.h"

#define PROG "coverd-ingest"
/* Acks waiting for their batch to commit; a batch commits early when this many devices
 * are pending, so the bound is also the largest batch of distinct devices. */
#define ACK_PENDING_MAX 256
/* A batch never holds more messages than this, so the write lock is held briefly. */
#define BATCH_MAX 512
/* A batch stays open while messages keep arriving back to back, at most this long, so
 * an ack never waits longer than this for the commit it depends on. */
#define BATCH_MAX_MS 50
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static volatile sig_atomic_t g_stop;
static int g_verbose;

static void logmsg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One event, one line: control characters from topics or record fields (which a device
 * chooses) are replaced so they cannot break or forge log lines. */
static void
logmsg(const char *level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(stderr, PROG ": %s: %s\n", level, buf);
}

#define log_err(...) logmsg("error", __VA_ARGS__)
#define log_warn(...) logmsg("warning", __VA_ARGS__)
#define log_info(...) logmsg("info", __VA_ARGS__)
#define log_debug(...) \
	do { \
		if (g_verbose) \
			logmsg("debug", __VA_ARGS__); \
	} while (0)

struct pending_ack {
	char device_id[INGEST_ID_MAX];
	int64_t upto;
};

struct run_opts {
	const char *db, *host, *cafile, *cert, *key, *group, *client_id, *tls_version;
	int port, keepalive;
	bool plaintext;
};

struct ingest {
	struct run_opts o;
	struct ingest_db *db;
	struct mosquitto *mosq;
	struct mqtt_tls *tls;
	char sub[128];
	bool fatal;
	int delay_ms;   /* reconnect backoff, reset by a successful CONNACK */
	int batch_n;
	int pass_n;          /* messages handled in the current libmosquitto loop pass */
	int64_t batch_t0;    /* monotonic ms when the open batch got its first message */
	int n_acks;
	struct pending_ack acks[ACK_PENDING_MAX];
	unsigned long stored, held, duplicates, rejected;
};

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
publish_ack(struct ingest *in, const struct pending_ack *a)
{
	char topic[128], payload[64];
	int n, rc;

	snprintf(topic, sizeof(topic), "coverd/v1/%s/ack", a->device_id);
	n = snprintf(payload, sizeof(payload), "{\"v\":1,\"upto\":%lld}", (long long)a->upto);
	rc = mosquitto_publish_v5(in->mosq, NULL, topic, n, payload, 1, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		/* The record is stored; the device resends it and gets the ack then. */
		log_warn("ack upto %lld to %s not sent: %s", (long long)a->upto, a->device_id,
		         mosquitto_strerror(rc));
	else
		log_debug("ack %s upto %lld", a->device_id, (long long)a->upto);
}

/* Commits the open batch and only then publishes its acks. */
static void
flush(struct ingest *in)
{
	int i;

	if (in->batch_n == 0)
		return;
	if (ingest_batch_commit(in->db) != 0) {
		log_err("database commit failed: %d messages not stored and not acknowledged "
		        "(devices will resend)", in->batch_n);
		in->n_acks = 0;
		in->batch_n = 0;
		return;
	}
	for (i = 0; i < in->n_acks; i++)
		publish_ack(in, &in->acks[i]);
	in->n_acks = 0;
	in->batch_n = 0;
}

static void
queue_ack(struct ingest *in, const char *dev, int64_t upto)
{
	int i;

	for (i = 0; i < in->n_acks; i++) {
		if (strcmp(in->acks[i].device_id, dev) == 0) {
			if (upto > in->acks[i].upto)
				in->acks[i].upto = upto;
			return;
		}
	}
	snprintf(in->acks[in->n_acks].device_id, sizeof(in->acks[0].device_id), "%s", dev);
	in->acks[in->n_acks].upto = upto;
	in->n_acks++;
}

static void
on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m,
           const mosquitto_property *props)
{
	struct ingest *in = ud;
	struct ingest_result res;
	int rc;

	(void)mosq;
	(void)props;
	if (in->batch_n == 0) {
		if (ingest_batch_begin(in->db) != 0) {
			log_err("database busy or failing: message on %s dropped unacknowledged",
			        m->topic);
			return;
		}
		in->batch_t0 = mono_ms();
	}
	in->batch_n++;
	in->pass_n++;
	rc = ingest_handle(in->db, m->topic, m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
	                   now_ms(), &res);
	if (rc != 0) {
		log_err("database error on %s seq %lld: not stored, not acknowledged", res.device_id,
		        (long long)res.seq);
	} else {
		switch (res.outcome) {
		case INGEST_STORED:
			in->stored += 1 + (unsigned long)res.promoted;
			log_debug("stored %s %s", res.device_id, res.detail);
			if (res.promoted > 0)
				log_debug("stored %s: %d held records chained after seq %lld",
				          res.device_id, res.promoted, (long long)res.seq);
			break;
		case INGEST_HELD:
			in->held++;
			log_debug("held %s %s", res.device_id, res.detail);
			break;
		case INGEST_DUPLICATE:
			in->duplicates++;
			log_debug("duplicate %s %s", res.device_id, res.detail);
			break;
		case INGEST_REJECTED:
			in->rejected++;
			log_warn("rejected %s device=%s seq=%lld: %s", res.reason, res.device_id,
			         (long long)res.seq, res.detail);
			break;
		}
		if (res.dropped > 0)
			log_warn("rejected chain device=%s: %d held records after seq %lld did not "
			         "chain and were dropped", res.device_id, res.dropped, (long long)res.seq);
		if (res.ack)
			queue_ack(in, res.device_id, res.ack_upto);
	}
	if (in->n_acks == ACK_PENDING_MAX || in->batch_n >= BATCH_MAX)
		flush(in);
}

static void
on_connect(struct mosquitto *mosq, void *ud, int rc, int flags, const mosquitto_property *props)
{
	struct ingest *in = ud;
	int r;

	(void)flags;
	(void)props;
	if (rc != 0) {
		log_err("broker refused the connection: %s", mosquitto_reason_string(rc));
		return;
	}
	in->delay_ms = BACKOFF_MIN_MS;
	log_info("connected to %s:%d%s; subscribing to %s", in->o.host, in->o.port,
	         in->o.plaintext ? " WITHOUT TLS" : " (TLS, broker verified)", in->sub);
	r = mosquitto_subscribe_v5(mosq, NULL, in->sub, 1, 0, NULL);
	if (r != MOSQ_ERR_SUCCESS)
		log_err("subscribe failed: %s", mosquitto_strerror(r));
}

static void
on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted,
             const mosquitto_property *props)
{
	struct ingest *in = ud;

	(void)mosq;
	(void)mid;
	(void)props;
	if (n < 1 || granted[0] >= 0x80) {
		log_err("the broker refused the subscription to %s (%s): check the ACL for this "
		        "client's certificate",
		        in->sub, n < 1 ? "no reason" : mosquitto_reason_string(granted[0]));
		in->fatal = true;
		g_stop = 1;
		return;
	}
	log_info("subscribed to %s (QoS %d)", in->sub, granted[0]);
}

static void
on_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *props)
{
	(void)mosq;
	(void)ud;
	(void)props;
	if (rc != 0 && !g_stop)
		log_warn("disconnected: %s", mosquitto_strerror(rc));
}

static void
on_log(struct mosquitto *mosq, void *ud, int level, const char *str)
{
	(void)mosq;
	(void)ud;
	if (level == MOSQ_LOG_ERR || level == MOSQ_LOG_WARNING)
		log_debug("libmosquitto: %s", str);
}

/* Sleeps for the backoff, waking early on a signal. */
static void
backoff_wait(int *delay_ms)
{
	struct timespec ts;
	int d = *delay_ms;

	/* Jitter keeps a fleet of ingests (and devices) from reconnecting in step. */
	d = d / 2 + (int)((unsigned)rand() % (unsigned)(d / 2 + 1));
	ts.tv_sec = d / 1000;
	ts.tv_nsec = (long)(d % 1000) * 1000000L;
	if (!g_stop)
		(void)nanosleep(&ts, NULL);
	*delay_ms = *delay_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *delay_ms * 2;
}

static void
log_connect_failure(struct ingest *in, int rc)
{
	const char *why = mqtt_tls_failure(in->tls);

	if (why != NULL)
		log_err("cannot connect to %s:%d: TLS: %s", in->o.host, in->o.port, why);
	else if (rc == MOSQ_ERR_ERRNO)
		log_err("cannot connect to %s:%d: %s", in->o.host, in->o.port, strerror(errno));
	else
		log_err("cannot connect to %s:%d: %s", in->o.host, in->o.port, mosquitto_strerror(rc));
}

static int
run_loop(struct ingest *in)
{
	bool first = true, need_connect = true;
	int rc;

	while (!g_stop) {
		if (need_connect) {
			if (in->o.plaintext)
				log_warn("connecting to %s:%d WITHOUT TLS (--insecure-plaintext): records "
				         "and acks travel unencrypted and the broker is not authenticated",
				         in->o.host, in->o.port);
			mqtt_tls_reset(in->tls);
			errno = 0;
			rc = first ? mosquitto_connect_bind_v5(in->mosq, in->o.host, in->o.port,
			                                       in->o.keepalive, NULL, NULL)
			           : mosquitto_reconnect(in->mosq);
			if (rc != MOSQ_ERR_SUCCESS) {
				log_connect_failure(in, rc);
				backoff_wait(&in->delay_ms);
				continue;
			}
			first = false;
			need_connect = false;
		}
		/*
		 * Group commit: while a batch is open, poll without waiting; the batch is
		 * committed (and its acks sent) as soon as a pass brings no new message, or it
		 * reaches BATCH_MAX_MS or BATCH_MAX messages (on_message). An idle ingest
		 * therefore commits each message at once; a busy one pays one fsync per burst.
		 */
		errno = 0;
		in->pass_n = 0;
		rc = mosquitto_loop(in->mosq, in->batch_n > 0 ? 0 : 1000, 1);
		if (rc != MOSQ_ERR_SUCCESS || in->pass_n == 0 ||
		    mono_ms() - in->batch_t0 >= BATCH_MAX_MS)
			flush(in);
		if (rc == MOSQ_ERR_SUCCESS)
			continue;
		if (g_stop)
			break;
		log_connect_failure(in, rc);
		need_connect = true;
		backoff_wait(&in->delay_ms);
	}
	flush(in);
	if (!need_connect) {
		(void)mosquitto_disconnect_v5(in->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
		/* Let the DISCONNECT and any queued acks go out. */
		(void)mosquitto_loop(in->mosq, 100, 1);
	}
	log_info("stopped: %lu stored, %lu held, %lu duplicates, %lu rejected", in->stored,
	         in->held, in->duplicates, in->rejected);
	return in->fatal ? 1 : 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG " run --db DB [--host HOST] [--port PORT] [--cafile CA --cert CERT --key KEY]\n"
	        "                      [--insecure-plaintext] [--group NAME] [--client-id ID]\n"
	        "                      [--keepalive SEC] [--tls-version tlsv1.2|tlsv1.3] [--verbose]\n"
	        "       " PROG " enroll [--replace] --db DB DEVICE_ID PUBKEY.pem|-\n"
	        "       " PROG " report --db DB [--device ID] [--json]\n"
	        "       " PROG " counters --db DB [--json]\n"
	        "       " PROG " --version\n");
}

static int
parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int
cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "cafile", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "insecure-plaintext", no_argument, NULL, 'P' },
		{ "group", required_argument, NULL, 'g' },
		{ "client-id", required_argument, NULL, 'i' },
		{ "keepalive", required_argument, NULL, 'k' },
		{ "tls-version", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct ingest *in;
	struct sigaction sa;
	char err[512], cid[96], hn[64];
	int c, rc = 2, port = -1;

	in = calloc(1, sizeof(*in));
	if (in == NULL) {
		log_err("out of memory");
		return 1;
	}
	in->o.host = "localhost";
	in->o.group = "ingest";
	in->o.keepalive = 30;
	in->delay_ms = BACKOFF_MIN_MS;
	while ((c = getopt_long(argc, argv, "d:h:p:v", lo, NULL)) != -1) {
		switch (c) {
		case 'd': in->o.db = optarg; break;
		case 'h': in->o.host = optarg; break;
		case 'p':
			if (parse_int(optarg, 1, 65535, &port) != 0) {
				log_err("bad --port %s", optarg);
				goto out;
			}
			break;
		case 'A': in->o.cafile = optarg; break;
		case 'C': in->o.cert = optarg; break;
		case 'K': in->o.key = optarg; break;
		case 'P': in->o.plaintext = true; break;
		case 'g': in->o.group = optarg; break;
		case 'i': in->o.client_id = optarg; break;
		case 'k':
			if (parse_int(optarg, 5, 65535, &in->o.keepalive) != 0) {
				log_err("bad --keepalive %s (5..65535 seconds)", optarg);
				goto out;
			}
			break;
		case 'T': in->o.tls_version = optarg; break;
		case 'v': g_verbose = 1; break;
		default: usage(stderr); goto out;
		}
	}
	if (optind != argc || in->o.db == NULL) {
		usage(stderr);
		goto out;
	}
	if (strchr(in->o.group, '/') || strchr(in->o.group, '+') || strchr(in->o.group, '#') ||
	    *in->o.group == '\0') {
		log_err("bad --group %s: one topic level without wildcards", in->o.group);
		goto out;
	}
	if (in->o.plaintext && !mqtt_tls_host_is_loopback(in->o.host)) {
		log_err("--insecure-plaintext is allowed only to a loopback broker, not %s",
		        in->o.host);
		goto out;
	}
	if (!in->o.plaintext && (!in->o.cafile || !in->o.cert || !in->o.key)) {
		log_err("TLS needs --cafile, --cert and --key (or --insecure-plaintext on loopback "
		        "for development)");
		goto out;
	}
	in->o.port = port > 0 ? port : in->o.plaintext ? 1883 : 8883;
	snprintf(in->sub, sizeof(in->sub), "$share/%s/coverd/v1/+/activations", in->o.group);
	if (in->o.client_id == NULL) {
		if (gethostname(hn, sizeof(hn)) != 0)
			snprintf(hn, sizeof(hn), "host");
		hn[sizeof(hn) - 1] = '\0';
		snprintf(cid, sizeof(cid), "coverd-ingest-%s-%ld", hn, (long)getpid());
		in->o.client_id = cid;
	}

	rc = ingest_db_open(in->o.db, true, &in->db, err, sizeof(err));
	if (rc != 0) {
		log_err("%s", err);
		rc = 1;
		goto out;
	}
	rc = 1;
	srand((unsigned)(now_ms() ^ getpid()));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the signal must interrupt select() inside mosquitto_loop(). */
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
		log_err("sigaction: %s", strerror(errno));
		goto out;
	}
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0) {
		log_err("sigaction: %s", strerror(errno));
		goto out;
	}
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		log_err("cannot initialise libmosquitto");
		goto out;
	}
	in->mosq = mosquitto_new(in->o.client_id, true, in);
	if (in->mosq == NULL) {
		log_err("mosquitto_new: %s", strerror(errno));
		goto lib;
	}
	if (mosquitto_int_option(in->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) !=
	    MOSQ_ERR_SUCCESS) {
		log_err("cannot select MQTT 5");
		goto lib;
	}
	/*
	 * Acks are small writes that follow the PUBACKs of a batch: with Nagle's algorithm
	 * the kernel holds each one until the broker's delayed TCP ACK arrives (tens of ms),
	 * and every device waits that long before its window refills. The devices and the
	 * broker set TCP_NODELAY for the same reason.
	 */
	if (mosquitto_int_option(in->mosq, MOSQ_OPT_TCP_NODELAY, 1) != MOSQ_ERR_SUCCESS) {
		log_err("cannot set TCP_NODELAY");
		goto lib;
	}
	if (!in->o.plaintext) {
		struct mqtt_tls_opts t = {
			.host = in->o.host, .cafile = in->o.cafile, .certfile = in->o.cert,
			.keyfile = in->o.key, .min_version = in->o.tls_version,
		};
		if (mqtt_tls_apply(in->mosq, &t, &in->tls, err, sizeof(err)) != 0) {
			log_err("%s", err);
			goto lib;
		}
	}
	mosquitto_connect_v5_callback_set(in->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(in->mosq, on_disconnect);
	mosquitto_message_v5_callback_set(in->mosq, on_message);
	mosquitto_subscribe_v5_callback_set(in->mosq, on_subscribe);
	mosquitto_log_callback_set(in->mosq, on_log);
	log_info("database %s; broker %s:%d; group %s", in->o.db, in->o.host, in->o.port,
	         in->o.group);
	rc = run_loop(in);
lib:
	if (in->mosq != NULL)
		mosquitto_destroy(in->mosq);
	mqtt_tls_free(in->tls);
	(void)mosquitto_lib_cleanup();
out:
	ingest_db_close(in->db);
	free(in);
	return rc;
}

static int
read_all(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	size_t n;
	int rc = 0;

	if (f == NULL)
		return -errno;
	n = fread(buf, 1, cap, f);
	if (ferror(f))
		rc = -EIO;
	else if (n == cap)
		rc = -EFBIG;
	if (f != stdin && fclose(f) != 0 && rc == 0)
		rc = -EIO;
	*len = n;
	return rc;
}

static int
cmd_enroll(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "replace", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct ingest_db *db = NULL;
	const char *path = NULL;
	char pem[4096], err[512];
	bool replace = false;
	size_t len = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "d:", lo, NULL)) != -1) {
		switch (c) {
		case 'd': path = optarg; break;
		case 'r': replace = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	rc = read_all(argv[optind + 1], pem, sizeof(pem), &len);
	if (rc != 0) {
		log_err("%s: %s", argv[optind + 1], rc == -EFBIG ? "too large" : strerror(-rc));
		return 1;
	}
	if (ingest_db_open(path, true, &db, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	rc = ingest_enroll(db, argv[optind], pem, len, replace, err, sizeof(err));
	ingest_db_close(db);
	if (rc != 0) {
		log_err("enroll %s: %s", argv[optind], err);
		return 1;
	}
	printf("enrolled %s\n", argv[optind]);
	return 0;
}

struct report_ctx {
	cJSON *rows;
	int64_t total;
	bool json;
};

static int
report_row(void *ctx, const struct ingest_report_row *r)
{
	struct report_ctx *rc = ctx;
	cJSON *o;

	rc->total += r->hours;
	if (!rc->json) {
		printf("%-24s %-24s %-10s %6lld\n", r->device_id, r->policy_id, r->day,
		       (long long)r->hours);
		return 0;
	}
	o = cJSON_CreateObject();
	if (o == NULL || !cJSON_AddStringToObject(o, "device_id", r->device_id) ||
	    !cJSON_AddStringToObject(o, "policy_id", r->policy_id) ||
	    !cJSON_AddStringToObject(o, "day", r->day) ||
	    !cJSON_AddNumberToObject(o, "hours", (double)r->hours)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	cJSON_AddItemToArray(rc->rows, o);
	return 0;
}

static int
print_json(cJSON *root)
{
	char *s = root ? cJSON_PrintUnformatted(root) : NULL;
	int rc = s != NULL && puts(s) >= 0 ? 0 : 1;

	cJSON_free(s);
	cJSON_Delete(root);
	if (rc != 0)
		log_err("cannot print JSON");
	return rc;
}

static int
open_existing(const char *path, struct ingest_db **db)
{
	char err[512];

	if (access(path, F_OK) != 0) {
		log_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (ingest_db_open(path, false, db, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

static int
cmd_report(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "device", required_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct report_ctx ctx = { 0 };
	struct ingest_db *db = NULL;
	const char *path = NULL, *device = NULL;
	cJSON *root = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "d:", lo, NULL)) != -1) {
		switch (c) {
		case 'd': path = optarg; break;
		case 'D': device = optarg; break;
		case 'j': ctx.json = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (open_existing(path, &db) != 0)
		return 1;
	if (ctx.json) {
		root = cJSON_CreateObject();
		ctx.rows = cJSON_AddArrayToObject(root, "billed");
		if (root == NULL || ctx.rows == NULL) {
			cJSON_Delete(root);
			ingest_db_close(db);
			log_err("out of memory");
			return 1;
		}
	} else {
		printf("%-24s %-24s %-10s %6s\n", "DEVICE", "POLICY", "DAY (UTC)", "HOURS");
	}
	rc = ingest_report(db, device, report_row, &ctx);
	ingest_db_close(db);
	if (rc != 0) {
		cJSON_Delete(root);
		log_err("report failed (%d)", rc);
		return 1;
	}
	if (!ctx.json) {
		printf("%-24s %-24s %-10s %6lld\n", "total", "", "", (long long)ctx.total);
		return 0;
	}
	if (!cJSON_AddNumberToObject(root, "total_hours", (double)ctx.total)) {
		cJSON_Delete(root);
		return 1;
	}
	return print_json(root);
}

static int
counter_row(void *ctx, const char *name, int64_t value)
{
	cJSON *obj = ctx;

	if (obj == NULL) {
		printf("%-32s %lld\n", name, (long long)value);
		return 0;
	}
	return cJSON_AddNumberToObject(obj, name, (double)value) ? 0 : -ENOMEM;
}

static int
cmd_counters(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ingest_db *db = NULL;
	const char *path = NULL;
	cJSON *root = NULL;
	bool json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "d:", lo, NULL)) != -1) {
		switch (c) {
		case 'd': path = optarg; break;
		case 'j': json = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (open_existing(path, &db) != 0)
		return 1;
	if (json && (root = cJSON_CreateObject()) == NULL) {
		ingest_db_close(db);
		return 1;
	}
	rc = ingest_counters(db, counter_row, root);
	ingest_db_close(db);
	if (rc != 0) {
		cJSON_Delete(root);
		log_err("counters failed (%d)", rc);
		return 1;
	}
	return json ? print_json(root) : 0;
}

int
main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--version") == 0) {
		printf(PROG " " COVERD_VERSION " (protocol v1)\n");
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	/* Each subcommand parses its own options from argv[1] on. */
	argc--;
	argv++;
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc, argv);
	if (strcmp(cmd, "enroll") == 0)
		return cmd_enroll(argc, argv);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(argc, argv);
	if (strcmp(cmd, "counters") == 0)
		return cmd_counters(argc, argv);
	log_err("unknown command %s", cmd);
	usage(stderr);
	return 2;
}
