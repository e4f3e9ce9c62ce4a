/*
 * ipc.h - the local Unix socket (docs/ipc.md): newline-delimited JSON, one reply per
 * request, many clients, never blocking.
 *
 * Each client has a fixed input buffer of IPC_LINE_MAX bytes (a request, newline
 * included, may not be longer) and an output buffer that grows up to IPC_OUT_MAX. While a
 * client has more than IPC_OUT_HIGH bytes of replies unread, its further requests wait in
 * the kernel; a client that reads nothing for IPC_STALL_MS while replies are pending is
 * dropped. At most IPC_MAX_CLIENTS clients are served at once; one more is told so and
 * closed.
 */
#ifndef COVERD_IPC_H
#define COVERD_IPC_H

#include <stddef.h>

#include "core.h"
#include "loop.h"

#define IPC_LINE_MAX 65536
#define IPC_OUT_HIGH 65536
#define IPC_OUT_MAX (8 * 1024 * 1024)
#define IPC_STALL_MS 30000
#define IPC_MAX_CLIENTS 64
#define IPC_LOOP_STALL_MS 5000   /* health: a loop iteration older than this is a stall */

struct ipc;

/*
 * Listens on path with the given mode. A stale socket file (nobody answering) is
 * replaced; when another daemon answers on it, or path exists and is not a socket, this
 * fails with -EADDRINUSE / -EEXIST and err saying so.
 */
int ipc_new(struct ipc **out, struct core *c, struct loop *l, const char *path,
            unsigned mode, char *err, size_t errlen);
/* Closes every client and the listener and removes the socket file. */
void ipc_free(struct ipc *ipc);

/*
 * Lets another part of the daemon add members to the status object (the GNSS link, the
 * replay's progress, later the MQTT link). fn is called for every status request.
 */
struct cJSON;
void ipc_set_status_hook(struct ipc *ipc, void (*fn)(void *ctx, struct cJSON *status),
                         void *ctx);

/*
 * The test hook of docs/ipc.md, "Testing retries": once the request with this id has been
 * committed, the daemon kills itself with SIGKILL before sending the reply. main.c sets it
 * only in the foreground (-f, -d) from COVERD_TEST_KILL_BEFORE_REPLY. 0 or -EINVAL.
 */
int ipc_set_test_kill(struct ipc *ipc, const char *id);

#endif
