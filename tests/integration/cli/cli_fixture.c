/*
 * cli_fixture - builds a state directory for the coverctl tests by running a scenario
 * through the real engine and the real store, the way the daemon does: each line is
 * parsed by the socket's codec, every deadline that falls due before an event is fired
 * by a tick first (as the daemon's timer would), and each step is one store_apply().
 *
 * usage: cli_fixture STATE_DIR SCENARIO [DEVICE_ID]
 * Writes STATE_DIR/coverd.db (the directory must exist, the database must not).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"
#include "evjson.h"
#include "paths.h"
#include "store.h"

static struct engine_state state;   /* static: the state holds a whole session */
static struct engine_actions acts;

static int step(struct store *st, const struct engine_config *cfg,
                const struct engine_event *ev, const char *source, const char *raw)
{
	int rc;

	(void)engine_step(cfg, &state, ev, &acts);
	rc = store_apply(st, cfg, ev, source, raw, &state, &acts);
	if (rc < 0)
		fprintf(stderr, "cli_fixture: store_apply: %s\n", store_strerror(rc));
	return rc;
}

/* Fires, one tick each 1 ms after it, the deadlines strictly before t_ms (the daemon's
 * timer). */
static int run_deadlines(struct store *st, const struct engine_config *cfg, int64_t t_ms)
{
	int64_t d;

	while ((d = engine_next_deadline(cfg, &state)) < t_ms) {
		struct engine_event tick = { .t_ms = d + 1, .type = COV_EV_TICK, .tq = TQ_GNSS };

		if (step(st, cfg, &tick, "timer", NULL) < 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct engine_config cfg;
	struct store *st = NULL;
	char path[4096], err[512], line[65600];
	FILE *f;
	int lineno = 0, rc;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: cli_fixture STATE_DIR SCENARIO [DEVICE_ID]\n");
		return 2;
	}
	engine_config_defaults(&cfg);
	if (argc == 4)
		snprintf(cfg.device_id, sizeof(cfg.device_id), "%s", argv[3]);
	snprintf(path, sizeof(path), "%s/%s", argv[1], COVERD_DB_NAME);
	if (store_open(&st, path, STORE_RW, err, sizeof(err)) < 0) {
		fprintf(stderr, "cli_fixture: %s\n", err);
		return 1;
	}
	rc = store_load_state(st, &state);
	if (rc == -ENOENT) {
		engine_state_init(&state);
	} else if (rc < 0) {
		fprintf(stderr, "cli_fixture: load state: %s\n", store_strerror(rc));
		store_close(st);
		return 1;
	}
	f = fopen(argv[2], "r");
	if (f == NULL) {
		fprintf(stderr, "cli_fixture: %s: %s\n", argv[2], strerror(errno));
		store_close(st);
		return 1;
	}
	rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		struct engine_event ev;
		enum evjson_kind kind;
		size_t len = strcspn(line, "\r\n");

		lineno++;
		line[len] = '\0';
		if (evjson_skip_line(line, len))
			continue;
		if (evjson_parse(line, len, 1, &ev, &kind, err, sizeof(err)) < 0) {
			fprintf(stderr, "cli_fixture: %s:%d: %s\n", argv[2], lineno, err);
			rc = -1;
			break;
		}
		if (kind != EVJSON_ENGINE) {
			fprintf(stderr, "cli_fixture: %s:%d: only engine events are supported\n",
			        argv[2], lineno);
			rc = -1;
			break;
		}
		if (run_deadlines(st, &cfg, ev.t_ms) < 0 || step(st, &cfg, &ev, "replay", line) < 0)
			rc = -1;
	}
	if (ferror(f)) {
		fprintf(stderr, "cli_fixture: reading %s: %s\n", argv[2], strerror(errno));
		rc = -1;
	}
	fclose(f);
	if (rc == 0 && store_flush(st, &state) < 0)
		rc = -1;
	store_close(st);
	return rc == 0 ? 0 : 1;
}
