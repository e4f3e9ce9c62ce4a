/*
 * test_mqtt_tls.c - unit tests of sync/mqtt_tls.c: the settings it refuses before any
 * connection is tried, and loopback detection. Handshake failures and their reasons are
 * tested against a real broker in tests/integration/test_backend.py (case tls).
 * Certificates come from tools/pki.sh, run into a temporary directory.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <mosquitto.h>

#include "mqtt_tls.h"

struct fx {
	char dir[256];
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], other_key[PATH_MAX];
	struct mosquitto *mosq;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char cmd[PATH_MAX * 2];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_mqtt_tls.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(cmd, sizeof(cmd), "sh '%s/tools/pki.sh' '%s/pki' dev-a >/dev/null", COVERD_SOURCE_DIR,
	         f->dir);
	assert_int_equal(system(cmd), 0);
	snprintf(f->ca, sizeof(f->ca), "%s/pki/ca.crt", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/pki/device-dev-a.crt", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/pki/device-dev-a.key", f->dir);
	snprintf(f->other_key, sizeof(f->other_key), "%s/pki/ingest.key", f->dir);
	assert_int_equal(mosquitto_lib_init(), MOSQ_ERR_SUCCESS);
	f->mosq = mosquitto_new("test", true, NULL);
	assert_non_null(f->mosq);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX + 16];

	mosquitto_destroy(f->mosq);
	mosquitto_lib_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
test_apply_good(void **state)
{
	struct fx *f = *state;
	struct mqtt_tls_opts o = { "localhost", f->ca, f->cert, f->key, NULL };
	struct mqtt_tls *t = NULL;
	char err[256];

	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), 0);
	assert_non_null(t);
	assert_null(mqtt_tls_failure(t));
	mqtt_tls_reset(t);
	assert_null(mqtt_tls_failure(t));
	/* libmosquitto holds its own reference to the context: destroying the client and
	 * then dropping ours frees it exactly once (checked under valgrind). */
	mosquitto_destroy(f->mosq);
	f->mosq = mosquitto_new("test", true, NULL);
	mqtt_tls_free(t);

	o.host = "127.0.0.1";
	o.min_version = "tlsv1.3";
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), 0);
	mosquitto_destroy(f->mosq);
	f->mosq = mosquitto_new("test", true, NULL);
	mqtt_tls_free(t);
}

static void
test_apply_refusals(void **state)
{
	struct fx *f = *state;
	struct mqtt_tls_opts o = { "localhost", f->ca, f->cert, f->key, NULL };
	struct mqtt_tls *t = NULL;
	char err[512], path[PATH_MAX];
	FILE *fp;

	/* A key others can read. */
	assert_int_equal(chmod(f->key, 0644), 0);
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	assert_non_null(strstr(err, f->key));
	assert_int_equal(chmod(f->key, 0640), 0);
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EPERM);
	assert_int_equal(chmod(f->key, 0600), 0);

	/* A key that is not the certificate's. */
	o.keyfile = f->other_key;
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not the key of certificate"));
	o.keyfile = f->key;

	/* Missing files, and a CA file that holds no certificate. */
	snprintf(path, sizeof(path), "%s/missing.crt", f->dir);
	o.cafile = path;
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("not a certificate\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no usable certificate"));
	o.cafile = NULL;
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	o.cafile = f->ca;
	o.certfile = f->dir; /* a directory */
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	o.certfile = f->cert;

	/* Old TLS versions and a missing host. */
	o.min_version = "tlsv1.1";
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	o.min_version = NULL;
	o.host = NULL;
	assert_int_equal(mqtt_tls_apply(f->mosq, &o, &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
	assert_null(mqtt_tls_failure(NULL));
}

static void
test_loopback(void **state)
{
	(void)state;
	assert_true(mqtt_tls_host_is_loopback("localhost"));
	assert_true(mqtt_tls_host_is_loopback("LocalHost"));
	assert_true(mqtt_tls_host_is_loopback("127.0.0.1"));
	assert_true(mqtt_tls_host_is_loopback("127.255.0.9"));
	assert_true(mqtt_tls_host_is_loopback("::1"));
	assert_false(mqtt_tls_host_is_loopback("128.0.0.1"));
	assert_false(mqtt_tls_host_is_loopback("10.0.0.1"));
	assert_false(mqtt_tls_host_is_loopback("::2"));
	assert_false(mqtt_tls_host_is_loopback("localhost.example.com"));
	assert_false(mqtt_tls_host_is_loopback("broker.example"));
	assert_false(mqtt_tls_host_is_loopback(""));
	assert_false(mqtt_tls_host_is_loopback(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_apply_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_refusals, setup, teardown),
		cmocka_unit_test(test_loopback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
