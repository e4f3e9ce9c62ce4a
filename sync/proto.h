/*
 * proto.h - the payloads the device receives (docs/protocol.md, "Acknowledgements" and
 * "Commands"), checked strictly and without side effects, so the MQTT code applies a
 * payload only once it has passed every check (never in part) and the checks can be
 * tested without a broker.
 *
 * Every rejection names a counter suffix in *reason ("oversized", "malformed",
 * "unsupported_version", "unknown") that the caller prefixes with "ack." or "cmd.", and a
 * one-line message in why. Unknown members are ignored (protocol "Versioning": adding an
 * optional field is a compatible change).
 */
#ifndef COVERD_SYNC_PROTO_H
#define COVERD_SYNC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define SYNC_ACK_MAX 256          /* bytes: an ack payload above this is refused */
#define SYNC_CMD_MAX 4096         /* bytes: a cmd payload above this is refused */
#define SYNC_CMD_ID_MAX 64        /* an id is 1 to 64 of A-Z a-z 0-9 . _ : - */
#define SYNC_CONFIG_KEYS_MAX 16   /* members of a config command's "set" */
#define SYNC_JSON_INT_MAX 9007199254740991LL   /* 2^53 - 1: exact in a JSON number */

/*
 * Parses {"v":1,"upto":N}. Returns 0 with *upto set (0 <= N <= 2^53 - 1), or -EINVAL
 * (malformed, oversized) / -EPROTO (a "v" other than 1) with *reason and why set.
 */
int sync_proto_ack(const void *payload, size_t len, int64_t *upto, const char **reason,
                   char *why, size_t whylen);

enum sync_cmd_type {
	SYNC_CMD_POLICY_ASSIGN = 0,
	SYNC_CMD_POLICY_REVOKE,
	SYNC_CMD_CONFIG,
	SYNC_CMD_END_COVER,
	SYNC_CMD_PING,
};

struct sync_config_kv {
	char key[48];                 /* "section.key" */
	char value[128];              /* the JSON value as text: "\"10m\"", "600", "true" */
};

struct sync_cmd {
	bool have_id;                 /* id is valid (a reply can name it) */
	char id[SYNC_CMD_ID_MAX + 1];
	enum sync_cmd_type type;
	bool have_expires;
	int64_t expires_ms;           /* UTC milliseconds */
	/* policy_assign / policy_revoke */
	char policy_id[ENGINE_ID_MAX], driver_id[ENGINE_ID_MAX], vehicle_id[ENGINE_ID_MAX];
	/* config */
	size_t n_set;
	struct sync_config_kv set[SYNC_CONFIG_KEYS_MAX];
};

/*
 * Parses one command. Returns 0 with *out filled, or a negative code with *reason and
 * why set: -EINVAL (oversized, malformed: not JSON, not an object, a missing or mistyped
 * member), -EPROTO (unsupported_version), -ENOTSUP (unknown: a "cmd" this device does
 * not know). out->have_id tells whether the id could be read even so, so that the
 * refusal can name the command it answers.
 */
int sync_proto_cmd(const void *payload, size_t len, struct sync_cmd *out, const char **reason,
                   char *why, size_t whylen);

const char *sync_cmd_name(enum sync_cmd_type t);

#endif
