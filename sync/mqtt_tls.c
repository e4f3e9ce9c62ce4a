/*
 * mqtt_tls.c - verified mutual TLS for libmosquitto clients, with failure reasons.
 */
#include "mqtt_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#define WHY_MAX 320

struct mqtt_tls {
	SSL_CTX *ctx;
	char why[WHY_MAX];
	int have_why;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
mqtt_tls_host_is_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (host == NULL)
		return 0;
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* Records the first reason per handshake: later alerts only echo the first failure. */
static void
record(struct mqtt_tls *t, const SSL *ssl, int sent, int alert)
{
	long vr = SSL_get_verify_result(ssl);
	char subject[160] = "";
	X509 *peer;

	if (t->have_why)
		return;
	peer = SSL_get1_peer_certificate(ssl);
	if (peer != NULL) {
		X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof(subject));
		X509_free(peer);
	}
	if (sent && vr != X509_V_OK) {
		snprintf(t->why, sizeof(t->why), "broker certificate rejected: %s%s%s%s",
		         X509_verify_cert_error_string(vr), subject[0] ? " (subject " : "",
		         subject, subject[0] ? ")" : "");
	} else if (sent) {
		snprintf(t->why, sizeof(t->why), "TLS handshake aborted by us: %s",
		         SSL_alert_desc_string_long(alert));
	} else {
		/* The broker refused the handshake, usually our client certificate ("unknown
		 * CA", "bad certificate", "certificate required") or the protocol version. */
		snprintf(t->why, sizeof(t->why), "broker refused the TLS handshake: %s",
		         SSL_alert_desc_string_long(alert));
	}
	t->have_why = 1;
}

static void
info_cb(const SSL *ssl, int where, int ret)
{
	struct mqtt_tls *t;

	if ((where & SSL_CB_ALERT) == 0)
		return;
	/* A close_notify is the orderly end of a connection, not a failure. */
	if ((ret & 0xff) == SSL3_AD_CLOSE_NOTIFY)
		return;
	t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (t != NULL)
		record(t, ssl, (where & SSL_CB_WRITE) != 0, ret & 0xff);
}

static int
check_file(const char *what, const char *path, int secret, char *err, size_t errlen)
{
	struct stat sb;

	if (path == NULL || *path == '\0') {
		seterr(err, errlen, "TLS %s file not configured", what);
		return -EINVAL;
	}
	if (stat(path, &sb) != 0) {
		seterr(err, errlen, "TLS %s file %s: %s", what, path, strerror(errno));
		return -EINVAL;
	}
	if (!S_ISREG(sb.st_mode)) {
		seterr(err, errlen, "TLS %s file %s is not a regular file", what, path);
		return -EINVAL;
	}
	if (secret && (sb.st_mode & 077) != 0) {
		seterr(err, errlen,
		       "TLS %s file %s has mode %04o: it must not be readable or writable by group "
		       "or others (chmod 600 %s)",
		       what, path, (unsigned)(sb.st_mode & 07777), path);
		return -EPERM;
	}
	return 0;
}

int
mqtt_tls_apply(struct mosquitto *mosq, const struct mqtt_tls_opts *o, struct mqtt_tls **out,
               char *err, size_t errlen)
{
	const char *ver;
	struct mqtt_tls *t;
	X509_VERIFY_PARAM *param;
	unsigned char ip[16];
	int rc;

	if (mosq == NULL || o == NULL || out == NULL || o->host == NULL || *o->host == '\0') {
		seterr(err, errlen, "TLS needs a broker host");
		return -EINVAL;
	}
	ver = o->min_version != NULL ? o->min_version : "tlsv1.2";
	if (strcmp(ver, "tlsv1.2") != 0 && strcmp(ver, "tlsv1.3") != 0) {
		seterr(err, errlen, "TLS version %s not allowed (tlsv1.2 or tlsv1.3)", ver);
		return -EINVAL;
	}
	if ((rc = check_file("CA", o->cafile, 0, err, errlen)) != 0 ||
	    (rc = check_file("certificate", o->certfile, 0, err, errlen)) != 0 ||
	    (rc = check_file("key", o->keyfile, 1, err, errlen)) != 0)
		return rc;

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (t->ctx == NULL) {
		seterr(err, errlen, "cannot create a TLS context");
		free(t);
		return -ENOMEM;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	SSL_CTX_set_info_callback(t->ctx, info_cb);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_set_min_proto_version(t->ctx, strcmp(ver, "tlsv1.3") == 0 ? TLS1_3_VERSION
	                                                                       : TLS1_2_VERSION) != 1) {
		seterr(err, errlen, "cannot set the minimum TLS version");
		rc = -EIO;
		goto fail;
	}
	if (SSL_CTX_load_verify_file(t->ctx, o->cafile) != 1) {
		seterr(err, errlen, "TLS CA file %s holds no usable certificate", o->cafile);
		rc = -EINVAL;
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, o->certfile) != 1) {
		seterr(err, errlen, "TLS certificate file %s is not a usable PEM certificate",
		       o->certfile);
		rc = -EINVAL;
		goto fail;
	}
	/* The key's content never goes into a message: only its path. */
	if (SSL_CTX_use_PrivateKey_file(t->ctx, o->keyfile, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1) {
		seterr(err, errlen, "TLS key file %s is not the key of certificate %s", o->keyfile,
		       o->certfile);
		rc = -EINVAL;
		goto fail;
	}
	/* Peer verification is always on. The host check is made by OpenSSL during
	 * verification (X509_check_host / X509_check_ip rules), so a mismatch shows up in
	 * the verification result as "hostname mismatch" or "IP address mismatch". */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	param = SSL_CTX_get0_param(t->ctx);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, o->host, ip) == 1 || inet_pton(AF_INET6, o->host, ip) == 1)
		rc = X509_VERIFY_PARAM_set1_ip_asc(param, o->host);
	else
		rc = X509_VERIFY_PARAM_set1_host(param, o->host, 0);
	if (rc != 1) {
		seterr(err, errlen, "cannot set the expected broker name %s", o->host);
		rc = -EIO;
		goto fail;
	}
	/*
	 * libmosquitto uses this context as it is (it keeps its own reference). Its
	 * "with defaults" mode is not used: in 2.0.11 it installs a verify callback whose
	 * per-connection data is never registered when the context comes from the caller,
	 * so every certificate would be refused.
	 */
	if (mosquitto_int_option(mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) != MOSQ_ERR_SUCCESS ||
	    mosquitto_void_option(mosq, MOSQ_OPT_SSL_CTX, t->ctx) != MOSQ_ERR_SUCCESS) {
		seterr(err, errlen, "libmosquitto refused the TLS context");
		rc = -EIO;
		goto fail;
	}
	*out = t;
	return 0;
fail:
	SSL_CTX_free(t->ctx);
	free(t);
	return rc;
}

const char *
mqtt_tls_failure(const struct mqtt_tls *t)
{
	return t != NULL && t->have_why ? t->why : NULL;
}

void
mqtt_tls_reset(struct mqtt_tls *t)
{
	if (t == NULL)
		return;
	t->have_why = 0;
	t->why[0] = '\0';
}

void
mqtt_tls_free(struct mqtt_tls *t)
{
	if (t == NULL)
		return;
	/* libmosquitto holds its own reference to the context; this drops ours. */
	SSL_CTX_free(t->ctx);
	free(t);
}
