/*
 * main.c - coverd: flags, start-up checks, the loop, a clean shutdown.
 *
 * coverd never forks into the background: under systemd (Type=notify) the supervisor
 * owns the process, and READY=1 tells it when the socket is served. Without -d or -f the
 * log goes to syslog, as a service's should; with them, to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "ipc.h"
#include "live.h"
#include "log.h"
#include "loop.h"
#include "paths.h"
#include "replay.h"
#include "sign.h"
#include "sync.h"
#include "watchdog.h"

enum { EXIT_USAGE = 2 };

struct opts {
	const char *config;        /* NULL: the default path */
	const char *state_dir;
	const char *replay;
	double speed;
	bool speed_given;
	bool check, debug, foreground, stay;
};

struct daemon {
	struct opts o;
	const char *config_path;
	struct loop *loop;
	struct core *core;
	struct ipc *ipc;
	struct live *live;
	struct replay *replay;
	struct sync *sync;          /* delivery, when [mqtt] enabled */
	struct sign_key *key;       /* the device's signing key, when delivering */
	struct watchdog *wd;
	struct loop_timer wd_timer;
	bool to_syslog;
	int exit_code;
};

/* A start-up failure: always on stderr, where whoever started coverd looks, and in
 * syslog too when that is where the log goes. */
static void startup_error(const struct daemon *d, const char *msg)
{
	fprintf(stderr, "coverd: %s\n", msg);
	if (d->to_syslog)
		log_warnx("%s", msg);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: coverd [-dfn] [-c FILE] [--state-dir DIR] [--replay FILE [--speed N|max] "
	        "[--stay]]\n"
	        "  -c, --config FILE   configuration file (default " COVERD_DEFAULT_CONFIG ")\n"
	        "      --state-dir DIR state directory, overrides [store] state_dir\n"
	        "  -n                  check the configuration, print it normalised, exit\n"
	        "  -d                  foreground, debug log to stderr\n"
	        "  -f                  foreground, log to stderr at the configured level\n"
	        "      --replay FILE   feed a scenario file (JSON Lines) through the engine\n"
	        "      --speed N|max   replay pace: N times the recorded pace (default 1), or max\n"
	        "      --stay          keep running after the replay ends\n"
	        "      --version       print the version and exit\n"
	        "  -h, --help          print this help and exit\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { OPT_STATE_DIR = 256, OPT_REPLAY, OPT_SPEED, OPT_STAY, OPT_VERSION };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "replay", required_argument, NULL, OPT_REPLAY },
		{ "speed", required_argument, NULL, OPT_SPEED },
		{ "stay", no_argument, NULL, OPT_STAY },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->speed = 1.0;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:dfnh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'd':
			o->debug = true;
			o->foreground = true;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'n':
			o->check = true;
			break;
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_REPLAY:
			o->replay = optarg;
			break;
		case OPT_SPEED:
			if (replay_parse_speed(optarg, &o->speed) != 0) {
				fprintf(stderr, "coverd: --speed %s: expected a positive number or "
				        "\"max\"\n", optarg);
				return EXIT_USAGE;
			}
			o->speed_given = true;
			break;
		case OPT_STAY:
			o->stay = true;
			break;
		case OPT_VERSION:
			printf("coverd %s\n", COVERD_VERSION);
			return -1;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "coverd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((o->speed_given || o->stay) && o->replay == NULL) {
		fprintf(stderr, "coverd: --speed and --stay only apply with --replay\n");
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * Reads the configuration: the explicit file must exist; the default one may be missing
 * (the daemon then runs on built-in defaults). *missing tells the caller which happened.
 */
static int load_config(const struct opts *o, const char *path, struct coverd_config *cfg,
                       bool *missing, char *err, size_t errlen)
{
	config_defaults(cfg);
	*missing = false;
	int r = config_load(cfg, path, err, errlen);
	if (r == -ENOENT && o->config == NULL) {
		config_defaults(cfg);
		*missing = true;
		r = 0;
	}
	if (r == 0 && o->state_dir != NULL) {
		if (o->state_dir[0] == '\0') {
			snprintf(err, errlen, "--state-dir: empty path");
			return -EINVAL;
		}
		if (strlen(o->state_dir) >= sizeof(cfg->state_dir)) {
			snprintf(err, errlen, "--state-dir %s: path too long", o->state_dir);
			return -ENAMETOOLONG;
		}
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", o->state_dir);
	}
	return r;
}

/* Creates the state directory when missing and checks that it can be used. */
static int check_state_dir(const char *dir, char *err, size_t errlen)
{
	struct stat sb;
	if (stat(dir, &sb) != 0) {
		if (errno != ENOENT) {
			int e = errno;
			snprintf(err, errlen, "state directory %s: %s", dir, strerror(e));
			return -e;
		}
		if (mkdir(dir, 0750) != 0) {
			int e = errno;
			snprintf(err, errlen, "state directory %s: cannot create it: %s", dir,
			         strerror(e));
			return -e;
		}
		return 0;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "state directory %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (access(dir, R_OK | W_OK | X_OK) != 0) {
		int e = errno;
		snprintf(err, errlen, "state directory %s: %s (coverd needs to read, write and "
		         "create files there)", dir, strerror(e));
		return -e;
	}
	return 0;
}

static void reload(struct daemon *d)
{
	struct coverd_config n;
	char err[1024];
	bool missing;
	int r = load_config(&d->o, d->config_path, &n, &missing, err, sizeof(err));
	if (r != 0) {
		log_warnx("reload: %s; keeping the old configuration", err);
		core_count(d->core, "config.reload_failed", 1);
		return;
	}
	/* Keys the backend set by command stay set over the file (sync/cmd.c). */
	if (sync_config_overlay(core_store(d->core), &n) < 0)
		log_warnx("reload: the configuration set by backend commands cannot be read");
	if (core_reload(d->core, &n) != 0) {
		core_count(d->core, "config.reload_failed", 1);
		return;
	}
	log_set_level(d->o.debug ? LOG_LVL_DEBUG : n.log_level);
	log_info("configuration reloaded from %s%s (log level %s)", d->config_path,
	         missing ? " (missing: built-in defaults)" : "", log_level_name(log_get_level()));
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	struct daemon *d = arg;
	if (signo == SIGHUP) {
		reload(d);
		return;
	}
	log_info("received %s; shutting down", signo == SIGTERM ? "SIGTERM" : "SIGINT");
	loop_stop(l);
}

static void on_watchdog(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct daemon *d = arg;
	int r = watchdog_pet(d->wd);
	if (r != 0)
		log_warnx("watchdog: keep-alive not sent: %s", strerror(-r));
}

static void on_replay_done(void *ctx, int status)
{
	struct daemon *d = ctx;
	if (status != 0) {
		d->exit_code = 1;
		loop_stop(d->loop);
		return;
	}
	if (d->o.stay) {
		log_info("replay finished; staying up (--stay)");
		return;
	}
	loop_stop(d->loop);
}

/* Adds the members of every part that has something to say to a status reply. */
static void status_hook(void *ctx, struct cJSON *status)
{
	struct daemon *d = ctx;
	if (d->live != NULL)
		live_status(d->live, status);
	if (d->sync != NULL)
		sync_status(d->sync, status);
}

/*
 * Delivery: the signing key is loaded (or created, 0600) and given to the store before
 * any event is processed, so no record is ever committed unsigned; a key that group or
 * others can read stops the start (invariant 6).
 */
static int start_sync(struct daemon *d, const struct coverd_config *cfg, char *err,
                      size_t errlen)
{
	char path[CONFIG_PATH_MAX + 32];
	sync_key_path(cfg, path, sizeof(path));
	char why[512];
	int r = sign_key_load_or_create(path, &d->key, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "signing key: %s", why);
		return r;
	}
	if (r == 1)
		log_info("created the device signing key %s (enrol it: coverctl key --public)", path);
	core_set_signer(d->core, sign_body, d->key);
	r = sync_new(&d->sync, d->core, d->loop, cfg, d->key, err, errlen);
	if (r != 0)
		return r;
	core_set_commit_hook(d->core, sync_on_commit, d->sync);
	return 0;
}

static int run(struct daemon *d, const struct coverd_config *cfg)
{
	char err[1024];
	int r = check_state_dir(cfg->state_dir, err, sizeof(err));
	if (r != 0) {
		startup_error(d, err);
		return 1;
	}
	if ((r = loop_new(&d->loop)) != 0) {
		snprintf(err, sizeof(err), "event loop: %s", strerror(-r));
		startup_error(d, err);
		return 1;
	}
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	if ((r = loop_signals(d->loop, sigs, 3, on_signal, d)) != 0) {
		snprintf(err, sizeof(err), "signals: %s", strerror(-r));
		startup_error(d, err);
		return 1;
	}
	if (core_new(&d->core, cfg, d->loop, err, sizeof(err)) != 0) {
		startup_error(d, err);
		return 1;
	}
	struct coverd_config eff = *cfg;
	r = sync_config_overlay(core_store(d->core), &eff);
	if (r < 0)
		log_warnx("the configuration set by backend commands cannot be read: %s",
		          store_errmsg(core_store(d->core)));
	else if (r > 0 && core_reload(d->core, &eff) == 0)
		log_info("%d configuration key%s set by backend commands applied over %s", r,
		         r == 1 ? "" : "s", d->config_path);
	if (cfg->mqtt_enabled && start_sync(d, cfg, err, sizeof(err)) != 0) {
		startup_error(d, err);
		return 1;
	}
	char sock[CONFIG_PATH_MAX];
	config_socket_path(cfg, sock, sizeof(sock));
	if (ipc_new(&d->ipc, d->core, d->loop, sock, cfg->socket_mode, err, sizeof(err)) != 0) {
		startup_error(d, err);
		return 1;
	}
	/* A test hook (docs/ipc.md, "Testing retries"): the service runs without -f or -d, so
	 * an environment variable left behind cannot arm it there. */
	const char *kill_id = getenv("COVERD_TEST_KILL_BEFORE_REPLY");
	if (kill_id != NULL && kill_id[0] != '\0') {
		if (!d->o.foreground)
			log_warnx("COVERD_TEST_KILL_BEFORE_REPLY is set but ignored: the test hook "
			          "works only in the foreground (-f or -d)");
		else if (ipc_set_test_kill(d->ipc, kill_id) != 0)
			log_warnx("COVERD_TEST_KILL_BEFORE_REPLY: not a request id; ignored");
		else
			log_warnx("test hook armed: coverd kills itself after committing request %s "
			          "and before replying (COVERD_TEST_KILL_BEFORE_REPLY)", kill_id);
	}
	if (d->o.replay != NULL) {
		r = replay_new(&d->replay, d->o.replay, d->o.speed, d->core, d->loop, on_replay_done,
		               d, err, sizeof(err));
		if (r == 0)
			r = replay_start(d->replay);
		if (r != 0) {
			startup_error(d, err);
			return 1;
		}
	} else {
		if (live_new(&d->live, d->core, d->loop, cfg, "none", err, sizeof(err)) != 0) {
			startup_error(d, err);
			return 1;
		}
	}
	ipc_set_status_hook(d->ipc, status_hook, d);

	/* Delivery runs in replay mode too, so a demo replay is delivered. */
	if (d->sync != NULL && (r = sync_start(d->sync)) != 0) {
		snprintf(err, sizeof(err), "MQTT: %s", strerror(-r));
		startup_error(d, err);
		return 1;
	}

	r = watchdog_new_auto(&d->wd);
	if (r != 0) {
		log_warnx("watchdog: $NOTIFY_SOCKET unusable (%s); not notifying", strerror(-r));
		if (watchdog_new(&d->wd, "none") != 0)
			return 1;
	}
	loop_timer_init(&d->wd_timer, on_watchdog, d);
	if (watchdog_interval_ms(d->wd) > 0)
		(void)loop_timer_after(d->loop, &d->wd_timer, watchdog_interval_ms(d->wd),
		                       watchdog_interval_ms(d->wd));
	if ((r = watchdog_ready(d->wd)) != 0)
		log_warnx("watchdog: READY=1 not sent: %s", strerror(-r));
	log_info("coverd %s serving %s (state %s, device %s, gnss %s)", COVERD_VERSION, sock,
	         cfg->state_dir, cfg->engine.device_id, d->o.replay ? "replay" : cfg->gnss_source);

	r = loop_run(d->loop);
	if (r != 0) {
		log_warnx("event loop failed: %s", strerror(-r));
		d->exit_code = 1;
	}
	/* Say goodbye to the broker (retained offline status, clean DISCONNECT), bounded so
	 * a dead link cannot hold the shutdown up. */
	sync_shutdown(d->sync, 2000);
	(void)watchdog_stopping(d->wd);
	return d->exit_code;
}

static void teardown(struct daemon *d)
{
	live_free(d->live);
	ipc_free(d->ipc);
	if (d->core != NULL)
		core_set_commit_hook(d->core, NULL, NULL);
	sync_free(d->sync);
	/* core_free flushes the buffered track points and the state before closing. */
	core_free(d->core);
	sign_key_free(d->key);
	replay_free(d->replay);
	if (d->loop != NULL)
		loop_timer_stop(d->loop, &d->wd_timer);
	watchdog_free(d->wd);
	loop_free(d->loop);
}

int main(int argc, char **argv)
{
	struct daemon d;
	memset(&d, 0, sizeof(d));
	int r = parse_opts(argc, argv, &d.o);
	if (r != 0)
		return r < 0 ? 0 : r;
	log_init("coverd", 0, d.o.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);

	d.config_path = d.o.config != NULL ? d.o.config : COVERD_DEFAULT_CONFIG;
	struct coverd_config cfg;
	char err[1024];
	bool missing;
	if (load_config(&d.o, d.config_path, &cfg, &missing, err, sizeof(err)) != 0) {
		fprintf(stderr, "coverd: %s\n", err);
		return 1;
	}
	if (d.o.check) {
		if (missing)
			fprintf(stderr, "coverd: %s not found; these are the built-in defaults\n",
			        d.config_path);
		if (config_print(&cfg, stdout) != 0 || fflush(stdout) != 0) {
			fprintf(stderr, "coverd: cannot print the configuration\n");
			return 1;
		}
		return 0;
	}

	d.to_syslog = !d.o.foreground && cfg.log_syslog;
	log_init("coverd", d.to_syslog, d.o.debug ? LOG_LVL_DEBUG : cfg.log_level);
	if (missing)
		log_info("no configuration file at %s; running with built-in defaults",
		         d.config_path);
	/* A client that disconnects mid-reply must not kill the daemon; sends use
	 * MSG_NOSIGNAL, and this covers any write that does not. */
	signal(SIGPIPE, SIG_IGN);

	d.exit_code = 0;
	int code = run(&d, &cfg);
	teardown(&d);
	if (code == 0)
		log_info("stopped");
	return code;
}
