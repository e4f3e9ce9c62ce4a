/*
 * proto.c - strict checks of the ack and cmd payloads (see proto.h).
 */
#include "proto.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "evjson.h"

static int refuse(int code, const char **reason, const char *name, char *why, size_t whylen,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int refuse(int code, const char **reason, const char *name, char *why, size_t whylen,
                  const char *fmt, ...)
{
	*reason = name;
	if (why != NULL && whylen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* An integral JSON number within [lo, hi]; cJSON keeps numbers as doubles, which hold
 * every integer up to 2^53 exactly. */
static bool get_int(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble ||
	    v->valuedouble < (double)lo || v->valuedouble > (double)hi)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const void *buf, size_t len)
{
	const unsigned char *s = buf, *e = s + len;
	while (s < e) {
		unsigned c = *s;
		size_t n;
		unsigned min;
		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, min = 0x80, c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, min = 0x800, c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		if ((size_t)(e - s) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (s[i] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

/* Checks "v": -EINVAL when it is missing or not an integer, -EPROTO when it is not 1. */
static int check_version(const cJSON *root, const char **reason, char *why, size_t whylen)
{
	int64_t v;
	if (!get_int(root, "v", -SYNC_JSON_INT_MAX, SYNC_JSON_INT_MAX, &v))
		return refuse(-EINVAL, reason, "malformed", why, whylen,
		              "member \"v\" missing or not an integer");
	if (v != 1)
		return refuse(-EPROTO, reason, "unsupported_version", why, whylen,
		              "version %lld (this device reads 1)", (long long)v);
	return 0;
}

int sync_proto_ack(const void *payload, size_t len, int64_t *upto, const char **reason,
                   char *why, size_t whylen)
{
	if (payload == NULL && len > 0)
		return refuse(-EINVAL, reason, "malformed", why, whylen, "no payload");
	if (len > SYNC_ACK_MAX)
		return refuse(-EINVAL, reason, "oversized", why, whylen,
		              "%zu bytes (at most %d)", len, SYNC_ACK_MAX);
	/* cJSON would skip a NUL as white space; JSON has no such thing. */
	if (len > 0 && memchr(payload, '\0', len) != NULL)
		return refuse(-EINVAL, reason, "malformed", why, whylen, "NUL byte in the payload");
	if (!utf8_valid(payload, len))
		return refuse(-EINVAL, reason, "malformed", why, whylen, "not valid UTF-8");
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return refuse(-EINVAL, reason, "malformed", why, whylen, "not a JSON object");
	}
	/* One object and nothing after it but white space: cJSON stops at the object's end. */
	for (const char *p = end; p != NULL && p < (const char *)payload + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			cJSON_Delete(root);
			return refuse(-EINVAL, reason, "malformed", why, whylen,
			              "bytes after the JSON object");
		}
	}
	/* A member given twice has no meaning in JSON that every receiver agrees on. */
	for (const cJSON *a = root->child; a != NULL; a = a->next)
		for (const cJSON *b = a->next; b != NULL; b = b->next)
			if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0) {
				char name[40];
				snprintf(name, sizeof(name), "%s", a->string);
				cJSON_Delete(root);
				return refuse(-EINVAL, reason, "malformed", why, whylen,
				              "member \"%s\" given twice", name);
			}
	int r = check_version(root, reason, why, whylen);
	if (r == 0 && !get_int(root, "upto", 0, SYNC_JSON_INT_MAX, upto))
		r = refuse(-EINVAL, reason, "malformed", why, whylen,
		           "member \"upto\" missing or not an integer in [0, 2^53)");
	cJSON_Delete(root);
	return r;
}

static bool id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SYNC_CMD_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* An identifier argument: a string of 1 to 47 bytes. */
static bool get_ident(const cJSON *o, const char *k, char *buf, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return false;
	size_t n = strlen(v->valuestring);
	if (n == 0 || n >= cap)
		return false;
	memcpy(buf, v->valuestring, n + 1);
	return true;
}

static bool key_valid(const char *k)
{
	const char *dot = strchr(k, '.');
	size_t n = strlen(k);
	if (dot == NULL || dot == k || dot[1] == '\0' || n >= sizeof(((struct sync_config_kv *)0)->key))
		return false;
	for (const char *p = k; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_' || p == dot))
			return false;
	return true;
}

static const char *const cmd_names[] = {
	[SYNC_CMD_POLICY_ASSIGN] = "policy_assign",
	[SYNC_CMD_POLICY_REVOKE] = "policy_revoke",
	[SYNC_CMD_CONFIG] = "config",
	[SYNC_CMD_END_COVER] = "end_cover",
	[SYNC_CMD_PING] = "ping",
};

const char *sync_cmd_name(enum sync_cmd_type t)
{
	return (unsigned)t < sizeof(cmd_names) / sizeof(cmd_names[0]) ? cmd_names[t] : "?";
}

static int parse_config(const cJSON *root, struct sync_cmd *out, const char **reason, char *why,
                        size_t whylen)
{
	const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "set");
	if (!cJSON_IsObject(set) || set->child == NULL)
		return refuse(-EINVAL, reason, "malformed", why, whylen,
		              "config: member \"set\" must be a non-empty object");
	for (const cJSON *e = set->child; e != NULL; e = e->next) {
		if (out->n_set == SYNC_CONFIG_KEYS_MAX)
			return refuse(-EINVAL, reason, "malformed", why, whylen,
			              "config: more than %d keys", SYNC_CONFIG_KEYS_MAX);
		if (e->string == NULL || !key_valid(e->string))
			return refuse(-EINVAL, reason, "malformed", why, whylen,
			              "config: key \"%.48s\" is not section.key", e->string ? e->string : "");
		for (size_t i = 0; i < out->n_set; i++)
			if (strcmp(out->set[i].key, e->string) == 0)
				return refuse(-EINVAL, reason, "malformed", why, whylen,
				              "config: key %s given twice", e->string);
		if (!cJSON_IsString(e) && !cJSON_IsNumber(e) && !cJSON_IsBool(e))
			return refuse(-EINVAL, reason, "malformed", why, whylen,
			              "config: %s must be a string, number or boolean", e->string);
		struct sync_config_kv *kv = &out->set[out->n_set];
		snprintf(kv->key, sizeof(kv->key), "%s", e->string);
		if (!cJSON_PrintPreallocated((cJSON *)e, kv->value, (int)sizeof(kv->value), 0) ||
		    strlen(kv->value) >= sizeof(kv->value) - 5)
			return refuse(-EINVAL, reason, "malformed", why, whylen,
			              "config: the value of %s is too long", e->string);
		out->n_set++;
	}
	return 0;
}

int sync_proto_cmd(const void *payload, size_t len, struct sync_cmd *out, const char **reason,
                   char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (payload == NULL && len > 0)
		return refuse(-EINVAL, reason, "malformed", why, whylen, "no payload");
	if (len > SYNC_CMD_MAX)
		return refuse(-EINVAL, reason, "oversized", why, whylen,
		              "%zu bytes (at most %d)", len, SYNC_CMD_MAX);
	if (len > 0 && memchr(payload, '\0', len) != NULL)
		return refuse(-EINVAL, reason, "malformed", why, whylen, "NUL byte in the payload");
	cJSON *root = cJSON_ParseWithLength(payload, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return refuse(-EINVAL, reason, "malformed", why, whylen, "not a JSON object");
	}
	/* The id first, so that even a refusal can say which command it answers. */
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (cJSON_IsString(id) && id->valuestring != NULL && id_valid(id->valuestring)) {
		snprintf(out->id, sizeof(out->id), "%s", id->valuestring);
		out->have_id = true;
	}
	int r = check_version(root, reason, why, whylen);
	if (r != 0)
		goto done;
	if (!out->have_id) {
		r = refuse(-EINVAL, reason, "malformed", why, whylen,
		           "member \"id\" missing or not 1 to 64 of A-Z a-z 0-9 . _ : -");
		goto done;
	}
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(root, "cmd");
	if (!cJSON_IsString(cmd) || cmd->valuestring == NULL) {
		r = refuse(-EINVAL, reason, "malformed", why, whylen,
		           "member \"cmd\" missing or not a string");
		goto done;
	}
	size_t n = sizeof(cmd_names) / sizeof(cmd_names[0]), i;
	for (i = 0; i < n; i++)
		if (strcmp(cmd->valuestring, cmd_names[i]) == 0)
			break;
	if (i == n) {
		r = refuse(-ENOTSUP, reason, "unknown", why, whylen, "unknown command \"%.40s\"",
		           cmd->valuestring);
		goto done;
	}
	out->type = (enum sync_cmd_type)i;
	const char *tfields[2] = { "t", "expires" };
	for (int k = 0; k < 2; k++) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, tfields[k]);
		int64_t ms;
		if (t == NULL)
			continue;
		if (!cJSON_IsString(t) || t->valuestring == NULL ||
		    evjson_parse_time(t->valuestring, &ms) != 0) {
			r = refuse(-EINVAL, reason, "malformed", why, whylen,
			           "member \"%s\" is not an RFC 3339 time", tfields[k]);
			goto done;
		}
		if (k == 1) {
			out->have_expires = true;
			out->expires_ms = ms;
		}
	}
	switch (out->type) {
	case SYNC_CMD_POLICY_ASSIGN: {
		const cJSON *veh = cJSON_GetObjectItemCaseSensitive(root, "vehicle_id");
		if (!get_ident(root, "policy_id", out->policy_id, sizeof(out->policy_id)) ||
		    !get_ident(root, "driver_id", out->driver_id, sizeof(out->driver_id)) ||
		    (veh != NULL && !cJSON_IsNull(veh) &&
		     !get_ident(root, "vehicle_id", out->vehicle_id, sizeof(out->vehicle_id))))
			r = refuse(-EINVAL, reason, "malformed", why, whylen,
			           "policy_assign: policy_id and driver_id must be strings of 1 to 47 "
			           "bytes, vehicle_id one or null");
		break;
	}
	case SYNC_CMD_POLICY_REVOKE:
		if (!get_ident(root, "policy_id", out->policy_id, sizeof(out->policy_id)))
			r = refuse(-EINVAL, reason, "malformed", why, whylen,
			           "policy_revoke: policy_id must be a string of 1 to 47 bytes");
		break;
	case SYNC_CMD_CONFIG:
		r = parse_config(root, out, reason, why, whylen);
		break;
	case SYNC_CMD_END_COVER:
	case SYNC_CMD_PING:
		break;
	}
done:
	cJSON_Delete(root);
	return r;
}
