/*
 * test_log.c - the logging module on stderr: level filtering, strerror appended by
 * log_warn() and fatal() only, errno preserved, one timestamped line per message,
 * and fatal()/fatalx() exiting with status 70. stderr is redirected into a temporary
 * file only between capture_start() and take_output(), so that cmocka's own failure messages
 * still reach the real stderr.
 */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static int saved_stderr = -1;
static int capture_fd = -1;

static int setup(void **state)
{
	(void)state;
	char path[] = "/tmp/coverd-test-log-XXXXXX";
	capture_fd = mkstemp(path);
	if (capture_fd < 0 || unlink(path) != 0)
		return -1;
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr < 0)
		return -1;
	log_init("/usr/sbin/coverd-test", 0, LOG_LVL_INFO);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(saved_stderr);
	close(capture_fd);
	return 0;
}

static void capture_start(void)
{
	fflush(stderr);
	assert_int_equal(ftruncate(capture_fd, 0), 0);
	assert_int_equal(lseek(capture_fd, 0, SEEK_SET), 0);
	assert_true(dup2(capture_fd, STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written since capture_start() (caller frees). */
static char *take_output(void)
{
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	off_t end = lseek(capture_fd, 0, SEEK_END);
	assert_true(end >= 0);
	char *buf = calloc(1, (size_t)end + 1);
	assert_non_null(buf);
	assert_int_equal(pread(capture_fd, buf, (size_t)end, 0), end);
	return buf;
}

static void assert_matches(const char *text, const char *pattern)
{
	regex_t re;
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	int r = regexec(&re, text, 0, NULL, 0);
	regfree(&re);
	if (r != 0)
		fail_msg("output:\n%s\ndoes not match %s", text, pattern);
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

static void test_levels_and_format(void **state)
{
	(void)state;
	capture_start();
	errno = ENOENT;
	log_warn("open %s", "/x");
	assert_int_equal(errno, ENOENT);
	log_warnx("plain %d", 7);
	assert_int_equal(errno, ENOENT);
	log_info("hello");
	log_debug("not shown at info");
	assert_int_equal(errno, ENOENT);
	char *out = take_output();
	char want[1024];
	snprintf(want, sizeof(want),
	         "^" STAMP "coverd-test\\[[0-9]+\\]: warning: open /x: %s\n" STAMP
	         "coverd-test\\[[0-9]+\\]: warning: plain 7\n" STAMP "coverd-test\\[[0-9]+\\]: hello\n$",
	         strerror(ENOENT));
	assert_matches(out, want);
	free(out);

	log_set_level(LOG_LVL_DEBUG);
	assert_int_equal(log_get_level(), LOG_LVL_DEBUG);
	capture_start();
	log_debug("now shown");
	out = take_output();
	assert_matches(out, "^" STAMP "coverd-test\\[[0-9]+\\]: debug: now shown\n$");
	free(out);

	log_set_level(LOG_LVL_ERR);
	capture_start();
	log_warnx("hidden");
	log_info("hidden");
	out = take_output();
	assert_string_equal(out, "");
	free(out);

	/* An invalid level is ignored rather than stored. */
	log_set_level((enum log_level)42);
	assert_int_equal(log_get_level(), LOG_LVL_ERR);
	log_set_level(LOG_LVL_INFO);
}

static void test_long_message_is_one_line(void **state)
{
	(void)state;
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture_start();
	log_info("%s", big);
	char *out = take_output();
	size_t len = strlen(out);
	assert_true(len > 900 && len < 1300);
	assert_int_equal(out[len - 1], '\n');
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
	free(out);
}

static void test_level_names(void **state)
{
	(void)state;
	static const char *const names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++) {
		enum log_level l = (enum log_level)99;
		assert_int_equal(log_level_parse(names[i], &l), 0);
		assert_int_equal(l, i);
		assert_string_equal(log_level_name(l), names[i]);
	}
	enum log_level l;
	assert_int_equal(log_level_parse("warning", &l), -EINVAL);
	assert_int_equal(log_level_parse("INFO", &l), -EINVAL);
	assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
	assert_string_equal(log_level_name((enum log_level)9), "unknown");
}

/* Runs fn in a child and returns its exit status; the child's stderr is our capture. */
static int run_child(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);   /* not reached when fn exits as it should */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void call_fatal(void)
{
	errno = EACCES;
	/* fatal() is logged whatever the level: a broken invariant is always reported. */
	log_set_level(LOG_LVL_ERR);
	fatal("cannot open %s", "db");
}

static void call_fatalx(void)
{
	errno = EACCES;
	fatalx("invariant %s broken", "x");
}

static void test_fatal(void **state)
{
	(void)state;
	capture_start();
	int st = run_child(call_fatal);
	char *out = take_output();
	assert_int_equal(st, 70);
	char want[1024];
	snprintf(want, sizeof(want), "^" STAMP "coverd-test\\[[0-9]+\\]: fatal: cannot open db: %s\n$",
	         strerror(EACCES));
	assert_matches(out, want);
	free(out);

	capture_start();
	st = run_child(call_fatalx);
	out = take_output();
	assert_int_equal(st, 70);
	assert_matches(out, "^" STAMP "coverd-test\\[[0-9]+\\]: fatal: invariant x broken\n$");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels_and_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_message_is_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fatal, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
