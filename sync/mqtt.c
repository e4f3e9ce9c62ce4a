/*
 * mqtt.c - the MQTT link: libmosquitto driven from the daemon's loop (see sync.h).
 *
 * Re-entrancy. libmosquitto calls back (on_connect, on_message, ...) from inside
 * mosquitto_loop_read() and friends. A callback may publish (the packet is queued) but
 * must never free the client or touch the loop registration: a failure found there only
 * sets s->lost, and sync__after(), called once the libmosquitto call has returned, does
 * the tearing down. sync__after() is also where the descriptor registration follows the
 * library's socket: libmosquitto closes its socket by itself when a read or write fails,
 * and the loop never closes descriptors, so the stale registration is removed right
 * there, before anything else in the process could be given the same descriptor number.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "log.h"
#include "mqtt_tls.h"
#include "sync_int.h"

#define MISC_PERIOD_MS 1000
#define CONNECT_TIMEOUT_MIN_MS 10000
#define LOOP_PACKETS 64

static const char *proto_name(const struct sync *s)
{
	return s->cfg.mqtt_protocol == 311 ? "3.1.1" : "5";
}

static void set_lost(struct sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_lost(struct sync *s, const char *fmt, ...)
{
	if (s->lost)
		return;   /* the first reason is the one that matters */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->lost_why, sizeof(s->lost_why), fmt, ap);
	va_end(ap);
	s->lost = true;
}

/* ---------------------------------------------------------------- callbacks */

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
	(void)m;
	(void)flags;
	struct sync *s = ud;
	if (rc != 0) {
		set_lost(s, "the broker refused the connection: %s",
		         s->cfg.mqtt_protocol == 311 ? mosquitto_connack_string(rc)
		                                     : mosquitto_reason_string(rc));
		return;
	}
	int64_t now = loop_now_ms();
	s->link = LINK_UP;
	s->up_since_ms = now;
	s->last_rx_ms = now;
	s->backoff_ms = s->cfg.mqtt_backoff_min_ms;
	s->connects++;
	/* The window never exceeds what the broker lets us have unacknowledged, less room
	 * for the status and a command reply, so neither ever queues behind records. */
	uint16_t recv_max = 65535;
	if (props != NULL)
		(void)mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &recv_max, false);
	s->window = s->cfg.mqtt_inflight;
	if (s->window > (int)recv_max - 4)
		s->window = (int)recv_max - 4;
	if (s->window < 1)
		s->window = 1;
	log_info("MQTT: connected to %s:%d (MQTT %s, %s, keepalive %d s announced as %d s, "
	         "window %d)", s->cfg.mqtt_host, s->cfg.mqtt_port, proto_name(s),
	         s->tls != NULL ? "TLS, broker verified" : "PLAINTEXT", s->keepalive_s,
	         s->announced_keepalive_s, s->window);
	/* Status first, then the subscriptions, then the backlog: the broker handles a
	 * connection's packets in order, so the ack subscription is in place before any
	 * record can reach the backend. */
	sync__status_publish(s);
	int r = mosquitto_subscribe_v5(m, NULL, s->t_ack, 1, 0, NULL);
	if (r == MOSQ_ERR_SUCCESS)
		r = mosquitto_subscribe_v5(m, NULL, s->t_cmd, 1, 0, NULL);
	if (r != MOSQ_ERR_SUCCESS)
		set_lost(s, "subscribe failed: %s", mosquitto_strerror(r));
	s->last_progress_ms = now;
	s->backlog_upto = s->last_seq_seen > s->acked_upto ? s->last_seq_seen : 0;
	s->backlog_n = s->last_seq_seen - s->acked_upto;
	s->backlog_t0 = now;
	sync__pump_reset(s);
	sync__pump_run(s);
	if (loop_timer_after(s->loop, &s->status_timer, s->status_interval_ms,
	                     s->status_interval_ms) != 0)
		log_warnx("MQTT: cannot arm the status timer");
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc, const mosquitto_property *props)
{
	(void)m;
	(void)props;
	struct sync *s = ud;
	int e = errno;
	if (s->link == LINK_CLOSED)
		return;
	const char *tls = mqtt_tls_failure(s->tls);
	if (tls != NULL)
		set_lost(s, "TLS: %s", tls);
	else if (rc == MOSQ_ERR_ERRNO)
		set_lost(s, "%s", strerror(e));
	else if (rc == MOSQ_ERR_KEEPALIVE && s->link == LINK_CONNECTING)
		set_lost(s, "no answer from the broker within %d s (TLS handshake or CONNACK)",
		         s->announced_keepalive_s);
	else if (rc == MOSQ_ERR_KEEPALIVE)
		set_lost(s, "no answer to the keepalive ping within %d s", s->announced_keepalive_s);
	else if (s->cfg.mqtt_protocol != 311 && rc >= 0x80)
		set_lost(s, "the broker disconnected us: %s", mosquitto_reason_string(rc));
	else
		set_lost(s, "%s", rc == 0 ? "disconnected" : mosquitto_strerror(rc));
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	(void)m;
	(void)props;
	struct sync *s = ud;
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	if (msg->topic != NULL && strcmp(msg->topic, s->t_ack) == 0) {
		/* An ack is an answer to what was sent; a retained one is an old answer the
		 * broker replays to every new subscriber, never evidence of a commit now. */
		if (msg->retain) {
			log_warnx("MQTT: retained ack on %s ignored", msg->topic);
			core_count(s->core, "ack.retained", 1);
			return;
		}
		sync__pump_on_ack(s, msg->payload, len);
	} else if (msg->topic != NULL && strcmp(msg->topic, s->t_cmd) == 0) {
		sync__cmd_on_message(s, msg->payload, len);
	} else {
		/* The ACL lets us read only our own ack and cmd; anything else is a broker
		 * misconfiguration and is never acted on. */
		log_warnx("MQTT: message on unexpected topic %.80s ignored",
		          msg->topic != NULL ? msg->topic : "(none)");
		core_count(s->core, "mqtt.foreign_topic", 1);
	}
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int rc,
                       const mosquitto_property *props)
{
	(void)m;
	(void)mid;
	(void)props;
	struct sync *s = ud;
	/* PUBACK is not delivery (only the backend's ack is); a refusal, though, means the
	 * broker's ACL does not let this client write here, which an operator must fix. */
	if (rc >= 0x80) {
		if (s->published_refused++ == 0)
			log_warnx("MQTT: the broker refused a publish: %s (does [device] id equal the "
			          "client certificate's CN, and does the ACL allow coverd/v1/%s/?)",
			          mosquitto_reason_string(rc), s->device_id);
	}
	if (mid == s->shutdown_mid)
		s->shutdown_acked = true;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
	(void)m;
	(void)mid;
	(void)props;
	struct sync *s = ud;
	if (n < 1 || granted[0] >= 0x80)
		log_warnx("MQTT: the broker refused a subscription (%s): acks and commands will not "
		          "arrive; check the ACL for %s", n < 1 ? "no reason" :
		          mosquitto_reason_string(granted[0]), s->device_id);
}

static void on_log(struct mosquitto *m, void *ud, int level, const char *str)
{
	(void)m;
	(void)ud;
	if (level == MOSQ_LOG_ERR || level == MOSQ_LOG_WARNING)
		log_debug("libmosquitto: %s", str);
}

/* ---------------------------------------------------------------- the descriptor */

static void on_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	struct sync *s = arg;
	if (s->mosq == NULL || fd != s->fd)
		return;
	/*
	 * During the TLS handshake libmosquitto 2.0 takes any system error from SSL_connect,
	 * a refused TCP connect or the broker hanging up included, for "try again later":
	 * the socket would then report its error or end of file on every pass until the
	 * keepalive ran out. Both are read here instead, and end the attempt at once.
	 */
	if (s->link == LINK_CONNECTING && (events & (LOOP_READ | LOOP_ERROR))) {
		int err = 0;
		socklen_t len = sizeof(err);
		char c;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
			set_lost(s, "%s", strerror(err));
			sync__after(s);
			return;
		}
		if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
			const char *tls = mqtt_tls_failure(s->tls);
			if (tls != NULL)
				set_lost(s, "TLS: %s", tls);
			else
				set_lost(s, "the broker closed the connection before CONNACK");
			sync__after(s);
			return;
		}
	}
	if (events & (LOOP_READ | LOOP_ERROR)) {
		s->last_rx_ms = loop_now_ms();
		errno = 0;
		(void)mosquitto_loop_read(s->mosq, LOOP_PACKETS);
	}
	if ((events & LOOP_WRITE) && mosquitto_socket(s->mosq) == fd) {
		errno = 0;
		(void)mosquitto_loop_write(s->mosq, LOOP_PACKETS);
	}
	sync__after(s);
}

static void link_down(struct sync *s)
{
	bool was_up = s->link == LINK_UP;
	if (s->fd >= 0)
		(void)loop_del_fd(s->loop, s->fd);
	s->fd = -1;
	s->fd_events = 0;
	loop_timer_stop(s->loop, &s->silence_timer);
	loop_timer_stop(s->loop, &s->status_timer);
	loop_timer_stop(s->loop, &s->misc_timer);
	const char *why = s->lost_why[0] != '\0' ? s->lost_why : "connection closed";
	/* mosquitto_destroy closes the socket; its registration is already gone. */
	if (s->mosq != NULL)
		mosquitto_destroy(s->mosq);
	s->mosq = NULL;
	mqtt_tls_free(s->tls);
	s->tls = NULL;
	s->link = LINK_IDLE;
	s->lost = false;
	snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	sync__pump_reset(s);

	/* Capped exponential backoff with jitter: a fleet that lost its broker together
	 * does not come back in step. The delay is uniform in [d/2, d]. */
	int64_t d = s->backoff_ms;
	int64_t delay = d / 2 + (int64_t)((uint64_t)random() % (uint64_t)(d / 2 + 1));
	s->backoff_ms = d * 2 > s->cfg.mqtt_backoff_max_ms ? s->cfg.mqtt_backoff_max_ms : d * 2;
	if (was_up) {
		s->links_lost++;
		log_warnx("MQTT: connection to %s:%d lost: %s; reconnecting in %.1f s",
		          s->cfg.mqtt_host, s->cfg.mqtt_port, why, (double)delay / 1000.0);
	} else {
		s->connect_failures++;
		log_warnx("MQTT: cannot connect to %s:%d: %s; retrying in %.1f s", s->cfg.mqtt_host,
		          s->cfg.mqtt_port, why, (double)delay / 1000.0);
	}
	s->lost_why[0] = '\0';
	if (loop_timer_after(s->loop, &s->reconnect_timer, delay, 0) != 0)
		log_warnx("MQTT: cannot arm the reconnect timer");
}

void sync__after(struct sync *s)
{
	/* Acks that arrived in this pass are written once, then the window refills. */
	sync__pump_flush_ack(s);
	if (s->mosq != NULL && (s->link == LINK_CONNECTING || s->link == LINK_UP)) {
		int fd = mosquitto_socket(s->mosq);
		if (fd != s->fd) {
			if (s->fd >= 0)
				(void)loop_del_fd(s->loop, s->fd);
			s->fd = -1;
			s->fd_events = 0;
			if (fd >= 0) {
				unsigned ev = LOOP_READ | (mosquitto_want_write(s->mosq) ? LOOP_WRITE : 0);
				int r = loop_add_fd(s->loop, fd, ev, on_fd, s);
				if (r != 0)
					set_lost(s, "cannot watch the MQTT socket: %s", strerror(-r));
				else {
					s->fd = fd;
					s->fd_events = ev;
				}
			}
		}
		if (s->fd >= 0) {
			unsigned ev = LOOP_READ | (mosquitto_want_write(s->mosq) ? LOOP_WRITE : 0);
			if (ev != s->fd_events && loop_mod_fd(s->loop, s->fd, ev) == 0)
				s->fd_events = ev;
		}
		if (fd < 0) {
			/* libmosquitto closes the socket itself when the TLS handshake fails inside
			 * loop_read/loop_write; the verification result is still recorded. */
			const char *tls = mqtt_tls_failure(s->tls);
			if (tls != NULL)
				set_lost(s, "TLS: %s", tls);
			else
				set_lost(s, "connection closed");
		}
	}
	if (s->lost && s->link != LINK_CLOSED)
		link_down(s);
}

/* ---------------------------------------------------------------- timers */

static void on_misc(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct sync *s = arg;
	if (s->mosq == NULL)
		return;
	errno = 0;
	(void)mosquitto_loop_misc(s->mosq);
	if (s->link == LINK_UP)
		sync__pump_check(s);
	sync__after(s);
}

static void on_silence(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)t;
	struct sync *s = arg;
	if (s->mosq == NULL)
		return;
	int64_t now = loop_now_ms();
	bool connecting = s->link == LINK_CONNECTING;
	int64_t limit = connecting ? (s->silence_ms > CONNECT_TIMEOUT_MIN_MS ? s->silence_ms
	                                                                    : CONNECT_TIMEOUT_MIN_MS)
	                           : s->silence_ms;
	int64_t ref = connecting ? s->connect_started_ms : s->last_rx_ms;
	if (now - ref >= limit) {
		if (connecting)
			set_lost(s, "no CONNACK within %.1f s", (double)limit / 1000.0);
		else
			set_lost(s, "nothing received from the broker for %.1f s (1.5 x keepalive %d s)",
			         (double)(now - ref) / 1000.0, s->keepalive_s);
		sync__after(s);
		return;
	}
	(void)loop_timer_start(l, &s->silence_timer, ref + limit, 0);
}

static void on_reconnect(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	sync__link_start(arg);
}

static void on_kick(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct sync *s = arg;
	sync__pump_committed(s);
	if (s->link == LINK_UP) {
		if (s->status_dirty)
			sync__status_publish(s);
		sync__pump_run(s);
	}
	sync__after(s);
}

static void on_status_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	struct sync *s = arg;
	if (s->link == LINK_UP)
		sync__status_publish(s);
	sync__after(s);
}

void sync__kick(struct sync *s)
{
	if (!s->kick_timer.armed)
		(void)loop_timer_after(s->loop, &s->kick_timer, 0, 0);
}

/* ---------------------------------------------------------------- connecting */

int sync__publish(struct sync *s, const char *topic, const void *payload, size_t len,
                  bool retain, int *mid)
{
	if (s->mosq == NULL || s->link != LINK_UP)
		return -ENOTCONN;
	int r = mosquitto_publish_v5(s->mosq, mid, topic, (int)len, payload, 1, retain, NULL);
	if (r == MOSQ_ERR_SUCCESS)
		return 0;
	/* A failed write inside publish: the link is gone; sync__after() tears it down. */
	if (r == MOSQ_ERR_NO_CONN || r == MOSQ_ERR_CONN_LOST || r == MOSQ_ERR_ERRNO)
		set_lost(s, "publish failed: %s", mosquitto_strerror(r));
	return -EIO;
}

void sync__link_start(struct sync *s)
{
	char err[512];
	if (s->link == LINK_CLOSED || s->mosq != NULL)
		return;
	s->lost = false;
	s->lost_why[0] = '\0';
	s->mosq = mosquitto_new(s->device_id, false, s);
	if (s->mosq == NULL) {
		set_lost(s, "cannot create the MQTT client: %s", strerror(errno));
		s->link = LINK_CONNECTING;
		sync__after(s);
		return;
	}
	s->link = LINK_CONNECTING;
	int ver = s->cfg.mqtt_protocol == 311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
	int r = mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, ver);
	if (r == MOSQ_ERR_SUCCESS)
		r = mosquitto_int_option(s->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	/* MQTT 3.1.1 has no receive maximum: libmosquitto's own send limit (20 by default)
	 * would queue records behind each other, so give it room for the window. */
	if (r == MOSQ_ERR_SUCCESS && ver == MQTT_PROTOCOL_V311)
		r = mosquitto_int_option(s->mosq, MOSQ_OPT_SEND_MAXIMUM,
		                         s->cfg.mqtt_inflight + 4 > 65535 ? 65535
		                                                          : s->cfg.mqtt_inflight + 4);
	if (r != MOSQ_ERR_SUCCESS) {
		set_lost(s, "cannot configure the MQTT client: %s", mosquitto_strerror(r));
		sync__after(s);
		return;
	}
	if (s->cfg.mqtt_insecure_plaintext) {
		log_warnx("MQTT: *** connecting to %s:%d WITHOUT TLS ([mqtt] insecure_plaintext): "
		          "development only; records, acks and commands travel unencrypted and the "
		          "broker is NOT authenticated ***", s->cfg.mqtt_host, s->cfg.mqtt_port);
	} else {
		struct mqtt_tls_opts o = {
			.host = s->tls_host,
			.cafile = s->cfg.mqtt_ca_file,
			.certfile = s->cfg.mqtt_cert_file,
			.keyfile = s->cfg.mqtt_key_file,
			.min_version = NULL,
		};
		if (mqtt_tls_apply(s->mosq, &o, &s->tls, err, sizeof(err)) != 0) {
			set_lost(s, "%s", err);
			sync__after(s);
			return;
		}
	}
	char will[256];
	int n = sync__status_offline(s, "lost", will, sizeof(will));
	if (n < 0 || mosquitto_will_set_v5(s->mosq, s->t_status, n, will, 1, true, NULL) !=
	                 MOSQ_ERR_SUCCESS) {
		set_lost(s, "cannot set the last will");
		sync__after(s);
		return;
	}
	mosquitto_connect_v5_callback_set(s->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(s->mosq, on_disconnect);
	mosquitto_message_v5_callback_set(s->mosq, on_message);
	mosquitto_publish_v5_callback_set(s->mosq, on_publish);
	mosquitto_subscribe_v5_callback_set(s->mosq, on_subscribe);
	mosquitto_log_callback_set(s->mosq, on_log);

	mqtt_tls_reset(s->tls);
	int64_t now = loop_now_ms();
	s->connect_started_ms = now;
	s->last_rx_ms = now;
	s->published_refused = 0;
	log_debug("MQTT: connecting to %s:%d", s->cfg.mqtt_host, s->cfg.mqtt_port);
	/* Asynchronous: the TCP connect, the TLS handshake and CONNECT proceed as the socket
	 * becomes ready. Only name resolution blocks (see sync.h). */
	errno = 0;
	r = mosquitto_connect_async(s->mosq, s->cfg.mqtt_host, s->cfg.mqtt_port,
	                            s->announced_keepalive_s);
	if (r != MOSQ_ERR_SUCCESS) {
		int e = errno;
		const char *tls = mqtt_tls_failure(s->tls);
		if (tls != NULL)
			set_lost(s, "TLS: %s", tls);
		else if (r == MOSQ_ERR_ERRNO)
			set_lost(s, "%s", strerror(e));
		else if (r == MOSQ_ERR_EAI)
			set_lost(s, "cannot resolve the broker's name");
		else
			set_lost(s, "%s", mosquitto_strerror(r));
		sync__after(s);
		return;
	}
	(void)loop_timer_after(s->loop, &s->misc_timer, MISC_PERIOD_MS, MISC_PERIOD_MS);
	(void)loop_timer_start(s->loop, &s->silence_timer,
	                       now + (s->silence_ms > CONNECT_TIMEOUT_MIN_MS ? s->silence_ms
	                                                                     : CONNECT_TIMEOUT_MIN_MS),
	                       0);
	sync__after(s);
}

void sync__link_init(struct sync *s)
{
	s->fd = -1;
	s->link = LINK_IDLE;
	s->backoff_ms = s->cfg.mqtt_backoff_min_ms;
	loop_timer_init(&s->misc_timer, on_misc, s);
	loop_timer_init(&s->silence_timer, on_silence, s);
	loop_timer_init(&s->reconnect_timer, on_reconnect, s);
	loop_timer_init(&s->kick_timer, on_kick, s);
	loop_timer_init(&s->status_timer, on_status_timer, s);
	sync__pump_init(s);
}

/* Drives the socket directly with poll() until done() or the deadline: at shutdown the
 * main loop has stopped, and no other descriptor should be served any more. */
static void drive(struct sync *s, int64_t deadline, bool (*done)(struct sync *s))
{
	while (s->mosq != NULL && !done(s)) {
		int64_t now = loop_now_ms();
		if (now >= deadline)
			break;
		int fd = mosquitto_socket(s->mosq);
		if (fd < 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (mosquitto_want_write(s->mosq))
			p.events |= POLLOUT;
		int wait = (int)(deadline - now < 100 ? deadline - now : 100);
		int n = poll(&p, 1, wait);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)))
			(void)mosquitto_loop_read(s->mosq, LOOP_PACKETS);
		if (n > 0 && (p.revents & POLLOUT) && mosquitto_socket(s->mosq) >= 0)
			(void)mosquitto_loop_write(s->mosq, LOOP_PACKETS);
	}
}

static bool offline_acked(struct sync *s)
{
	return s->shutdown_acked;
}

static bool socket_closed(struct sync *s)
{
	return mosquitto_socket(s->mosq) < 0;
}

void sync__link_shutdown(struct sync *s, int max_ms)
{
	if (s->link == LINK_CLOSED)
		return;
	loop_timer_stop(s->loop, &s->misc_timer);
	loop_timer_stop(s->loop, &s->silence_timer);
	loop_timer_stop(s->loop, &s->reconnect_timer);
	loop_timer_stop(s->loop, &s->kick_timer);
	loop_timer_stop(s->loop, &s->status_timer);
	loop_timer_stop(s->loop, &s->ack_timer);
	int64_t deadline = loop_now_ms() + max_ms;
	sync__pump_flush_ack(s);
	sync__pump_store_ack(s);
	/* Closed from here on: acks still arriving are recorded, nothing more is sent. */
	bool up = s->link == LINK_UP;
	s->link = LINK_CLOSED;
	if (s->mosq != NULL && up && mosquitto_socket(s->mosq) >= 0) {
		char off[256];
		int n = sync__status_offline(s, "shutdown", off, sizeof(off));
		s->shutdown_mid = -1;
		s->shutdown_acked = false;
		if (n > 0 && mosquitto_publish_v5(s->mosq, &s->shutdown_mid, s->t_status, n, off, 1,
		                                  true, NULL) == MOSQ_ERR_SUCCESS) {
			drive(s, deadline, offline_acked);
			sync__pump_flush_ack(s);
			sync__pump_store_ack(s);
		}
		log_info("MQTT: %s; disconnecting from %s:%d", s->shutdown_acked ?
		         "offline status published" : "offline status not confirmed by the broker",
		         s->cfg.mqtt_host, s->cfg.mqtt_port);
		/* A clean DISCONNECT: the broker discards the will, so the retained status stays
		 * the "shutdown" one just published. */
		if (mosquitto_disconnect_v5(s->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL) ==
		    MOSQ_ERR_SUCCESS)
			drive(s, deadline, socket_closed);
	}
	s->link = LINK_CLOSED;
	if (s->fd >= 0)
		(void)loop_del_fd(s->loop, s->fd);
	s->fd = -1;
	if (s->mosq != NULL)
		mosquitto_destroy(s->mosq);
	s->mosq = NULL;
	mqtt_tls_free(s->tls);
	s->tls = NULL;
}

void sync__link_free(struct sync *s)
{
	sync__link_shutdown(s, 0);
}
