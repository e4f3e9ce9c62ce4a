/*
 * mqtt_tls.h - verified mutual TLS for a libmosquitto client, with the reason a handshake
 * failed (docs/protocol.md, "Transport").
 *
 * Used by the device's MQTT client and by the backend ingest so both sides hold the same
 * rules: the broker certificate must chain to the configured CA, be within its validity
 * period and name the host connected to (DNS name or IP address, checked by OpenSSL); TLS 1.2 or newer; the client presents its certificate and key,
 * and the key file must not be readable by group or others (invariant 6).
 *
 * libmosquitto reports a failed verification only as "certificate verify failed". To say
 * why (expired, unknown CA, host name mismatch, or the broker refusing our certificate),
 * mqtt_tls_apply() builds the OpenSSL SSL_CTX itself (CA, peer and host verification,
 * client certificate and key, minimum version) and hands it to libmosquitto with
 * MOSQ_OPT_SSL_CTX; the context carries an info callback that records the verification
 * result when an alert is sent or received. The caller reads it with mqtt_tls_failure()
 * after a connection attempt fails. mosquitto_tls_set() must not be called as well.
 *
 * Errors: 0 or a negative errno-style code with a message in err: -EINVAL (missing or
 * unreadable file, bad option), -EPERM (key file readable by group or others), -ENOMEM,
 * -EIO (OpenSSL or libmosquitto refused the setting).
 */
#ifndef COVERD_MQTT_TLS_H
#define COVERD_MQTT_TLS_H

#include <stddef.h>

struct mosquitto;

struct mqtt_tls_opts {
	const char *host;          /* the broker host name or IP literal that is connected to */
	const char *cafile;        /* PEM CA certificate(s) the broker's certificate must chain to */
	const char *certfile;      /* PEM client certificate (its CN is the MQTT username) */
	const char *keyfile;       /* PEM client private key, mode 0600 or stricter */
	const char *min_version;   /* "tlsv1.2" (NULL means this) or "tlsv1.3" */
};

struct mqtt_tls;

/*
 * Configures mosq for verified mutual TLS to o->host. Call before mosquitto_connect*().
 * *out holds the failure reason buffer and must outlive mosq's connections; free it with
 * mqtt_tls_free() after mosquitto_destroy(). 0 or a negative code; *out set on success.
 */
int mqtt_tls_apply(struct mosquitto *mosq, const struct mqtt_tls_opts *o,
                   struct mqtt_tls **out, char *err, size_t errlen);

/* Why the last TLS handshake failed ("broker certificate rejected: certificate has expired
 * (subject CN=localhost)"), or NULL when no failure was seen since mqtt_tls_reset(). The
 * string is valid until the next handshake or mqtt_tls_reset(). */
const char *mqtt_tls_failure(const struct mqtt_tls *t);
/* Forgets the recorded failure; call before each connection attempt. */
void mqtt_tls_reset(struct mqtt_tls *t);
void mqtt_tls_free(struct mqtt_tls *t);

/* 1 when host names the local machine's loopback ("localhost", 127.0.0.0/8, "::1"):
 * the only place a development plaintext connection is allowed. */
int mqtt_tls_host_is_loopback(const char *host);

#endif
