/*
 * test_config_golden.c - configuration round trip, in the style of OpenBSD bgpd's
 * regress: every tests/data/config/NAME.conf is loaded and printed normalised, and the
 * output must equal the stored NAME.conf.expected byte for byte; loading the expected
 * file again must print the same text (load(print(load(x))) == load(x)). Every
 * tests/data/config/bad/NAME.conf must be refused with exactly the reason stored in
 * NAME.conf.err. The shipped firmware/coverd.conf is a case too, and must document every
 * key with its true default. Finally every key must appear in docs/configuration.md and
 * in docs/man/coverd.conf.5 under its section.
 *
 * After an intended change, regenerate the stored files and review the diff:
 *     COVERD_UPDATE_GOLDEN=1 ctest -R config_golden
 */
#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#ifndef COVERD_SOURCE_DIR
#error "COVERD_SOURCE_DIR must name the source tree"
#endif

static int failures;
static bool update;

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); failures++; } while (0)

static char *read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap * 2 + 8192;
			char *nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				fclose(fp);
				return NULL;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, 4096, fp);
		len += n;
		if (n == 0)
			break;
	}
	bool bad = ferror(fp) != 0;
	fclose(fp);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

static int write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	if (fp == NULL)
		return -errno;
	int bad = fputs(text, fp) < 0;
	if (fclose(fp) != 0 || bad)
		return -EIO;
	return 0;
}

static char *print_config(const struct coverd_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	if (fp == NULL || config_print(cfg, fp) != 0 || fclose(fp) != 0) {
		fprintf(stderr, "config_print failed\n");
		exit(1);
	}
	return buf;
}

/* Shows the first line where two texts differ, which is what a reviewer needs first. */
static void show_diff(const char *want, const char *got)
{
	int line = 1;
	const char *w = want, *g = got;
	while (*w != '\0' && *w == *g) {
		if (*w == '\n')
			line++;
		w++;
		g++;
	}
	const char *wl = w, *gl = g;
	while (wl > want && wl[-1] != '\n')
		wl--;
	while (gl > got && gl[-1] != '\n')
		gl--;
	fprintf(stderr, "  first difference at line %d\n  expected: %.*s\n  got:      %.*s\n", line,
	        (int)strcspn(wl, "\n"), wl, (int)strcspn(gl, "\n"), gl);
}

/* Compares text with the stored file, or stores it when updating. */
static void check_golden(const char *what, const char *expected_path, const char *text)
{
	if (update) {
		if (write_file(expected_path, text) != 0)
			FAIL("%s: cannot write %s", what, expected_path);
		else
			printf("updated %s\n", expected_path);
		return;
	}
	char *want = read_file(expected_path);
	if (want == NULL) {
		FAIL("%s: cannot read %s (run with COVERD_UPDATE_GOLDEN=1 to create it)", what,
		     expected_path);
		return;
	}
	if (strcmp(want, text) != 0) {
		FAIL("%s: output differs from %s", what, expected_path);
		show_diff(want, text);
	} else {
		printf("ok %s\n", what);
	}
	free(want);
}

/* Loads path over the defaults and returns the normalised print, or NULL. */
static char *load_and_print(const char *path)
{
	struct coverd_config cfg;
	char err[512];
	config_defaults(&cfg);
	if (config_load(&cfg, path, err, sizeof(err)) != 0) {
		FAIL("%s: refused: %s", path, err);
		return NULL;
	}
	return print_config(&cfg);
}

/* print(load(print(x))) must equal print(x): the printed form is a fixed point. */
static void check_fixed_point(const char *what, const char *printed)
{
	char tmp[] = "/tmp/coverd-golden-XXXXXX";
	int fd = mkstemp(tmp);
	if (fd < 0) {
		FAIL("mkstemp: %s", strerror(errno));
		return;
	}
	close(fd);
	if (write_file(tmp, printed) != 0) {
		FAIL("cannot write %s", tmp);
		unlink(tmp);
		return;
	}
	char *again = load_and_print(tmp);
	if (again != NULL && strcmp(again, printed) != 0) {
		FAIL("%s: printing the loaded print changes it", what);
		show_diff(printed, again);
	}
	free(again);
	unlink(tmp);
}

static void run_good_cases(void)
{
	glob_t g;
	int r = glob("*.conf", 0, NULL, &g);
	if (r != 0 || g.gl_pathc < 3) {
		FAIL("expected at least three cases in tests/data/config (glob %d)", r);
		if (r == 0)
			globfree(&g);
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *name = g.gl_pathv[i];
		char *printed = load_and_print(name);
		if (printed == NULL)
			continue;
		char expected[512];
		snprintf(expected, sizeof(expected), "%s.expected", name);
		check_golden(name, expected, printed);
		check_fixed_point(name, printed);
		free(printed);
	}
	globfree(&g);
}

static void run_bad_cases(void)
{
	glob_t g;
	int r = glob("bad/*.conf", 0, NULL, &g);
	if (r != 0 || g.gl_pathc < 3) {
		FAIL("expected at least three cases in tests/data/config/bad (glob %d)", r);
		if (r == 0)
			globfree(&g);
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *name = g.gl_pathv[i];
		struct coverd_config cfg;
		char err[512];
		config_defaults(&cfg);
		if (config_load(&cfg, name, err, sizeof(err)) != -EINVAL) {
			FAIL("%s: accepted, or failed other than with -EINVAL: %s", name, err);
			continue;
		}
		char expected[512], text[600];
		snprintf(expected, sizeof(expected), "%s.err", name);
		snprintf(text, sizeof(text), "%s\n", err);
		check_golden(name, expected, text);
	}
	globfree(&g);
}

/*
 * The shipped example config: a round-trip case like the others, and, with every
 * "#key = value" line uncommented, it must still print exactly the defaults, so the
 * defaults it documents are the true ones. It must show every key.
 */
static void run_firmware_case(const char *defaults_printed)
{
	const char *path = COVERD_SOURCE_DIR "/firmware/coverd.conf";
	char *printed = load_and_print(path);
	if (printed == NULL)
		return;
	check_golden("firmware/coverd.conf", "firmware-coverd.conf.expected", printed);
	if (strcmp(printed, defaults_printed) != 0) {
		FAIL("firmware/coverd.conf does not load to the defaults");
		show_diff(defaults_printed, printed);
	}
	free(printed);

	char *text = read_file(path);
	if (text == NULL) {
		FAIL("cannot read %s", path);
		return;
	}
	/* Uncomment "#key = value" lines; "# prose" lines keep their comment. */
	size_t len = strlen(text);
	char *un = malloc(len + 1);
	if (un == NULL)
		exit(1);
	size_t o = 0;
	for (const char *p = text; *p != '\0';) {
		const char *eol = strchr(p, '\n');
		size_t n = eol != NULL ? (size_t)(eol - p) + 1 : strlen(p);
		if (p[0] == '#' && n > 1 && p[1] >= 'a' && p[1] <= 'z' && memchr(p, '=', n) != NULL) {
			p++;
			n--;
		}
		memcpy(un + o, p, n);
		o += n;
		p += n;
	}
	un[o] = '\0';

	char tmp[] = "/tmp/coverd-firmware-XXXXXX";
	int fd = mkstemp(tmp);
	if (fd < 0 || close(fd) != 0 || write_file(tmp, un) != 0) {
		FAIL("cannot write a temporary file");
	} else {
		struct coverd_config cfg;
		char err[512];
		config_defaults(&cfg);
		/* Loading over a config far from the defaults shows every key was set. */
		snprintf(cfg.engine.device_id, sizeof(cfg.engine.device_id), "x");
		snprintf(cfg.board, sizeof(cfg.board), "x");
		snprintf(cfg.time_zone, sizeof(cfg.time_zone), "x");
		snprintf(cfg.state_dir, sizeof(cfg.state_dir), "/x");
		snprintf(cfg.socket_path, sizeof(cfg.socket_path), "/x");
		snprintf(cfg.gnss_source, sizeof(cfg.gnss_source), "none");
		snprintf(cfg.gpsd_host, sizeof(cfg.gpsd_host), "x");
		snprintf(cfg.gpsd_port, sizeof(cfg.gpsd_port), "1");
		snprintf(cfg.mqtt_host, sizeof(cfg.mqtt_host), "x");
		snprintf(cfg.mqtt_ca_file, sizeof(cfg.mqtt_ca_file), "/x");
		snprintf(cfg.mqtt_cert_file, sizeof(cfg.mqtt_cert_file), "/x");
		snprintf(cfg.mqtt_key_file, sizeof(cfg.mqtt_key_file), "/x");
		snprintf(cfg.mqtt_tls_server_name, sizeof(cfg.mqtt_tls_server_name), "x");
		snprintf(cfg.signing_key_file, sizeof(cfg.signing_key_file), "/x");
		cfg.engine.trigger = TRIGGER_MOTION;
		cfg.engine.gap_end_ms++;
		cfg.engine.idle_end_ms++;
		cfg.engine.app_silence_ms++;
		cfg.engine.max_session_ms--;
		cfg.engine.min_cover_ms--;
		cfg.engine.unit_ms++;
		cfg.engine.move_speed_mps += 0.5;
		cfg.engine.max_eph_m += 0.5;
		cfg.engine.max_jump_mps += 0.5;
		cfg.engine.max_fix_gap_ms++;
		cfg.track_flush_ms++;
		cfg.socket_mode = 0600;
		cfg.fix_stale_ms++;
		cfg.log_level = LOG_LVL_DEBUG;
		cfg.log_syslog = !cfg.log_syslog;
		cfg.mqtt_enabled = !cfg.mqtt_enabled;
		cfg.mqtt_port++;
		cfg.mqtt_protocol = 311;
		cfg.mqtt_keepalive_s++;
		cfg.mqtt_insecure_plaintext = !cfg.mqtt_insecure_plaintext;
		cfg.mqtt_inflight++;
		cfg.mqtt_backoff_min_ms++;
		cfg.mqtt_backoff_max_ms++;
		cfg.outbox_max_rows++;
		if (config_load(&cfg, tmp, err, sizeof(err)) != 0) {
			FAIL("firmware/coverd.conf with its defaults uncommented is refused: %s", err);
		} else {
			char *p2 = print_config(&cfg);
			if (strcmp(p2, defaults_printed) != 0) {
				FAIL("firmware/coverd.conf does not show every key with its true default");
				show_diff(defaults_printed, p2);
			} else {
				printf("ok firmware/coverd.conf documents every key's default\n");
			}
			free(p2);
		}
	}
	unlink(tmp);
	free(un);
	free(text);
}

/*
 * Every key printed must be documented under its section. In docs/configuration.md a
 * section starts with a "## [name]" heading and a key is a table row "| `key` |"; in the
 * man page a section starts with ".SS [name]" and a key is a ".B key" line.
 */
static void check_docs(const char *defaults_printed, const char *doc, const char *sec_prefix,
                       const char *key_pre, const char *key_post)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", COVERD_SOURCE_DIR, doc);
	char *text = read_file(path);
	if (text == NULL) {
		FAIL("cannot read %s", path);
		return;
	}
	int missing = 0;
	char section[CONFIG_PATH_MAX + 64] = "";
	const char *p = defaults_printed;
	while (*p != '\0') {
		size_t n = strcspn(p, "\n");
		char line[CONFIG_PATH_MAX + 64];
		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
		if (line[0] == '[') {
			snprintf(section, sizeof(section), "%s", line);
			continue;
		}
		if (line[0] == '\0')
			continue;
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)strcspn(line, " ="), line);

		char head[CONFIG_PATH_MAX + 128], want[160];
		snprintf(head, sizeof(head), "\n%s%s\n", sec_prefix, section);
		snprintf(want, sizeof(want), "%s%s%s", key_pre, key, key_post);
		const char *start = strstr(text, head);
		if (start == NULL) {
			FAIL("%s: no section heading \"%s%s\"", doc, sec_prefix, section);
			missing++;
			continue;
		}
		start += strlen(head);
		/* The section runs to the next heading of the same kind. */
		char next[32];
		snprintf(next, sizeof(next), "\n%s", sec_prefix);
		const char *end = strstr(start, next);
		const char *hit = strstr(start, want);
		if (hit == NULL || (end != NULL && hit > end)) {
			FAIL("%s: %s %s is not documented", doc, section, key);
			missing++;
		}
	}
	if (missing == 0)
		printf("ok %s documents every key\n", doc);
	free(text);
}

int main(void)
{
	const char *u = getenv("COVERD_UPDATE_GOLDEN");
	update = u != NULL && u[0] != '\0' && strcmp(u, "0") != 0;
	if (chdir(COVERD_SOURCE_DIR "/tests/data/config") != 0) {
		fprintf(stderr, "chdir: %s\n", strerror(errno));
		return 1;
	}
	struct coverd_config def;
	config_defaults(&def);
	char *defaults_printed = print_config(&def);

	run_good_cases();
	run_bad_cases();
	run_firmware_case(defaults_printed);
	check_docs(defaults_printed, "docs/configuration.md", "## ", "\n| `", "` |");
	check_docs(defaults_printed, "docs/man/coverd.conf.5", ".SS ", "\n.B ", "\n");
	free(defaults_printed);

	if (failures > 0) {
		fprintf(stderr, "%d failure(s)%s\n", failures,
		        update ? "" : "; after an intended change run COVERD_UPDATE_GOLDEN=1 ctest -R config_golden");
		return 1;
	}
	return 0;
}
