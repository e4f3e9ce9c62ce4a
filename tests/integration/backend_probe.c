/*
 * backend_probe.c - a test tool for the backend integration tests (and the device-side
 * tests that want it): makes device keys and signatures with sync/sign.c, and speaks MQTT
 * 5 line by line so a Python test can drive a device or a dashboard against a real broker.
 *
 *   backend_probe key KEYFILE
 *       loads or creates the device key, prints its public key PEM (what `coverctl key
 *       --public` prints)
 *   backend_probe sign KEYFILE
 *       for each stdin line holding base64 of a record body, prints base64 of the DER
 *       signature over exactly those bytes
 *   backend_probe client --port P --id ID [--host H] [--cafile F --cert F --key F]
 *       MQTT 5 client. stdin commands, one per line:
 *         sub QOS TOPIC           -> "SUBACK <reason or granted qos>"
 *         pub QOS TOPIC PAYLOAD   -> "PUB <mid>" then "PUBACK <mid> <reason code>"
 *         pubr QOS TOPIC PAYLOAD  the same, retained
 *         quit                    -> disconnects and exits 0
 *       and it prints "CONNACK <reason>", "MSG <topic> <payload>", "DISCONNECT <rc>".
 *       The client uses libmosquitto's own thread: this is test tooling, not the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "sign.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static int
cmd_key(const char *path)
{
	struct sign_key *k = NULL;
	char pem[SIGN_PUBLIC_PEM_MAX], err[512];
	int rc;

	rc = sign_key_load_or_create(path, &k, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "backend_probe: %s\n", err);
		return 1;
	}
	rc = sign_public_pem(k, pem, sizeof(pem));
	sign_key_free(k);
	if (rc != 0) {
		fprintf(stderr, "backend_probe: %s\n", sign_strerror(rc));
		return 1;
	}
	fputs(pem, stdout);
	return 0;
}

static int
cmd_sign(const char *path)
{
	static char line[65536];
	static unsigned char body[49152];
	unsigned char sig[SIGN_SIG_MAX];
	char out[SIGN_B64_SIZE(SIGN_SIG_MAX)], err[512];
	struct sign_key *k = NULL;
	size_t blen, slen, n;

	if (sign_key_load_or_create(path, &k, err, sizeof(err)) < 0) {
		fprintf(stderr, "backend_probe: %s\n", err);
		return 1;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (sign_b64_decode(line, n, body, sizeof(body), &blen) != 0 ||
		    sign_body(k, body, blen, sig, sizeof(sig), &slen) != 0 ||
		    sign_b64_encode(sig, slen, out, sizeof(out), NULL) != 0) {
			fprintf(stderr, "backend_probe: cannot sign line\n");
			sign_key_free(k);
			return 1;
		}
		printf("%s\n", out);
		fflush(stdout);
	}
	sign_key_free(k);
	return 0;
}

static void
on_connect(struct mosquitto *m, void *ud, int rc, int flags, const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)flags;
	(void)p;
	say("CONNACK %d %s", rc, mosquitto_reason_string(rc));
}

static void
on_disconnect(struct mosquitto *m, void *ud, int rc, const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)p;
	say("DISCONNECT %d", rc);
}

static void
on_publish(struct mosquitto *m, void *ud, int mid, int rc, const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)p;
	say("PUBACK %d %d", mid, rc);
}

static void
on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
             const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)mid;
	(void)p;
	say("SUBACK %d", n > 0 ? granted[0] : -1);
}

static void
on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
           const mosquitto_property *p)
{
	(void)m;
	(void)ud;
	(void)p;
	say("MSG %s %.*s", msg->topic, msg->payloadlen, (const char *)msg->payload);
}

static void
on_log(struct mosquitto *m, void *ud, int level, const char *str)
{
	(void)m;
	(void)ud;
	if (level == MOSQ_LOG_ERR)
		fprintf(stderr, "backend_probe: libmosquitto: %s\n", str);
}

static int
cmd_client(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "id", required_argument, NULL, 'i' },
		{ "cafile", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	static char line[70000];
	const char *host = "127.0.0.1", *id = NULL, *ca = NULL, *cert = NULL, *key = NULL;
	struct mosquitto *m;
	int port = 0, c, rc, status = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'i': id = optarg; break;
		case 'A': ca = optarg; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		default: return 2;
		}
	}
	if (port <= 0 || id == NULL)
		return 2;
	mosquitto_lib_init();
	m = mosquitto_new(id, true, NULL);
	if (m == NULL)
		return 1;
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if (ca != NULL && mosquitto_tls_set(m, ca, NULL, cert, key, NULL) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "backend_probe: TLS settings refused\n");
		return 1;
	}
	mosquitto_connect_v5_callback_set(m, on_connect);
	mosquitto_disconnect_v5_callback_set(m, on_disconnect);
	mosquitto_publish_v5_callback_set(m, on_publish);
	mosquitto_subscribe_v5_callback_set(m, on_subscribe);
	mosquitto_message_v5_callback_set(m, on_message);
	mosquitto_log_callback_set(m, on_log);
	rc = mosquitto_connect_bind_v5(m, host, port, 30, NULL, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("CONNECT_FAILED %s", mosquitto_strerror(rc));
		mosquitto_destroy(m);
		mosquitto_lib_cleanup();
		return 1;
	}
	if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS)
		return 1;
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *cmd, *qos, *topic, *payload, *save = NULL;
		int mid = 0;

		line[strcspn(line, "\r\n")] = '\0';
		cmd = strtok_r(line, " ", &save);
		if (cmd == NULL)
			continue;
		if (strcmp(cmd, "quit") == 0)
			break;
		qos = strtok_r(NULL, " ", &save);
		topic = strtok_r(NULL, " ", &save);
		if (qos == NULL || topic == NULL) {
			say("ERROR bad command");
			continue;
		}
		if (strcmp(cmd, "sub") == 0) {
			rc = mosquitto_subscribe_v5(m, NULL, topic, atoi(qos), 0, NULL);
			if (rc != MOSQ_ERR_SUCCESS)
				say("ERROR subscribe %s", mosquitto_strerror(rc));
		} else if (strcmp(cmd, "pub") == 0 || strcmp(cmd, "pubr") == 0) {
			/* The payload is the rest of the line, spaces included. */
			payload = save != NULL ? save : (char *)"";
			rc = mosquitto_publish_v5(m, &mid, topic, (int)strlen(payload), payload,
			                          atoi(qos), cmd[3] == 'r', NULL);
			if (rc != MOSQ_ERR_SUCCESS)
				say("ERROR publish %s", mosquitto_strerror(rc));
			else
				say("PUB %d", mid);
		} else {
			say("ERROR unknown command %s", cmd);
		}
	}
	mosquitto_disconnect_v5(m, MQTT_RC_NORMAL_DISCONNECTION, NULL);
	mosquitto_loop_stop(m, false);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	return status;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "key") == 0)
		return cmd_key(argv[2]);
	if (argc == 3 && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "client") == 0)
		return cmd_client(argc - 1, argv + 1);
	fprintf(stderr, "usage: backend_probe key KEYFILE | sign KEYFILE | client OPTIONS\n");
	return 2;
}
