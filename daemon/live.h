/*
 * live.h - what a live daemon has and a replay does not: the hal clock as the core's
 * timebase, the GNSS source and the ignition line, each wired into the loop with
 * reconnect backoff where the source can go away.
 */
#ifndef COVERD_LIVE_H
#define COVERD_LIVE_H

#include <stddef.h>

#include "config.h"
#include "core.h"
#include "loop.h"

struct live;
struct cJSON;

/*
 * Anchors the clock (to the last stored event time), installs it as the core's timebase
 * and opens the GNSS source named by cfg->gnss_source and the ignition backend ("none"
 * unless a board provides one). A GNSS source that is not there yet is retried in the
 * background; only an unknown source name fails here.
 */
int live_new(struct live **out, struct core *c, struct loop *l, const struct coverd_config *cfg,
             const char *ignition, char *err, size_t errlen);
void live_free(struct live *lv);

/* Adds "gnss" and "clock" members to a status object (an ipc status hook). */
void live_status(void *ctx, struct cJSON *status);

#endif
