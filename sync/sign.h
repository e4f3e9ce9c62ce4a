/*
 * sign.h - the device's P-256 signing key and the helpers around record signatures
 * (docs/protocol.md, "Signatures").
 *
 * Every outbox record body is signed with ECDSA over P-256 and SHA-256 (JOSE "ES256"),
 * the signature DER-encoded as mbedtls and OpenSSL write it. The device key lives in one
 * PEM file, created on first start with mode 0600 and refused when group or others may
 * read or write it. Nothing here logs; no function ever copies key material into an err
 * buffer or a return value other than the public key.
 *
 * Errors: 0 or a negative errno-style code, and where an err buffer is given a
 * NUL-terminated message naming the file and the reason:
 *   -ENOENT  the key file does not exist (sign_key_load)
 *   -EPERM   the key file is readable or writable by group or others, or not a regular file
 *   -EBADMSG not a valid P-256 key, bad base64, or a signature that does not verify
 *   -ENOSPC  the caller's buffer is too small
 *   -EIO     a read, write, fsync or random-generator failure
 *   -EEXIST  sign_key_create found the file already there
 *   -EINVAL  bad arguments
 * sign_strerror() names a code.
 */
#ifndef COVERD_SIGN_H
#define COVERD_SIGN_H

#include <stddef.h>

/* A DER ECDSA P-256 signature is at most 72 bytes; buffers of this size always suffice. */
#define SIGN_SIG_MAX 72
/* Lowercase hex SHA-256, without the terminating NUL. */
#define SIGN_SHA256_HEX_LEN 64
/* A P-256 SubjectPublicKeyInfo in PEM is under 200 bytes; this leaves room. */
#define SIGN_PUBLIC_PEM_MAX 512
/* Bytes needed to base64-encode n bytes, including the terminating NUL. */
#define SIGN_B64_SIZE(n) ((((n) + 2) / 3) * 4 + 1)

/* A private key with its own random generator. Opaque; free with sign_key_free(). */
struct sign_key;
/* A public key for verification. Opaque; free with sign_pubkey_free(). */
struct sign_pubkey;

/*
 * Loads the private key at path or, when the file does not exist, creates a new P-256 key
 * there (mode 0600, written to a temporary file, fsynced, linked into place without
 * replacing anything, directory fsynced). An existing file that is not a valid P-256 key
 * is an error and is never overwritten: the key is the device's identity.
 * Returns 0 when an existing key was loaded, 1 when a new one was created, or a negative
 * code. *out is set only on success.
 */
int sign_key_load_or_create(const char *path, struct sign_key **out, char *err, size_t errlen);
/* Loads an existing key only: -ENOENT when there is none. 0 or a negative code. */
int sign_key_load(const char *path, struct sign_key **out, char *err, size_t errlen);
/* Creates a new key at path: -EEXIST when the file exists. 0 or a negative code. */
int sign_key_create(const char *path, struct sign_key **out, char *err, size_t errlen);
/* Wipes and frees the key. NULL is allowed. */
void sign_key_free(struct sign_key *key);

/*
 * Signs exactly body[0..len) (SHA-256, then deterministic ECDSA per RFC 6979) and writes
 * the DER signature into sig (capacity cap; SIGN_SIG_MAX always suffices), its length into
 * *siglen. ctx is a struct sign_key *: the signature matches store_sign_fn in
 * daemon/store.h so the key can be given to store_set_signer(). 0, -ENOSPC, -EIO, -EINVAL.
 */
int sign_body(void *ctx, const unsigned char *body, size_t len, unsigned char *sig,
              size_t cap, size_t *siglen);

/* Writes the public key as a NUL-terminated PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY")
 * into buf, for `coverctl key --public` and `coverd-ingest enroll`. 0, -ENOSPC, -EIO. */
int sign_public_pem(struct sign_key *key, char *buf, size_t len);

/* Parses a PEM public key of len bytes (no NUL needed) and checks that it is P-256.
 * 0 or -EBADMSG / -EINVAL / -ENOMEM; *out set only on success. */
int sign_pubkey_parse(const char *pem, size_t len, struct sign_pubkey **out, char *err,
                      size_t errlen);
/* Reads and parses a PEM public key file (at most 16 KiB). */
int sign_pubkey_load(const char *path, struct sign_pubkey **out, char *err, size_t errlen);
void sign_pubkey_free(struct sign_pubkey *pub);

/* Verifies a DER ECDSA P-256 SHA-256 signature over exactly body[0..len).
 * 0 when valid, -EBADMSG when not (any altered byte, a truncated or foreign signature),
 * -EINVAL for bad arguments. */
int sign_verify(const struct sign_pubkey *pub, const unsigned char *body, size_t len,
                const unsigned char *sig, size_t siglen);

/* Lowercase hex SHA-256 of data[0..len) into out (SIGN_SHA256_HEX_LEN + 1 bytes). 0 or -EIO. */
int sign_sha256_hex(const void *data, size_t len, char out[SIGN_SHA256_HEX_LEN + 1]);

/* Standard base64 (RFC 4648 section 4, with padding, no line breaks). encode writes a
 * NUL-terminated string (cap >= SIGN_B64_SIZE(len)) and its length, without the NUL, into
 * *outlen. decode accepts only that canonical form (no whitespace, length a multiple of 4)
 * and returns -EBADMSG for anything else. 0, -ENOSPC, -EBADMSG. */
int sign_b64_encode(const void *in, size_t len, char *out, size_t cap, size_t *outlen);
int sign_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                    size_t *outlen);

const char *sign_strerror(int code);

#endif
