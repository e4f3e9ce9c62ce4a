/*
 * test_config.c - the configuration file: defaults, durations, every key's parsing and
 * range, every error naming the file, line and key, and the print/load round trip.
 * Files are real files in a temporary directory, read through config_load() as the
 * daemon reads them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char tmpdir[256];
static char conf_path[300];

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/coverd-test-config-XXXXXX",
	         base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/coverd.conf", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(conf_path);
	return rmdir(tmpdir);
}

static void write_conf(const char *text)
{
	FILE *fp = fopen(conf_path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Loads text over the defaults; returns the result and leaves the reason in err. */
static int load_text(const char *text, struct coverd_config *cfg, char *err, size_t errlen)
{
	write_conf(text);
	config_defaults(cfg);
	return config_load(cfg, conf_path, err, errlen);
}

static char *print_to_string(const struct coverd_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	assert_non_null(fp);
	assert_int_equal(config_print(cfg, fp), 0);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

/*
 * Expects text to be refused with "<conf_path>:<want>" (want starts with the line),
 * and the configuration passed in to be left exactly as it was.
 */
static void expect_error(const char *text, const char *want)
{
	struct coverd_config cfg, before;
	char err[512];
	write_conf(text);
	config_defaults(&cfg);
	before = cfg;
	int r = config_load(&cfg, conf_path, err, sizeof(err));
	char full[800];
	snprintf(full, sizeof(full), "%s%s", conf_path, want);
	if (r != -EINVAL || strcmp(err, full) != 0)
		fail_msg("config:\n%s\n  want (-EINVAL): %s\n  got (%d):      %s", text, full, r, err);
	assert_memory_equal(&cfg, &before, sizeof(cfg));
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
	(void)state;
	struct coverd_config cfg;
	memset(&cfg, 0x77, sizeof(cfg));
	config_defaults(&cfg);
	assert_string_equal(cfg.engine.device_id, "coverd-dev");
	assert_string_equal(cfg.board, "generic");
	assert_int_equal(cfg.engine.trigger, TRIGGER_JOB);
	assert_int_equal(cfg.engine.gap_end_ms, 10 * 60 * 1000);
	assert_int_equal(cfg.engine.idle_end_ms, 30 * 60 * 1000);
	assert_int_equal(cfg.engine.app_silence_ms, 5 * 60 * 1000);
	assert_int_equal(cfg.engine.max_session_ms, 16 * 3600 * 1000);
	assert_int_equal(cfg.engine.min_cover_ms, 60 * 60 * 1000);
	assert_int_equal(cfg.engine.unit_ms, 3600 * 1000);
	assert_true(cfg.engine.move_speed_mps == 2.0);
	assert_true(cfg.engine.max_eph_m == 50.0);
	assert_true(cfg.engine.max_jump_mps == 90.0);
	assert_int_equal(cfg.engine.max_fix_gap_ms, 30 * 1000);
	assert_string_equal(cfg.state_dir, "/var/lib/coverd");
	assert_int_equal(cfg.track_flush_ms, 30 * 1000);
	assert_string_equal(cfg.socket_path, "");
	assert_int_equal(cfg.socket_mode, 0660);
	assert_string_equal(cfg.gnss_source, "gpsd");
	assert_string_equal(cfg.gpsd_host, "127.0.0.1");
	assert_string_equal(cfg.gpsd_port, "2947");
	assert_int_equal(cfg.fix_stale_ms, 2 * 60 * 1000);
	assert_int_equal(cfg.log_level, LOG_LVL_INFO);
	assert_true(cfg.log_syslog);
	assert_false(cfg.mqtt_enabled);
	assert_string_equal(cfg.mqtt_host, "");
	assert_int_equal(cfg.mqtt_port, 8883);
	assert_int_equal(cfg.mqtt_protocol, 5);
	assert_int_equal(cfg.mqtt_keepalive_s, 30);
	assert_string_equal(cfg.mqtt_ca_file, "");
	assert_string_equal(cfg.mqtt_cert_file, "");
	assert_string_equal(cfg.mqtt_key_file, "");
	assert_string_equal(cfg.mqtt_tls_server_name, "");
	assert_false(cfg.mqtt_insecure_plaintext);
	assert_int_equal(cfg.mqtt_inflight, 32);
	assert_int_equal(cfg.mqtt_backoff_min_ms, 1000);
	assert_int_equal(cfg.mqtt_backoff_max_ms, 5 * 60 * 1000);
	assert_string_equal(cfg.signing_key_file, "");
	assert_int_equal(cfg.outbox_max_rows, 100000);

	/* The defaults pass the engine's own check. */
	const char *why = NULL;
	assert_int_equal(engine_config_check(&cfg.engine, &why), 0);

	char buf[CONFIG_PATH_MAX + 32];
	config_socket_path(&cfg, buf, sizeof(buf));
	assert_string_equal(buf, "/var/lib/coverd/coverd.sock");
	snprintf(cfg.socket_path, sizeof(cfg.socket_path), "/run/coverd.sock");
	config_socket_path(&cfg, buf, sizeof(buf));
	assert_string_equal(buf, "/run/coverd.sock");
}

/* An empty file, and one of only comments, give exactly the defaults. */
static void test_empty_file(void **state)
{
	(void)state;
	struct coverd_config cfg, def;
	char err[512];
	config_defaults(&def);
	char *want = print_to_string(&def);

	assert_int_equal(load_text("", &cfg, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	char *got = print_to_string(&cfg);
	assert_string_equal(got, want);
	free(got);

	assert_int_equal(load_text("# comment\n; another\n\n   \n[engine]\n[mqtt]\n", &cfg, err,
	                           sizeof(err)), 0);
	got = print_to_string(&cfg);
	assert_string_equal(got, want);
	free(got);
	free(want);
}

/* ------------------------------------------------------------ durations */

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t ms;
		const char *norm;
	} ok[] = {
		{ "0", 0, "0s" },
		{ "90", 90000, "90s" },
		{ "90s", 90000, "90s" },
		{ "60", 60000, "1m" },
		{ "10m", 600000, "10m" },
		{ "600s", 600000, "10m" },
		{ "16h", 57600000, "16h" },
		{ "960m", 57600000, "16h" },
		{ "90m", 5400000, "90m" },
		{ "250ms", 250, "250ms" },
		{ "1000ms", 1000, "1s" },
		{ "1500ms", 1500, "1500ms" },
		{ "3600000ms", 3600000, "1h" },
		{ "007s", 7000, "7s" },
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t ms = -1;
		if (config_parse_duration(ok[i].s, &ms) != 0)
			fail_msg("\"%s\" refused", ok[i].s);
		assert_int_equal(ms, ok[i].ms);
		config_format_duration(ms, buf, sizeof(buf));
		assert_string_equal(buf, ok[i].norm);
		int64_t back = -1;
		assert_int_equal(config_parse_duration(buf, &back), 0);
		assert_int_equal(back, ms);
	}
	static const char *const bad[] = {
		"", "s", "m", "-5s", "+5s", " 5s", "5 s", "5s ", "5x", "5sec", "1.5h", "5S", "5H",
		"ten", "1d", "9223372036854775808", "9223372036854775807s", "99999999999999999h",
		"0x10", "5ms5",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 42;
		if (config_parse_duration(bad[i], &ms) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(ms, 42);
	}
	int64_t ms;
	assert_int_equal(config_parse_duration("9223372036854775807ms", &ms), 0);
	assert_int_equal(ms, INT64_MAX);
	config_format_duration(INT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "9223372036854775807ms");
}

/* ------------------------------------------------------------ every key */

static const char full_conf[] =
	"# every key set to something other than its default\n"
	"[device]\n"
	"id = van-0042\n"
	"board = rpi4\n"
	"\n"
	"[engine]\n"
	"trigger = motion\n"
	"gap_end = 15m\n"
	"idle_end = 45m\n"
	"app_silence = 2m\n"
	"max_session = 12h\n"
	"min_cover = 30m\n"
	"activation_length = 30m\n"
	"move_speed = 1.5\n"
	"max_eph = 25.5\n"
	"max_jump_speed = 70\n"
	"max_fix_gap = 1m\n"
	"\n"
	"  [store]\n"
	"  state_dir = /data/coverd\n"
	"  track_flush = 5s\n"
	"[ipc]\n"
	"socket = /run/coverd/coverd.sock\n"
	"mode = 0600\n"
	"[gnss]\n"
	"source = app\n"
	"gpsd_host = gps.local\n"
	"gpsd_port = 2948\n"
	"fix_stale = 90\n"
	"[log]\n"
	"level = debug\n"
	"syslog = off\n"
	"[mqtt]\n"
	"enabled = true\n"
	"host = mqtt.example.com\n"
	"port = 8884\n"
	"protocol = 3.1.1\n"
	"keepalive = 1m\n"
	"ca_file = /etc/coverd/ca.pem\n"
	"cert_file = /etc/coverd/device.crt\n"
	"key_file = /etc/coverd/device.key\n"
	"tls_server_name = broker.example.com\n"
	"insecure_plaintext = no\n"
	"inflight = 8\n"
	"backoff_min = 500ms\n"
	"backoff_max = 10m\n"
	"signing_key = /data/coverd/sign.key ; inline comment\n"
	"outbox_max_rows = 5000\n";

static void test_every_key(void **state)
{
	(void)state;
	struct coverd_config cfg;
	char err[512];
	int r = load_text(full_conf, &cfg, err, sizeof(err));
	if (r != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg.engine.device_id, "van-0042");
	assert_string_equal(cfg.board, "rpi4");
	assert_int_equal(cfg.engine.trigger, TRIGGER_MOTION);
	assert_int_equal(cfg.engine.gap_end_ms, 15 * 60000);
	assert_int_equal(cfg.engine.idle_end_ms, 45 * 60000);
	assert_int_equal(cfg.engine.app_silence_ms, 2 * 60000);
	assert_int_equal(cfg.engine.max_session_ms, 12 * 3600000);
	assert_int_equal(cfg.engine.min_cover_ms, 30 * 60000);
	assert_int_equal(cfg.engine.unit_ms, 30 * 60000);
	assert_true(cfg.engine.move_speed_mps == 1.5);
	assert_true(cfg.engine.max_eph_m == 25.5);
	assert_true(cfg.engine.max_jump_mps == 70);
	assert_int_equal(cfg.engine.max_fix_gap_ms, 60000);
	assert_string_equal(cfg.state_dir, "/data/coverd");
	assert_int_equal(cfg.track_flush_ms, 5000);
	assert_string_equal(cfg.socket_path, "/run/coverd/coverd.sock");
	assert_int_equal(cfg.socket_mode, 0600);
	assert_string_equal(cfg.gnss_source, "app");
	assert_string_equal(cfg.gpsd_host, "gps.local");
	assert_string_equal(cfg.gpsd_port, "2948");
	assert_int_equal(cfg.fix_stale_ms, 90000);
	assert_int_equal(cfg.log_level, LOG_LVL_DEBUG);
	assert_false(cfg.log_syslog);
	assert_true(cfg.mqtt_enabled);
	assert_string_equal(cfg.mqtt_host, "mqtt.example.com");
	assert_int_equal(cfg.mqtt_port, 8884);
	assert_int_equal(cfg.mqtt_protocol, 311);
	assert_int_equal(cfg.mqtt_keepalive_s, 60);
	assert_string_equal(cfg.mqtt_ca_file, "/etc/coverd/ca.pem");
	assert_string_equal(cfg.mqtt_cert_file, "/etc/coverd/device.crt");
	assert_string_equal(cfg.mqtt_key_file, "/etc/coverd/device.key");
	assert_string_equal(cfg.mqtt_tls_server_name, "broker.example.com");
	assert_false(cfg.mqtt_insecure_plaintext);
	assert_int_equal(cfg.mqtt_inflight, 8);
	assert_int_equal(cfg.mqtt_backoff_min_ms, 500);
	assert_int_equal(cfg.mqtt_backoff_max_ms, 600000);
	assert_string_equal(cfg.signing_key_file, "/data/coverd/sign.key");
	assert_int_equal(cfg.outbox_max_rows, 5000);

	/* Printing gives every key with normalised values, and loading that again gives
	 * the same configuration: load(print(load(x))) == load(x). */
	char *printed = print_to_string(&cfg);
	assert_non_null(strstr(printed, "[engine]\ntrigger = motion\ngap_end = 15m\n"));
	assert_non_null(strstr(printed, "fix_stale = 90s\n"));
	assert_non_null(strstr(printed, "mode = 0600\n"));
	assert_non_null(strstr(printed, "syslog = no\n"));
	assert_non_null(strstr(printed, "protocol = 3.1.1\n"));
	assert_non_null(strstr(printed, "keepalive = 1m\n"));
	assert_non_null(strstr(printed, "backoff_min = 500ms\n"));
	struct coverd_config again;
	r = load_text(printed, &again, err, sizeof(err));
	if (r != 0)
		fail_msg("%s\n%s", err, printed);
	char *printed2 = print_to_string(&again);
	assert_string_equal(printed, printed2);
	assert_memory_equal(&cfg.engine, &again.engine, sizeof(cfg.engine));
	assert_int_equal(cfg.mqtt_protocol, again.mqtt_protocol);
	assert_int_equal(cfg.socket_mode, again.socket_mode);
	free(printed);
	free(printed2);
}

/* The accepted spellings of each kind of value. */
static void test_value_spellings(void **state)
{
	(void)state;
	struct coverd_config cfg;
	char err[512];
	static const struct {
		const char *v;
		bool b;
	} bools[] = {
		{ "yes", true }, { "true", true }, { "on", true }, { "1", true },
		{ "no", false }, { "false", false }, { "off", false }, { "0", false },
	};
	char text[256];
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(text, sizeof(text), "[log]\nsyslog = %s\n", bools[i].v);
		assert_int_equal(load_text(text, &cfg, err, sizeof(err)), 0);
		assert_int_equal(cfg.log_syslog, bools[i].b);
	}
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "[log]\nlevel = %s\n", levels[i]);
		assert_int_equal(load_text(text, &cfg, err, sizeof(err)), 0);
		assert_int_equal(cfg.log_level, i);
	}
	static const char *const triggers[] = { "job", "online", "motion" };
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "[engine]\ntrigger = %s\n", triggers[i]);
		assert_int_equal(load_text(text, &cfg, err, sizeof(err)), 0);
		assert_int_equal(cfg.engine.trigger, i);
	}
	static const char *const sources[] = { "gpsd", "app", "none" };
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "[gnss]\nsource = %s\n", sources[i]);
		assert_int_equal(load_text(text, &cfg, err, sizeof(err)), 0);
		assert_string_equal(cfg.gnss_source, sources[i]);
	}
	assert_int_equal(load_text("[ipc]\nmode = 660\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.socket_mode, 0660);
	assert_int_equal(load_text("[ipc]\nmode = 0\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.socket_mode, 0);
	assert_int_equal(load_text("[mqtt]\nprotocol = 5\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.mqtt_protocol, 5);
	assert_int_equal(load_text("[gnss]\ngpsd_port = 00080\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.gpsd_port, "80");
	/* "key: value" is inih's concession to Python's configparser; it is harmless. */
	assert_int_equal(load_text("[engine]\ngap_end: 7m\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.engine.gap_end_ms, 7 * 60000);
	/* Plaintext is allowed to a loopback broker only. */
	assert_int_equal(load_text("[mqtt]\nenabled = yes\nhost = 127.0.0.1\ninsecure_plaintext = yes\n",
	                           &cfg, err, sizeof(err)), 0);
	assert_true(cfg.mqtt_insecure_plaintext);
	assert_int_equal(load_text("[mqtt]\nenabled = yes\nhost = localhost\ninsecure_plaintext = yes\n",
	                           &cfg, err, sizeof(err)), 0);
	/* Disabled MQTT needs no host or certificates. */
	assert_int_equal(load_text("[mqtt]\nenabled = no\nhost =\n", &cfg, err, sizeof(err)), 0);
	/* A UTF-8 byte order mark before the first section is skipped. */
	assert_int_equal(load_text("\xef\xbb\xbf[engine]\ngap_end = 3m\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.engine.gap_end_ms, 3 * 60000);
	/* Windows line ends are accepted. */
	assert_int_equal(load_text("[engine]\r\ngap_end = 4m\r\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.engine.gap_end_ms, 4 * 60000);
}

/* A file loads over what the caller already set, and sets only the keys it names. */
static void test_load_over_existing(void **state)
{
	(void)state;
	struct coverd_config cfg;
	char err[512];
	config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "/tmp/elsewhere");
	write_conf("[engine]\ngap_end = 20m\n");
	assert_int_equal(config_load(&cfg, conf_path, err, sizeof(err)), 0);
	assert_string_equal(cfg.state_dir, "/tmp/elsewhere");
	assert_int_equal(cfg.engine.gap_end_ms, 20 * 60000);
	assert_int_equal(cfg.engine.idle_end_ms, 30 * 60000);
}

/* ------------------------------------------------------------ errors */

/* A rule broken by values that did not come from the file has no line to name. */
static void test_error_without_line(void **state)
{
	(void)state;
	struct coverd_config cfg, before;
	char err[512], want[512];
	write_conf("[log]\nlevel = info\n");
	config_defaults(&cfg);
	cfg.engine.gap_end_ms = 20 * 3600 * 1000;
	before = cfg;
	assert_int_equal(config_load(&cfg, conf_path, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: [engine]: gap_end must be shorter than max_session",
	         conf_path);
	assert_string_equal(err, want);
	assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_errors_structure(void **state)
{
	(void)state;
	expect_error("[engine]\ngap_end = 10m\n[engine]\ngap_end = 11m\n",
	             ":4: [engine] gap_end: duplicate key (first set at line 2)");
	expect_error("[log]\nlevel = info\nlevel = info\n",
	             ":3: [log] level: duplicate key (first set at line 2)");
	expect_error("[engine]\ngap = 10m\n", ":2: [engine] \"gap\": unknown key (see coverd.conf(5))");
	expect_error("[mqtt]\nmode = 0660\n", ":2: [mqtt] \"mode\": unknown key (see coverd.conf(5))");
	expect_error("[Engine]\ngap_end = 10m\n",
	             ":1: unknown section [Engine] (known: device, engine, store, ipc, gnss, log, mqtt)");
	/* An unknown section is refused even when it holds no key. */
	expect_error("[engine]\ngap_end = 1m\n\n[gps]\n",
	             ":4: unknown section [gps] (known: device, engine, store, ipc, gnss, log, mqtt)");
	expect_error("gap_end = 10m\n[engine]\n", ":1: \"gap_end\": key outside a section");
	expect_error("[engine]\ngap_end 10m\n",
	             ":2: syntax error: expected \"key = value\", \"[section]\" or a comment");
	expect_error("[engine\ngap_end = 10m\n",
	             ":1: syntax error: expected \"key = value\", \"[section]\" or a comment");
	/* The first error wins, whether it is inih's or ours. */
	expect_error("[engine]\nbroken line\ngap = 1\n",
	             ":2: syntax error: expected \"key = value\", \"[section]\" or a comment");
	expect_error("[engine]\ngap = 1\nbroken line\n",
	             ":2: [engine] \"gap\": unknown key (see coverd.conf(5))");
	/* An indented line is a key of its own, not a continuation of the previous value. */
	expect_error("[engine]\ngap_end = 10m\n    more\n",
	             ":3: syntax error: expected \"key = value\", \"[section]\" or a comment");

	/* A line longer than inih's buffer is refused, not split. */
	char text[1200];
	char path[1000];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "[store]\nstate_dir = %s\n", path);
	struct coverd_config cfg;
	char err[512];
	assert_int_equal(load_text(text, &cfg, err, sizeof(err)), -EINVAL);
	char want[512];
	snprintf(want, sizeof(want), "%s:2: line too long (limit ", conf_path);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void test_errors_values(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		/* [device] */
		{ "[device]\nid =\n", ":2: [device] id: a value is required" },
		{ "[device]\nid = van 42\n",
		  ":2: [device] id: \"van 42\" may contain only letters, digits, '.', '_' and '-', and "
		  "must start with a letter or digit" },
		{ "[device]\nid = coverd/dev\n",
		  ":2: [device] id: \"coverd/dev\" may contain only letters, digits, '.', '_' and '-', "
		  "and must start with a letter or digit" },
		{ "[device]\nid = -dev\n",
		  ":2: [device] id: \"-dev\" may contain only letters, digits, '.', '_' and '-', and "
		  "must start with a letter or digit" },
		{ "[device]\nid = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		  ":2: [device] id: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is too long "
		  "(limit 47 characters)" },
		/* [engine] */
		{ "[engine]\ntrigger = always\n",
		  ":2: [engine] trigger: \"always\" is not a trigger (job, online or motion)" },
		{ "[engine]\n\ngap_end = ten\n",
		  ":3: [engine] gap_end: \"ten\" is not a duration (a whole number with ms, s, m or h, "
		  "e.g. 10m)" },
		{ "[engine]\ngap_end = 0\n", ":2: [engine] gap_end: 0 is out of range [1s, 24h]" },
		{ "[engine]\ngap_end = 25h\n", ":2: [engine] gap_end: 25h is out of range [1s, 24h]" },
		{ "[engine]\nidle_end = 999ms\n", ":2: [engine] idle_end: 999ms is out of range [1s, 24h]" },
		{ "[engine]\napp_silence = -1m\n",
		  ":2: [engine] app_silence: \"-1m\" is not a duration (a whole number with ms, s, m or "
		  "h, e.g. 10m)" },
		{ "[engine]\nmax_session = 30s\n", ":2: [engine] max_session: 30s is out of range [1m, 168h]" },
		{ "[engine]\nmin_cover = 25h\n", ":2: [engine] min_cover: 25h is out of range [1s, 24h]" },
		{ "[engine]\nmin_cover = 0\n", ":2: [engine] min_cover: 0 is out of range [1s, 24h]" },
		{ "[engine]\nactivation_length = 59s\n",
		  ":2: [engine] activation_length: 59s is out of range [1m, 24h]" },
		{ "[engine]\nmove_speed = 0\n",
		  ":2: [engine] move_speed: 0 is out of range (must be > 0 and < 100)" },
		{ "[engine]\nmove_speed = 100\n",
		  ":2: [engine] move_speed: 100 is out of range (must be > 0 and < 100)" },
		{ "[engine]\nmove_speed = fast\n", ":2: [engine] move_speed: \"fast\" is not a number" },
		{ "[engine]\nmove_speed = nan\n", ":2: [engine] move_speed: \"nan\" is not a number" },
		{ "[engine]\nmove_speed = inf\n", ":2: [engine] move_speed: \"inf\" is not a number" },
		{ "[engine]\nmove_speed = 0x2\n", ":2: [engine] move_speed: \"0x2\" is not a number" },
		{ "[engine]\nmove_speed = 2 m/s\n", ":2: [engine] move_speed: \"2 m/s\" is not a number" },
		{ "[engine]\nmax_eph = -5\n",
		  ":2: [engine] max_eph: -5 is out of range (must be > 0 and <= 100000)" },
		{ "[engine]\nmax_jump_speed = 1e9\n",
		  ":2: [engine] max_jump_speed: 1e9 is out of range (must be > 0 and <= 10000)" },
		{ "[engine]\nmax_fix_gap = 2d\n",
		  ":2: [engine] max_fix_gap: \"2d\" is not a duration (a whole number with ms, s, m or "
		  "h, e.g. 10m)" },
		/* cross-key rules name the later of the two lines */
		{ "[engine]\nmin_cover = 2h\n",
		  ":2: [engine] min_cover: min_cover (2h) must not exceed activation_length (1h)" },
		{ "[engine]\nmin_cover = 30m\nactivation_length = 20m\n",
		  ":3: [engine] activation_length: min_cover (30m) must not exceed activation_length "
		  "(20m)" },
		{ "[engine]\nmax_session = 49h\n",
		  ":2: [engine] max_session: max_session (49h) must not exceed 48 activations of "
		  "activation_length (1h)" },
		/* rules that engine_config_check() holds, named by the key it mentions */
		{ "[engine]\nmove_speed = 50\nmax_jump_speed = 40\n",
		  ":3: [engine] max_jump_speed: max_jump_speed must be finite and above move_speed" },
		{ "[engine]\nmax_jump_speed = 40\nmove_speed = 50\n",
		  ":3: [engine] move_speed: max_jump_speed must be finite and above move_speed" },
		{ "[engine]\nmax_session = 10m\n",
		  ":2: [engine] max_session: gap_end must be shorter than max_session" },
		/* [store] */
		{ "[store]\nstate_dir =\n", ":2: [store] state_dir: a value is required" },
		{ "[store]\nstate_dir = var/lib/coverd\n",
		  ":2: [store] state_dir: \"var/lib/coverd\" is not an absolute path" },
		{ "[store]\ntrack_flush = 50ms\n", ":2: [store] track_flush: 50ms is out of range [100ms, 1h]" },
		/* [ipc] */
		{ "[ipc]\nsocket = coverd.sock\n", ":2: [ipc] socket: \"coverd.sock\" is not an absolute path" },
		{ "[ipc]\nmode = 0888\n", ":2: [ipc] mode: \"0888\" is not an octal file mode (e.g. 0660)" },
		{ "[ipc]\nmode = rw-rw----\n",
		  ":2: [ipc] mode: \"rw-rw----\" is not an octal file mode (e.g. 0660)" },
		{ "[ipc]\nmode = 1777\n", ":2: [ipc] mode: 1777 is out of range [0000, 0777]" },
		{ "[ipc]\nmode = 00660\n", ":2: [ipc] mode: \"00660\" is not an octal file mode (e.g. 0660)" },
		/* [gnss] */
		{ "[gnss]\nsource = nmea\n", ":2: [gnss] source: \"nmea\" is not a GNSS source (gpsd, app or none)" },
		{ "[gnss]\ngpsd_host =\n", ":2: [gnss] gpsd_host: a value is required" },
		{ "[gnss]\ngpsd_host = gps host\n", ":2: [gnss] gpsd_host: \"gps host\" is not a host name or address" },
		{ "[gnss]\ngpsd_port = 0\n", ":2: [gnss] gpsd_port: 0 is out of range [1, 65535]" },
		{ "[gnss]\ngpsd_port = 65536\n", ":2: [gnss] gpsd_port: 65536 is out of range [1, 65535]" },
		{ "[gnss]\ngpsd_port = gpsd\n", ":2: [gnss] gpsd_port: \"gpsd\" is not a whole number" },
		{ "[gnss]\nfix_stale = 0s\n", ":2: [gnss] fix_stale: 0s is out of range [1s, 24h]" },
		/* [log] */
		{ "[log]\nlevel = verbose\n",
		  ":2: [log] level: \"verbose\" is not a log level (error, warn, info or debug)" },
		{ "[log]\nsyslog = maybe\n",
		  ":2: [log] syslog: \"maybe\" is not a boolean (yes, no, true, false, on, off, 1, 0)" },
		{ "[log]\nsyslog = YES\n",
		  ":2: [log] syslog: \"YES\" is not a boolean (yes, no, true, false, on, off, 1, 0)" },
		/* [mqtt] */
		{ "[mqtt]\nport = 0\n", ":2: [mqtt] port: 0 is out of range [1, 65535]" },
		{ "[mqtt]\nport = 1883.5\n", ":2: [mqtt] port: \"1883.5\" is not a whole number" },
		{ "[mqtt]\nport = 99999999999999999999\n",
		  ":2: [mqtt] port: \"99999999999999999999\" is not a whole number" },
		{ "[mqtt]\nprotocol = 3\n", ":2: [mqtt] protocol: \"3\" is not an MQTT protocol version (5 or 3.1.1)" },
		{ "[mqtt]\nkeepalive = 2s\n", ":2: [mqtt] keepalive: 2s is out of range [5s, 65535s]" },
		{ "[mqtt]\nkeepalive = 19h\n", ":2: [mqtt] keepalive: 19h is out of range [5s, 65535s]" },
		{ "[mqtt]\nkeepalive = 5500ms\n", ":2: [mqtt] keepalive: 5500ms is not a whole number of seconds" },
		{ "[mqtt]\nca_file = ca.pem\n", ":2: [mqtt] ca_file: \"ca.pem\" is not an absolute path" },
		{ "[mqtt]\ninflight = 0\n", ":2: [mqtt] inflight: 0 is out of range [1, 65535]" },
		{ "[mqtt]\nbackoff_min = 50ms\n", ":2: [mqtt] backoff_min: 50ms is out of range [100ms, 1h]" },
		{ "[mqtt]\nbackoff_max = 2s\nbackoff_min = 3s\n",
		  ":3: [mqtt] backoff_min: backoff_min (3s) must not exceed backoff_max (2s)" },
		{ "[mqtt]\noutbox_max_rows = -1\n", ":2: [mqtt] outbox_max_rows: -1 is out of range [1, 1000000000]" },
		{ "[mqtt]\nenabled = yes\n", ":2: [mqtt] host: required when [mqtt] enabled = yes" },
		{ "[mqtt]\nenabled = yes\nhost = broker\n",
		  ":2: [mqtt] ca_file: required for mutual TLS when [mqtt] enabled = yes" },
		{ "[mqtt]\nenabled = yes\nhost = broker\nca_file = /ca.pem\n",
		  ":2: [mqtt] cert_file: required for mutual TLS when [mqtt] enabled = yes" },
		{ "[mqtt]\nenabled = yes\nhost = broker\nca_file = /ca.pem\ncert_file = /c.pem\n",
		  ":2: [mqtt] key_file: required for mutual TLS when [mqtt] enabled = yes" },
		{ "[mqtt]\nenabled = yes\nhost = broker.example.com\ninsecure_plaintext = yes\n",
		  ":4: [mqtt] insecure_plaintext: insecure_plaintext is allowed only to a loopback host "
		  "(127.0.0.1, ::1, localhost), not \"broker.example.com\"" },
		{ "[mqtt]\ninsecure_plaintext = yes\nenabled = yes\nhost = 10.0.0.1\n",
		  ":4: [mqtt] host: insecure_plaintext is allowed only to a loopback host "
		  "(127.0.0.1, ::1, localhost), not \"10.0.0.1\"" },
		/* hostile values are shown escaped */
		{ "[log]\nlevel = \x1b[31mred\n",
		  ":2: [log] level: \"\\x1b[31mred\" is not a log level (error, warn, info or debug)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].text, cases[i].err);
}

static void test_errors_files(void **state)
{
	(void)state;
	struct coverd_config cfg;
	char err[512], path[400], want[512];
	config_defaults(&cfg);

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	assert_string_equal(err, want);

	/* A directory opens but cannot be read. */
	assert_int_equal(config_load(&cfg, tmpdir, err, sizeof(err)), -EIO);
	snprintf(want, sizeof(want), "%s:1: read error: %s", tmpdir, strerror(EISDIR));
	assert_string_equal(err, want);

	/* Permissions do not bind root, so the check is meaningful only for other users. */
	if (geteuid() != 0) {
		write_conf("[engine]\n");
		assert_int_equal(chmod(conf_path, 0), 0);
		assert_int_equal(config_load(&cfg, conf_path, err, sizeof(err)), -EACCES);
		snprintf(want, sizeof(want), "%s: %s", conf_path, strerror(EACCES));
		assert_string_equal(err, want);
		assert_int_equal(chmod(conf_path, 0600), 0);
	}

	/* Without an error buffer the result is still reported. */
	write_conf("[nope]\n");
	assert_int_equal(config_load(&cfg, conf_path, NULL, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_value_spellings),
		cmocka_unit_test(test_load_over_existing),
		cmocka_unit_test(test_error_without_line),
		cmocka_unit_test(test_errors_structure),
		cmocka_unit_test(test_errors_values),
		cmocka_unit_test(test_errors_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
