/*
 * sign.c - P-256 device key, record signatures, SHA-256 and base64 over mbedtls 2.28.
 */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

/* A PEM private key is a few hundred bytes; anything far larger is not one of ours. */
#define KEY_FILE_MAX 16384
#define KEY_PEM_MAX 1024

struct sign_key {
	mbedtls_pk_context pk;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

struct sign_pubkey {
	mbedtls_pk_context pk;
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

/* mbedtls error text names the failing step, never key bytes, so it is safe to show. */
static const char *
mbed_err(int rc, char *buf, size_t len)
{
	mbedtls_strerror(rc, buf, len);
	return buf;
}

static struct sign_key *
key_alloc(char *err, size_t errlen)
{
	static const unsigned char pers[] = "coverd-sign";
	struct sign_key *k;
	char eb[128];
	int rc;

	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	mbedtls_pk_init(&k->pk);
	mbedtls_entropy_init(&k->entropy);
	mbedtls_ctr_drbg_init(&k->drbg);
	rc = mbedtls_ctr_drbg_seed(&k->drbg, mbedtls_entropy_func, &k->entropy, pers,
	                           sizeof(pers) - 1);
	if (rc != 0) {
		seterr(err, errlen, "cannot seed the random generator: %s",
		       mbed_err(rc, eb, sizeof(eb)));
		sign_key_free(k);
		return NULL;
	}
	return k;
}

void
sign_key_free(struct sign_key *key)
{
	if (key == NULL)
		return;
	mbedtls_pk_free(&key->pk);
	mbedtls_ctr_drbg_free(&key->drbg);
	mbedtls_entropy_free(&key->entropy);
	mbedtls_platform_zeroize(key, sizeof(*key));
	free(key);
}

static int
is_p256(const mbedtls_pk_context *pk)
{
	if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
		return 0;
	return mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

int
sign_key_load(const char *path, struct sign_key **out, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	struct sign_key *k = NULL;
	struct stat sb;
	size_t n = 0;
	char eb[128];
	int fd, rc;

	if (path == NULL || out == NULL) {
		seterr(err, errlen, "no key path given");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno;
		seterr(err, errlen, "key file %s: %s", path, strerror(rc));
		return rc == ENOENT ? -ENOENT : rc == EACCES ? -EPERM : -EIO;
	}
	if (fstat(fd, &sb) != 0) {
		seterr(err, errlen, "key file %s: %s", path, strerror(errno));
		rc = -EIO;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		seterr(err, errlen, "key file %s is not a regular file", path);
		rc = -EPERM;
		goto out;
	}
	/* A device key others can read is a key others may have copied: refuse it rather
	 * than sign with it, and say how to fix it. */
	if ((sb.st_mode & 077) != 0) {
		seterr(err, errlen,
		       "key file %s has mode %04o: it must not be readable or writable by group "
		       "or others (chmod 600 %s)",
		       path, (unsigned)(sb.st_mode & 07777), path);
		rc = -EPERM;
		goto out;
	}
	if (sb.st_size <= 0 || sb.st_size > KEY_FILE_MAX) {
		seterr(err, errlen, "key file %s is %s", path,
		       sb.st_size <= 0 ? "empty" : "too large to be a key");
		rc = -EBADMSG;
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		seterr(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	while (n < (size_t)sb.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)sb.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(err, errlen, "key file %s: read: %s", path, strerror(errno));
			rc = -EIO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	k = key_alloc(err, errlen);
	if (k == NULL) {
		rc = -EIO;
		goto out;
	}
	/* mbedtls wants the terminating NUL counted for PEM input. */
	rc = mbedtls_pk_parse_key(&k->pk, buf, n + 1, NULL, 0);
	if (rc != 0) {
		seterr(err, errlen, "key file %s is not a valid private key: %s", path,
		       mbed_err(rc, eb, sizeof(eb)));
		rc = -EBADMSG;
		goto out;
	}
	if (!is_p256(&k->pk)) {
		seterr(err, errlen, "key file %s holds a key that is not EC P-256", path);
		rc = -EBADMSG;
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	if (buf != NULL) {
		mbedtls_platform_zeroize(buf, n);
		free(buf);
	}
	sign_key_free(k);
	/* A failed close of a read-only descriptor loses nothing: the key is parsed. */
	(void)close(fd);
	return rc;
}

static int
write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Makes a new directory entry durable: fsync the directory that holds path. */
static int
fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* Writes pem to a new file at path with mode 0600; fails with EEXIST if path exists. */
static int
write_new_file(const char *path, const unsigned char *pem, size_t len)
{
	int fd, e;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* The umask can only take bits away; set 0600 explicitly so the owner can read the
	 * key back even under an unusual umask. */
	if (fchmod(fd, 0600) != 0 || write_all(fd, pem, len) != 0 || fsync(fd) != 0) {
		e = errno;
		(void)close(fd);
		(void)unlink(path);
		errno = e;
		return -1;
	}
	if (close(fd) != 0) {
		e = errno;
		(void)unlink(path);
		errno = e;
		return -1;
	}
	return 0;
}

int
sign_key_create(const char *path, struct sign_key **out, char *err, size_t errlen)
{
	unsigned char pem[KEY_PEM_MAX];
	char tmp[PATH_MAX];
	struct sign_key *k;
	size_t len;
	char eb[128];
	int rc, e;

	if (path == NULL || out == NULL || *path == '\0') {
		seterr(err, errlen, "no key path given");
		return -EINVAL;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		seterr(err, errlen, "key path %s is too long", path);
		return -EINVAL;
	}
	k = key_alloc(err, errlen);
	if (k == NULL)
		return -EIO;
	rc = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (rc == 0)
		rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk),
		                         mbedtls_ctr_drbg_random, &k->drbg);
	if (rc != 0) {
		seterr(err, errlen, "cannot generate a P-256 key: %s", mbed_err(rc, eb, sizeof(eb)));
		sign_key_free(k);
		return -EIO;
	}
	rc = mbedtls_pk_write_key_pem(&k->pk, pem, sizeof(pem));
	if (rc != 0) {
		seterr(err, errlen, "cannot encode the key: %s", mbed_err(rc, eb, sizeof(eb)));
		sign_key_free(k);
		return -EIO;
	}
	len = strlen((const char *)pem);

	/*
	 * The key is written whole to a temporary file and then linked into place, so a
	 * power cut never leaves a half-written key at path (which would stop the daemon
	 * for good), and link() never replaces a key another process created meanwhile.
	 * Filesystems without hard links get an exclusive create of path itself.
	 */
	(void)unlink(tmp);
	if (write_new_file(tmp, pem, len) != 0) {
		e = errno;
		seterr(err, errlen, "cannot write key file %s: %s", tmp, strerror(e));
		rc = -EIO;
		goto out;
	}
	if (link(tmp, path) != 0) {
		e = errno;
		(void)unlink(tmp);
		if (e == EEXIST) {
			seterr(err, errlen, "key file %s already exists", path);
			rc = -EEXIST;
			goto out;
		}
		if (e != EPERM && e != ENOTSUP && e != EOPNOTSUPP && e != ENOSYS) {
			seterr(err, errlen, "cannot create key file %s: %s", path, strerror(e));
			rc = -EIO;
			goto out;
		}
		if (write_new_file(path, pem, len) != 0) {
			e = errno;
			seterr(err, errlen, "cannot create key file %s: %s", path, strerror(e));
			rc = e == EEXIST ? -EEXIST : -EIO;
			goto out;
		}
	} else if (unlink(tmp) != 0) {
		e = errno;
		seterr(err, errlen, "cannot remove %s: %s", tmp, strerror(e));
		rc = -EIO;
		goto out;
	}
	if (fsync_parent(path) != 0) {
		e = errno;
		seterr(err, errlen, "cannot sync the directory of %s: %s", path, strerror(e));
		rc = -EIO;
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	mbedtls_platform_zeroize(pem, sizeof(pem));
	sign_key_free(k);
	return rc;
}

int
sign_key_load_or_create(const char *path, struct sign_key **out, char *err, size_t errlen)
{
	int rc;

	rc = sign_key_load(path, out, err, errlen);
	if (rc != -ENOENT)
		return rc;
	rc = sign_key_create(path, out, err, errlen);
	if (rc == -EEXIST) /* Another process created it first: use that one. */
		return sign_key_load(path, out, err, errlen);
	return rc == 0 ? 1 : rc;
}

int
sign_body(void *ctx, const unsigned char *body, size_t len, unsigned char *sig, size_t cap,
          size_t *siglen)
{
	struct sign_key *k = ctx;
	unsigned char hash[32];
	unsigned char buf[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	size_t n = 0;
	int rc;

	if (k == NULL || (body == NULL && len > 0) || sig == NULL || siglen == NULL)
		return -EINVAL;
	if (mbedtls_sha256_ret(body, len, hash, 0) != 0)
		return -EIO;
	/* mbedtls 2.28's pk_sign takes no output size: sign into a buffer of the maximum
	 * size and copy out only what fits the caller's. */
	rc = mbedtls_pk_sign(&k->pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), buf, &n,
	                     mbedtls_ctr_drbg_random, &k->drbg);
	if (rc != 0)
		return -EIO;
	if (n > cap)
		return -ENOSPC;
	memcpy(sig, buf, n);
	*siglen = n;
	return 0;
}

int
sign_public_pem(struct sign_key *key, char *buf, size_t len)
{
	int rc;

	if (key == NULL || buf == NULL || len == 0)
		return -EINVAL;
	rc = mbedtls_pk_write_pubkey_pem(&key->pk, (unsigned char *)buf, len);
	if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL || rc == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL)
		return -ENOSPC;
	return rc == 0 ? 0 : -EIO;
}

int
sign_pubkey_parse(const char *pem, size_t len, struct sign_pubkey **out, char *err,
                  size_t errlen)
{
	struct sign_pubkey *p;
	unsigned char *buf;
	char eb[128];
	int rc;

	if (pem == NULL || out == NULL || len == 0 || len > KEY_FILE_MAX) {
		seterr(err, errlen, "public key is %s", len == 0 ? "empty" : "too large");
		return -EINVAL;
	}
	buf = malloc(len + 1);
	p = calloc(1, sizeof(*p));
	if (buf == NULL || p == NULL) {
		free(buf);
		free(p);
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(buf, pem, len);
	buf[len] = '\0';
	mbedtls_pk_init(&p->pk);
	rc = mbedtls_pk_parse_public_key(&p->pk, buf, len + 1);
	free(buf);
	if (rc != 0) {
		seterr(err, errlen, "not a valid public key: %s", mbed_err(rc, eb, sizeof(eb)));
		sign_pubkey_free(p);
		return -EBADMSG;
	}
	if (!is_p256(&p->pk)) {
		seterr(err, errlen, "public key is not EC P-256");
		sign_pubkey_free(p);
		return -EBADMSG;
	}
	*out = p;
	return 0;
}

int
sign_pubkey_load(const char *path, struct sign_pubkey **out, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX];
	size_t n;
	FILE *f;
	int rc;

	f = fopen(path, "re");
	if (f == NULL) {
		rc = errno;
		seterr(err, errlen, "%s: %s", path, strerror(rc));
		return rc == ENOENT ? -ENOENT : -EIO;
	}
	n = fread(buf, 1, sizeof(buf), f);
	rc = ferror(f) ? -EIO : 0;
	if (rc == 0 && n == sizeof(buf))
		rc = -EBADMSG;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	if (rc != 0) {
		seterr(err, errlen, "%s: %s", path,
		       rc == -EBADMSG ? "too large to be a public key" : "read error");
		return rc;
	}
	rc = sign_pubkey_parse(buf, n, out, err, errlen);
	if (rc != 0 && err != NULL && errlen > 0) {
		char tmp[256];
		snprintf(tmp, sizeof(tmp), "%s", err);
		seterr(err, errlen, "%s: %s", path, tmp);
	}
	return rc;
}

void
sign_pubkey_free(struct sign_pubkey *pub)
{
	if (pub == NULL)
		return;
	mbedtls_pk_free(&pub->pk);
	free(pub);
}

int
sign_verify(const struct sign_pubkey *pub, const unsigned char *body, size_t len,
            const unsigned char *sig, size_t siglen)
{
	unsigned char hash[32];

	if (pub == NULL || (body == NULL && len > 0) || sig == NULL || siglen == 0)
		return -EINVAL;
	if (mbedtls_sha256_ret(body, len, hash, 0) != 0)
		return -EIO;
	/* mbedtls 2.28 takes a non-const context although verification does not change it.
	 * Trailing bytes after a valid DER signature make it fail too (SIG_LEN_MISMATCH):
	 * only the exact signature is accepted. */
	if (mbedtls_pk_verify((mbedtls_pk_context *)&pub->pk, MBEDTLS_MD_SHA256, hash,
	                      sizeof(hash), sig, siglen) != 0)
		return -EBADMSG;
	return 0;
}

int
sign_sha256_hex(const void *data, size_t len, char out[SIGN_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char hash[32];
	size_t i;

	if ((data == NULL && len > 0) || out == NULL)
		return -EINVAL;
	if (mbedtls_sha256_ret(data, len, hash, 0) != 0)
		return -EIO;
	for (i = 0; i < sizeof(hash); i++) {
		out[2 * i] = hex[hash[i] >> 4];
		out[2 * i + 1] = hex[hash[i] & 0xf];
	}
	out[SIGN_SHA256_HEX_LEN] = '\0';
	return 0;
}

int
sign_b64_encode(const void *in, size_t len, char *out, size_t cap, size_t *outlen)
{
	size_t n = 0;
	int rc;

	if ((in == NULL && len > 0) || out == NULL || cap == 0)
		return -EINVAL;
	if (cap < SIGN_B64_SIZE(len))
		return -ENOSPC;
	out[0] = '\0'; /* mbedtls writes nothing at all for empty input */
	rc = mbedtls_base64_encode((unsigned char *)out, cap, &n, in, len);
	if (rc != 0)
		return -ENOSPC;
	if (outlen != NULL)
		*outlen = n;
	return 0;
}

static int
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int
sign_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
	size_t i, pad = 0, n = 0;
	int rc;

	if ((in == NULL && len > 0) || out == NULL || outlen == NULL)
		return -EINVAL;
	/* mbedtls skips line breaks and spaces; the protocol allows only the canonical
	 * form, so check it here: length a multiple of 4, '=' only as the last one or two. */
	if (len % 4 != 0)
		return -EBADMSG;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '=') {
			if (i + 2 < len)
				return -EBADMSG;
			pad++;
		} else if (!b64_char(c) || pad > 0) {
			return -EBADMSG;
		}
	}
	if (len == 0) {
		*outlen = 0;
		return 0;
	}
	if (len / 4 * 3 - pad > cap)
		return -ENOSPC;
	rc = mbedtls_base64_decode(out, cap, &n, (const unsigned char *)in, len);
	if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
		return -ENOSPC;
	if (rc != 0)
		return -EBADMSG;
	*outlen = n;
	return 0;
}

const char *
sign_strerror(int code)
{
	switch (code) {
	case 0: return "success";
	case -ENOENT: return "no such key file";
	case -EPERM: return "key file permissions are too open or it is not a regular file";
	case -EBADMSG: return "invalid key, encoding or signature";
	case -ENOSPC: return "buffer too small";
	case -EIO: return "I/O or random generator failure";
	case -EEXIST: return "key file already exists";
	case -EINVAL: return "invalid argument";
	case -ENOMEM: return "out of memory";
	default: return "unknown error";
	}
}
