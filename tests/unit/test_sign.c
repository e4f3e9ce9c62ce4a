/*
 * test_sign.c - unit tests of sync/sign.c: key creation and its 0600 mode, refusal of
 * keys others can read, signature round trips and tampering, base64 and SHA-256 helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

#include "sign.h"
#include "store.h"

/* sign_body is what the daemon hands to store_set_signer(): the types must match. */
static const store_sign_fn store_signer = sign_body;

struct fixture {
	char dir[256];
	char key[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_sign.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key, sizeof(f->key), "%s/device.key", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static size_t
read_file(const char *path, char *buf, size_t cap)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, cap - 1, fp);
	buf[n] = '\0';
	assert_int_equal(fclose(fp), 0);
	return n;
}

static void
write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void
test_create_then_load(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k1 = NULL, *k2 = NULL;
	char pem1[SIGN_PUBLIC_PEM_MAX], pem2[SIGN_PUBLIC_PEM_MAX], file[4096];
	char err[256] = "";
	struct stat sb;

	assert_int_equal(sign_key_load_or_create(f->key, &k1, err, sizeof(err)), 1);
	assert_non_null(k1);
	assert_int_equal(stat(f->key, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	read_file(f->key, file, sizeof(file));
	assert_non_null(strstr(file, "-----BEGIN EC PRIVATE KEY-----"));

	/* The second start loads the same key instead of making a new one. */
	assert_int_equal(sign_key_load_or_create(f->key, &k2, err, sizeof(err)), 0);
	assert_int_equal(sign_public_pem(k1, pem1, sizeof(pem1)), 0);
	assert_int_equal(sign_public_pem(k2, pem2, sizeof(pem2)), 0);
	assert_string_equal(pem1, pem2);
	assert_non_null(strstr(pem1, "-----BEGIN PUBLIC KEY-----"));
	assert_null(strstr(pem1, "PRIVATE"));
	sign_key_free(k1);
	sign_key_free(k2);
}

static void
test_create_under_strict_umask(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL;
	char err[256] = "";
	struct stat sb;
	mode_t old = umask(0777);

	/* Even a umask that removes the owner's bits must leave a key the owner can read. */
	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), 1);
	umask(old);
	assert_int_equal(stat(f->key, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	sign_key_free(k);
	k = NULL;
	assert_int_equal(sign_key_load(f->key, &k, err, sizeof(err)), 0);
	sign_key_free(k);
}

static void
test_refuse_open_modes(void **state)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0620, 0602, 0660, 0666 };
	struct fixture *f = *state;
	struct sign_key *k = NULL;
	char before[4096], after[4096], err[512];
	size_t i;

	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), 1);
	sign_key_free(k);
	read_file(f->key, before, sizeof(before));
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		k = NULL;
		err[0] = '\0';
		assert_int_equal(chmod(f->key, modes[i]), 0);
		assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), -EPERM);
		assert_null(k);
		assert_non_null(strstr(err, f->key));
		assert_non_null(strstr(err, "chmod 600"));
		assert_int_equal(sign_key_load(f->key, &k, err, sizeof(err)), -EPERM);
		/* The refused key is left exactly as it was: never replaced by a new one. */
		read_file(f->key, after, sizeof(after));
		assert_string_equal(before, after);
	}
	assert_int_equal(chmod(f->key, 0600), 0);
	assert_int_equal(sign_key_load(f->key, &k, err, sizeof(err)), 0);
	sign_key_free(k);
	/* 0400 (read-only for the owner) is as private as 0600. */
	assert_int_equal(chmod(f->key, 0400), 0);
	assert_int_equal(sign_key_load(f->key, &k, err, sizeof(err)), 0);
	sign_key_free(k);
}

static void
test_refuse_bad_files(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL;
	char err[512], buf[128];

	/* A damaged key is an error, never silently replaced (it is the device identity),
	 * and the error message does not echo the file's contents. */
	write_file(f->key, "SECRET-MATERIAL-0123456789\n", 0600);
	err[0] = '\0';
	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), -EBADMSG);
	assert_null(k);
	assert_null(strstr(err, "SECRET"));
	assert_non_null(strstr(err, f->key));
	read_file(f->key, buf, sizeof(buf));
	assert_string_equal(buf, "SECRET-MATERIAL-0123456789\n");

	write_file(f->key, "", 0600);
	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), -EBADMSG);

	/* A directory where the key should be. */
	assert_int_equal(unlink(f->key), 0);
	assert_int_equal(mkdir(f->key, 0700), 0);
	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), -EPERM);
	assert_int_equal(rmdir(f->key), 0);

	/* sign_key_load does not create. */
	assert_int_equal(sign_key_load(f->key, &k, err, sizeof(err)), -ENOENT);
	assert_int_equal(access(f->key, F_OK), -1);
}

static void
test_refuse_other_curve(void **state)
{
	struct fixture *f = *state;
	mbedtls_pk_context pk;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	unsigned char pem[2048];
	struct sign_key *k = NULL;
	struct sign_pubkey *pub = NULL;
	char err[256];

	mbedtls_pk_init(&pk);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
	assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP384R1, mbedtls_pk_ec(pk),
	                                     mbedtls_ctr_drbg_random, &drbg), 0);
	assert_int_equal(mbedtls_pk_write_key_pem(&pk, pem, sizeof(pem)), 0);
	write_file(f->key, (const char *)pem, 0600);
	assert_int_equal(sign_key_load(f->key, &k, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "P-256"));
	assert_int_equal(mbedtls_pk_write_pubkey_pem(&pk, pem, sizeof(pem)), 0);
	assert_int_equal(sign_pubkey_parse((const char *)pem, strlen((const char *)pem), &pub,
	                                   err, sizeof(err)), -EBADMSG);
	assert_null(pub);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
}

static void
test_create_refuses_existing(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL;
	char err[256], buf[64];

	write_file(f->key, "placeholder", 0600);
	assert_int_equal(sign_key_create(f->key, &k, err, sizeof(err)), -EEXIST);
	assert_null(k);
	read_file(f->key, buf, sizeof(buf));
	assert_string_equal(buf, "placeholder");
}

static const char body[] =
    "{\"v\":1,\"kind\":\"activation\",\"event\":\"opened\",\"seq\":1,\"prev_hash\":"
    "\"0000000000000000000000000000000000000000000000000000000000000000\","
    "\"device_id\":\"dev-a\",\"id\":\"dev-a-20240501T080000Z-1-0\",\"revision\":1}";

static struct sign_pubkey *
pub_of(struct sign_key *k)
{
	char pem[SIGN_PUBLIC_PEM_MAX], err[256];
	struct sign_pubkey *pub = NULL;

	assert_int_equal(sign_public_pem(k, pem, sizeof(pem)), 0);
	assert_int_equal(sign_pubkey_parse(pem, strlen(pem), &pub, err, sizeof(err)), 0);
	return pub;
}

static void
test_sign_verify(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL, *other = NULL;
	struct sign_pubkey *pub, *opub;
	unsigned char sig[SIGN_SIG_MAX], sig2[SIGN_SIG_MAX], b[sizeof(body)];
	size_t siglen = 0, siglen2 = 0, len = sizeof(body) - 1, i;
	char err[256], okey[PATH_MAX];

	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), 1);
	pub = pub_of(k);
	assert_int_equal(sign_body(k, (const unsigned char *)body, len, sig, sizeof(sig), &siglen), 0);
	assert_true(siglen >= 8 && siglen <= SIGN_SIG_MAX);
	assert_int_equal(sig[0], 0x30); /* a DER SEQUENCE */
	assert_int_equal(sign_verify(pub, (const unsigned char *)body, len, sig, siglen), 0);

	/* Deterministic ECDSA: the same body always gets the same signature, so a re-sent
	 * record is byte-identical. */
	assert_int_equal(sign_body(k, (const unsigned char *)body, len, sig2, sizeof(sig2), &siglen2), 0);
	assert_int_equal(siglen, siglen2);
	assert_memory_equal(sig, sig2, siglen);

	/* Any one flipped bit anywhere in the body breaks the signature. */
	for (i = 0; i < len; i++) {
		memcpy(b, body, len);
		b[i] ^= 0x01;
		assert_int_equal(sign_verify(pub, b, len, sig, siglen), -EBADMSG);
	}
	/* So does a truncated or extended body. */
	assert_int_equal(sign_verify(pub, (const unsigned char *)body, len - 1, sig, siglen), -EBADMSG);
	memcpy(b, body, len);
	b[len] = ' ';
	assert_int_equal(sign_verify(pub, b, len + 1, sig, siglen), -EBADMSG);

	/* A flipped byte in the signature, a truncated one, and trailing garbage. */
	for (i = 0; i < siglen; i++) {
		memcpy(sig2, sig, siglen);
		sig2[i] ^= 0x80;
		assert_int_equal(sign_verify(pub, (const unsigned char *)body, len, sig2, siglen), -EBADMSG);
	}
	assert_int_equal(sign_verify(pub, (const unsigned char *)body, len, sig, siglen - 1), -EBADMSG);
	if (siglen < SIGN_SIG_MAX) {
		memcpy(sig2, sig, siglen);
		sig2[siglen] = 0;
		assert_int_equal(sign_verify(pub, (const unsigned char *)body, len, sig2, siglen + 1),
		                 -EBADMSG);
	}

	/* Another device's key does not verify this device's signature. */
	snprintf(okey, sizeof(okey), "%s/other.key", f->dir);
	assert_int_equal(sign_key_load_or_create(okey, &other, err, sizeof(err)), 1);
	opub = pub_of(other);
	assert_int_equal(sign_verify(opub, (const unsigned char *)body, len, sig, siglen), -EBADMSG);

	/* Through the store's signer type, with the store's buffer size. */
	{
		unsigned char ssig[STORE_SIG_MAX];
		size_t sl = 0;
		assert_int_equal(store_signer(k, (const unsigned char *)body, len, ssig, sizeof(ssig), &sl), 0);
		assert_int_equal(sign_verify(pub, (const unsigned char *)body, len, ssig, sl), 0);
	}

	/* A buffer too small for the signature. */
	assert_int_equal(sign_body(k, (const unsigned char *)body, len, sig2, 8, &siglen2), -ENOSPC);
	assert_int_equal(sign_verify(pub, (const unsigned char *)body, len, sig, 0), -EINVAL);

	sign_pubkey_free(pub);
	sign_pubkey_free(opub);
	sign_key_free(k);
	sign_key_free(other);
}

static void
test_public_pem_and_files(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL;
	struct sign_pubkey *pub = NULL;
	char pem[SIGN_PUBLIC_PEM_MAX], small[32], err[256], path[PATH_MAX];
	unsigned char sig[SIGN_SIG_MAX];
	size_t siglen;

	assert_int_equal(sign_key_load_or_create(f->key, &k, err, sizeof(err)), 1);
	assert_int_equal(sign_public_pem(k, small, sizeof(small)), -ENOSPC);
	assert_int_equal(sign_public_pem(k, pem, sizeof(pem)), 0);
	snprintf(path, sizeof(path), "%s/device.pub", f->dir);
	write_file(path, pem, 0644);
	assert_int_equal(sign_pubkey_load(path, &pub, err, sizeof(err)), 0);
	assert_int_equal(sign_body(k, (const unsigned char *)"x", 1, sig, sizeof(sig), &siglen), 0);
	assert_int_equal(sign_verify(pub, (const unsigned char *)"x", 1, sig, siglen), 0);
	sign_pubkey_free(pub);
	pub = NULL;

	/* A private key is not accepted where a public key is expected, nor is garbage. */
	read_file(f->key, pem, sizeof(pem));
	assert_int_equal(sign_pubkey_parse(pem, strlen(pem), &pub, err, sizeof(err)), -EBADMSG);
	assert_int_equal(sign_pubkey_parse("hello", 5, &pub, err, sizeof(err)), -EBADMSG);
	snprintf(path, sizeof(path), "%s/missing.pub", f->dir);
	assert_int_equal(sign_pubkey_load(path, &pub, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_null(pub);
	sign_key_free(k);
}

static void
test_sha256_hex(void **state)
{
	char hex[SIGN_SHA256_HEX_LEN + 1];

	(void)state;
	assert_int_equal(sign_sha256_hex("abc", 3, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(sign_sha256_hex("", 0, hex), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_base64(void **state)
{
	/* RFC 4648 section 10 test vectors. */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
		                           "Zm9vYmFy" };
	static const char *const bad[] = { "Zg=", "Zm9", "Zm 9v", "Zm9v\n", "Z=g=", "====",
		                           "Zm9v====", "Zm9*", "=Zm9", "Zg=a" };
	unsigned char out[64];
	char text[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		assert_int_equal(sign_b64_encode(plain[i], strlen(plain[i]), text, sizeof(text), &n), 0);
		assert_string_equal(text, enc[i]);
		assert_int_equal(n, strlen(enc[i]));
		assert_int_equal(sign_b64_decode(enc[i], strlen(enc[i]), out, sizeof(out), &n), 0);
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(out, plain[i], n);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sign_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n), -EBADMSG);
	/* Buffers too small on either side. */
	assert_int_equal(sign_b64_encode("foobar", 6, text, SIGN_B64_SIZE(6) - 1, &n), -ENOSPC);
	assert_int_equal(sign_b64_encode("foobar", 6, text, SIGN_B64_SIZE(6), &n), 0);
	assert_int_equal(sign_b64_decode("Zm9vYmFy", 8, out, 5, &n), -ENOSPC);
	assert_int_equal(sign_b64_decode("Zm9vYg==", 8, out, 4, &n), 0);
	assert_int_equal(n, 4);
}

static void
test_strerror(void **state)
{
	(void)state;
	assert_string_equal(sign_strerror(0), "success");
	assert_non_null(strstr(sign_strerror(-EPERM), "permissions"));
	assert_string_equal(sign_strerror(-12345), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_then_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_under_strict_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_open_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_other_curve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refuses_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_public_pem_and_files, setup, teardown),
		cmocka_unit_test(test_sha256_hex),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
