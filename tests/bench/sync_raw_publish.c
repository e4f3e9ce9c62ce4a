/*
 * sync_raw_publish.c - the benchmark's baseline: plain libmosquitto QoS 1 publishing of
 * COUNT messages of SIZE bytes to a broker over the same verified mutual TLS as coverd
 * (sync/mqtt_tls.h), with no store, no signing and no backend acks. It queues every
 * message at once and lets libmosquitto keep as many in flight as the broker's receive
 * maximum allows, then prints the time from the first publish to the last PUBACK.
 *
 *   sync_raw_publish --host H --port P --cafile F --cert F --key F --topic T
 *                    --count N --size BYTES
 *
 * Output, one line: "raw count=N size=BYTES seconds=S rate=R".
 *
 *   sync_raw_publish --ack DEVICE --host H --port P --cafile F --cert F --key F
 *
 * is instead a null backend for the benchmark: it subscribes to DEVICE's records (with
 * the ingest's certificate) and acknowledges every record as soon as it arrives, with no
 * verification and no storage, so that the device's own drain rate can be told apart
 * from the reference ingest's. It runs until it is sent SIGTERM. Test tooling only.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "mqtt_tls.h"

static int connected, acked;

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)flags;
	(void)p;
	connected = rc == 0 ? 1 : -1;
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int rc, const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)mid;
	(void)p;
	if (rc < 0x80)
		acked++;
}

static volatile sig_atomic_t stop;
static long long ack_upto, acked_sent;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)p;
	cJSON *o = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
	if (cJSON_IsNumber(seq) && (long long)seq->valuedouble > ack_upto)
		ack_upto = (long long)seq->valuedouble;
	cJSON_Delete(o);
}

/* The null backend: one ack per pass of the loop, for the highest seq seen. */
static int run_acker(struct mosquitto *m, const char *dev)
{
	char sub[128], topic[128], ack[64];
	snprintf(sub, sizeof(sub), "coverd/v1/%s/activations", dev);
	snprintf(topic, sizeof(topic), "coverd/v1/%s/ack", dev);
	mosquitto_message_v5_callback_set(m, on_message);
	if (mosquitto_subscribe_v5(m, NULL, sub, 1, 0, NULL) != MOSQ_ERR_SUCCESS)
		return 1;
	signal(SIGTERM, on_signal);
	printf("acking %s\n", dev);
	fflush(stdout);
	while (!stop) {
		if (mosquitto_loop(m, 100, 64) != MOSQ_ERR_SUCCESS)
			return 1;
		if (ack_upto > acked_sent) {
			int n = snprintf(ack, sizeof(ack), "{\"v\":1,\"upto\":%lld}", ack_upto);
			if (mosquitto_publish_v5(m, NULL, topic, n, ack, 1, false, NULL) != MOSQ_ERR_SUCCESS)
				return 1;
			acked_sent = ack_upto;
		}
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'h' }, { "port", required_argument, NULL, 'p' },
		{ "cafile", required_argument, NULL, 'A' }, { "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' }, { "topic", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' }, { "size", required_argument, NULL, 's' },
		{ "ack", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = "127.0.0.1", *ca = NULL, *cert = NULL, *key = NULL, *topic = NULL;
	const char *ack_dev = NULL;
	int port = 8883, count = 10000, size = 1000, c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'A': ca = optarg; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		case 't': topic = optarg; break;
		case 'n': count = atoi(optarg); break;
		case 's': size = atoi(optarg); break;
		case 'a': ack_dev = optarg; break;
		default: return 2;
		}
	}
	if ((topic == NULL && ack_dev == NULL) || ca == NULL || cert == NULL || key == NULL || count < 1 || size < 1) {
		fprintf(stderr, "sync_raw_publish: --topic, --cafile, --cert, --key needed\n");
		return 2;
	}
	char *payload = malloc((size_t)size);
	if (payload == NULL)
		return 1;
	memset(payload, 'x', (size_t)size);
	mosquitto_lib_init();
	struct mosquitto *m = mosquitto_new(ack_dev != NULL ? "bench-acker" : "bench-raw", true, NULL);
	struct mqtt_tls *tls = NULL;
	char err[512];
	struct mqtt_tls_opts o = { .host = host, .cafile = ca, .certfile = cert, .keyfile = key };
	if (m == NULL || mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) != 0 ||
	    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1) != 0 ||
	    mqtt_tls_apply(m, &o, &tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "sync_raw_publish: setup: %s\n", err);
		return 1;
	}
	mosquitto_connect_v5_callback_set(m, on_connect);
	mosquitto_publish_v5_callback_set(m, on_publish);
	if (mosquitto_connect(m, host, port, 30) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "sync_raw_publish: cannot connect: %s\n", mqtt_tls_failure(tls));
		return 1;
	}
	while (connected == 0)
		if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS)
			return 1;
	if (connected < 0)
		return 1;
	if (ack_dev != NULL)
		return run_acker(m, ack_dev);
	double t0 = now_s();
	for (int i = 0; i < count; i++) {
		int r = mosquitto_publish_v5(m, NULL, topic, size, payload, 1, false, NULL);
		if (r != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "sync_raw_publish: publish: %s\n", mosquitto_strerror(r));
			return 1;
		}
	}
	while (acked < count)
		if (mosquitto_loop(m, 100, 64) != MOSQ_ERR_SUCCESS)
			return 1;
	double secs = now_s() - t0;
	printf("raw count=%d size=%d seconds=%.3f rate=%.0f\n", count, size, secs, count / secs);
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mqtt_tls_free(tls);
	mosquitto_lib_cleanup();
	free(payload);
	return 0;
}
