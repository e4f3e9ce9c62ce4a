/*
 * ignition.h - the vehicle's ignition line, for in-car units (trigger "motion").
 *
 * Same shape as gnss.h: a const table of functions behind a thin wrapper, polled by the
 * daemon's loop through ignition_fd() and read with ignition_read(), which reports each
 * change (never a repeated state) to the callback.
 *
 * Backends: "none" (no line: nothing is ever reported) and "mock" (tests set the line with
 * ignition_mock_set()).
 *
 * Adding a libgpiod backend (ignition_gpiod.c), for a board whose ignition sense is a
 * GPIO line:
 *   open:  gpiod_chip_open("/dev/gpiochipN"), gpiod_chip_get_line(chip, offset) and
 *          gpiod_line_request_both_edges_events_flags() with the board's active-low flag
 *          (libgpiod 1.6, Debian 12); read the initial value with gpiod_line_get_value()
 *          and report it.
 *   fd:    gpiod_line_event_get_fd(line); it becomes readable on every edge.
 *   read:  gpiod_line_event_read() per pending edge; debounce in software (ignition lines
 *          bounce for tens of ms when cranking) and call ignition__report() once settled.
 *   close: gpiod_line_release(), gpiod_chip_close().
 * Then add its name to the table in ignition.c and PkgConfig::LIBGPIOD to hal/CMakeLists.
 */
#ifndef COVERD_HAL_IGNITION_H
#define COVERD_HAL_IGNITION_H

#include <stdbool.h>

typedef void (*ignition_cb)(void *ctx, bool on);

struct ignition;

struct ignition_ops {
	const char *name;
	int (*open)(struct ignition *ig);
	int (*fd)(const struct ignition *ig);
	int (*read)(struct ignition *ig);
	void (*close)(struct ignition *ig);
};

struct ignition {
	const struct ignition_ops *ops;
	ignition_cb cb;
	void *cb_ctx;
	void *priv;
	bool is_open;
	bool known, on;     /* the last state reported */
};

/* "none" or "mock"; -EINVAL for another name, -ENOMEM. */
int ignition_new(struct ignition **out, const char *name, ignition_cb cb, void *ctx);
void ignition_free(struct ignition *ig);
int ignition_open(struct ignition *ig);
int ignition_fd(const struct ignition *ig);
int ignition_read(struct ignition *ig);
void ignition_close(struct ignition *ig);

/* For backends: reports the line's state when it differs from the last report. */
void ignition__report(struct ignition *ig, bool on);

/* The mock: sets the line; the change is reported at the next ignition_read(). */
int ignition_mock_set(struct ignition *ig, bool on);

#endif
