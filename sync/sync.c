/*
 * sync.c - the delivery object: creation, the commit hook, the status member, shutdown.
 * The link is mqtt.c, the pump pump.c, the status status.c, the commands cmd.c.
 */
#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "log.h"
#include "mqtt_tls.h"
#include "paths.h"
#include "sync_int.h"

void sync_key_path(const struct coverd_config *cfg, char *buf, size_t len)
{
	if (cfg->signing_key_file[0] != '\0')
		snprintf(buf, len, "%s", cfg->signing_key_file);
	else
		snprintf(buf, len, "%s/%s", cfg->state_dir, COVERD_KEY_NAME);
}

/*
 * The broker names a client by its certificate's CN (use_identity_as_username) and the
 * ACL lets it write only coverd/v1/<CN>/...: a device id that differs from the CN would
 * have every record refused by the broker, forever. Refused here, at start, instead.
 */
static int check_cn(const char *certfile, const char *device_id, char *err, size_t errlen)
{
	FILE *f = fopen(certfile, "r");
	if (f == NULL) {
		snprintf(err, errlen, "[mqtt] cert_file %s: %s", certfile, strerror(errno));
		return -EINVAL;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		snprintf(err, errlen, "[mqtt] cert_file %s: not a PEM certificate", certfile);
		return -EINVAL;
	}
	char cn[128] = "";
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	                                  (int)sizeof(cn));
	X509_free(x);
	if (n <= 0) {
		snprintf(err, errlen, "[mqtt] cert_file %s: the certificate has no CN", certfile);
		return -EINVAL;
	}
	if (strcmp(cn, device_id) != 0) {
		snprintf(err, errlen, "[mqtt] cert_file %s is for device \"%s\" but [device] id is "
		         "\"%s\": the broker would refuse every record (its ACL binds a device's "
		         "topics to its certificate's CN)", certfile, cn, device_id);
		return -EPERM;
	}
	return 0;
}

static int topic(char *buf, const char *dev, const char *leaf)
{
	int n = snprintf(buf, SYNC_TOPIC_MAX, "coverd/v1/%s/%s", dev, leaf);
	return n > 0 && n < SYNC_TOPIC_MAX ? 0 : -ENAMETOOLONG;
}

int sync_new(struct sync **out, struct core *c, struct loop *l, const struct coverd_config *cfg,
             struct sign_key *key, char *err, size_t errlen)
{
	if (out == NULL || c == NULL || l == NULL || cfg == NULL || !cfg->mqtt_enabled) {
		snprintf(err, errlen, "sync: invalid argument");
		return -EINVAL;
	}
	struct sync *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "sync: out of memory");
		return -ENOMEM;
	}
	s->core = c;
	s->loop = l;
	s->cfg = *cfg;
	s->key = key;
	snprintf(s->device_id, sizeof(s->device_id), "%s", cfg->engine.device_id);
	int r = 0;
	if (topic(s->t_status, s->device_id, "status") != 0 ||
	    topic(s->t_records, s->device_id, "activations") != 0 ||
	    topic(s->t_ack, s->device_id, "ack") != 0 || topic(s->t_cmd, s->device_id, "cmd") != 0 ||
	    topic(s->t_reply, s->device_id, "cmd/reply") != 0) {
		snprintf(err, errlen, "[device] id %s: too long for a topic", s->device_id);
		r = -ENAMETOOLONG;
		goto fail;
	}
	s->tls_host = s->cfg.mqtt_tls_server_name[0] != '\0' ? s->cfg.mqtt_tls_server_name
	                                                     : s->cfg.mqtt_host;
	s->keepalive_s = cfg->mqtt_keepalive_s;
	s->announced_keepalive_s = cfg->mqtt_keepalive_s * 3 / 4;
	if (s->announced_keepalive_s < 5)
		s->announced_keepalive_s = 5;   /* libmosquitto's minimum */
	s->silence_ms = (int64_t)cfg->mqtt_keepalive_s * 1500;
	s->ack_timeout_ms = (int64_t)cfg->mqtt_keepalive_s * 1000;
	s->status_interval_ms = (int64_t)cfg->mqtt_keepalive_s * 2000;
	s->window = cfg->mqtt_inflight;

	if (!cfg->mqtt_insecure_plaintext) {
		/* The TLS files are checked now so a mistake stops the start with a reason,
		 * rather than showing up later as endless reconnects. */
		if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
			snprintf(err, errlen, "cannot initialise libmosquitto");
			r = -EIO;
			goto fail;
		}
		struct mosquitto *m = mosquitto_new(s->device_id, false, NULL);
		struct mqtt_tls *t = NULL;
		struct mqtt_tls_opts o = {
			.host = s->tls_host, .cafile = cfg->mqtt_ca_file, .certfile = cfg->mqtt_cert_file,
			.keyfile = cfg->mqtt_key_file, .min_version = NULL,
		};
		r = m != NULL ? mqtt_tls_apply(m, &o, &t, err, errlen) : -ENOMEM;
		if (m == NULL)
			snprintf(err, errlen, "cannot create an MQTT client");
		if (m != NULL)
			mosquitto_destroy(m);
		mqtt_tls_free(t);
		if (r == 0)
			r = check_cn(cfg->mqtt_cert_file, s->device_id, err, errlen);
		if (r != 0)
			goto fail_lib;
	} else if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "cannot initialise libmosquitto");
		r = -EIO;
		goto fail;
	}
	r = sync__pump_load(s);
	if (r != 0) {
		snprintf(err, errlen, "outbox: %s", store_errmsg(core_store(c)));
		goto fail_lib;
	}
	sync__link_init(s);
	struct timespec ts;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	srandom((unsigned)(ts.tv_nsec ^ ts.tv_sec ^ getpid()));
	*out = s;
	return 0;
fail_lib:
	(void)mosquitto_lib_cleanup();
fail:
	free(s);
	return r;
}

int sync_start(struct sync *s)
{
	if (s == NULL)
		return -EINVAL;
	log_info("MQTT: delivering to %s:%d as %s (%lld records waiting, acked up to %lld)",
	         s->cfg.mqtt_host, s->cfg.mqtt_port, s->device_id,
	         (long long)(s->last_seq_seen - s->acked_upto), (long long)s->acked_upto);
	sync__pump_bound(s);
	sync__link_start(s);
	return 0;
}

void sync_shutdown(struct sync *s, int max_ms)
{
	if (s != NULL)
		sync__link_shutdown(s, max_ms);
}

void sync_free(struct sync *s)
{
	if (s == NULL)
		return;
	sync__link_free(s);
	(void)mosquitto_lib_cleanup();
	free(s);
}

void sync_on_commit(void *ctx, unsigned what)
{
	struct sync *s = ctx;
	if (s == NULL || s->link == LINK_CLOSED)
		return;
	if (what & CORE_COMMIT_REOPEN) {
		/* A replayed restart reopened the store: start again from what it holds. */
		if (sync__pump_load(s) != 0)
			log_warnx("outbox: cannot be read after the store was reopened");
	}
	/* The work is done from the loop, outside whatever called core_submit (possibly a
	 * command handler inside libmosquitto): new records go out in the next pass. */
	if (what & (CORE_COMMIT_SESSION | CORE_COMMIT_STATE))
		sync__status_changed(s);
	sync__kick(s);
}

static const char *link_name(enum sync_link l)
{
	switch (l) {
	case LINK_IDLE:
		return "waiting";
	case LINK_CONNECTING:
		return "connecting";
	case LINK_UP:
		return "connected";
	case LINK_CLOSED:
		return "closed";
	}
	return "?";
}

void sync_status(void *ctx, struct cJSON *status)
{
	struct sync *s = ctx;
	if (s == NULL || status == NULL)
		return;
	cJSON *o = cJSON_AddObjectToObject(status, "mqtt");
	if (o == NULL)
		return;
	char broker[CONFIG_STR_MAX + 16];
	snprintf(broker, sizeof(broker), "%s:%d", s->cfg.mqtt_host, s->cfg.mqtt_port);
	bool ok = cJSON_AddStringToObject(o, "state", link_name(s->link)) != NULL &&
	          cJSON_AddStringToObject(o, "broker", broker) != NULL &&
	          cJSON_AddBoolToObject(o, "tls", !s->cfg.mqtt_insecure_plaintext) != NULL &&
	          cJSON_AddNumberToObject(o, "connects", (double)s->connects) != NULL &&
	          cJSON_AddNumberToObject(o, "connect_failures", (double)s->connect_failures) != NULL &&
	          cJSON_AddNumberToObject(o, "links_lost", (double)s->links_lost) != NULL &&
	          cJSON_AddNumberToObject(o, "window", s->window) != NULL &&
	          cJSON_AddNumberToObject(o, "acked_upto", (double)s->acked_upto) != NULL &&
	          cJSON_AddNumberToObject(o, "sent_upto", (double)s->sent_upto) != NULL &&
	          cJSON_AddNumberToObject(o, "in_flight", (double)(s->sent_upto - s->acked_upto)) != NULL &&
	          cJSON_AddNumberToObject(o, "published", (double)s->published) != NULL &&
	          cJSON_AddNumberToObject(o, "resends", (double)s->resends) != NULL &&
	          cJSON_AddBoolToObject(o, "outbox_full", s->outbox_full) != NULL &&
	          cJSON_AddNumberToObject(o, "track_dropped", (double)s->track_pruned) != NULL &&
	          (s->last_error[0] != '\0'
	               ? cJSON_AddStringToObject(o, "last_error", s->last_error) != NULL
	               : cJSON_AddNullToObject(o, "last_error") != NULL);
	if (!ok)
		log_warnx("status: the mqtt member is incomplete");
	sync__lat_status(s, o);
}
