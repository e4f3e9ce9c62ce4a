-- A coverd database of schema version 1, frozen for the upgrade test in
-- tests/unit/test_store.c: it holds what schema 1 of daemon/store.c created and a
-- short shift written in that version's formats (one session of two activations,
-- three rejected events, four outbox records with a valid hash chain, one packed
-- track batch and the engine state). Never edit it: a schema change is a new
-- migration, and this file must keep describing version 1.
BEGIN;
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  t_ms INTEGER NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  json TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
  reason TEXT);
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  ordinal INTEGER NOT NULL,
  trigger TEXT NOT NULL,
  policy_id TEXT NOT NULL,
  driver_id TEXT NOT NULL,
  vehicle_id TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER,
  end_reason TEXT,
  open_event_id INTEGER REFERENCES events(id),
  close_event_id INTEGER REFERENCES events(id));
CREATE TABLE activations (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id),
  idx INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'closed', 'voided')),
  start_ms INTEGER NOT NULL,
  end_ms INTEGER,
  end_reason TEXT,
  distance_m REAL NOT NULL,
  moving_ms INTEGER NOT NULL,
  jobs INTEGER NOT NULL,
  start_lat REAL, start_lon REAL, end_lat REAL, end_lon REAL,
  time_quality TEXT NOT NULL,
  anomalies INTEGER NOT NULL,
  open_event_id INTEGER REFERENCES events(id),
  close_event_id INTEGER REFERENCES events(id),
  open_rule TEXT,
  close_rule TEXT,
  UNIQUE (session_id, idx));
CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  record_id TEXT NOT NULL,
  revision INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  delivered_ms INTEGER);
CREATE TABLE track (
  id INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL,
  t0_ms INTEGER NOT NULL,
  t1_ms INTEGER NOT NULL,
  n INTEGER NOT NULL,
  fmt INTEGER NOT NULL,
  points BLOB NOT NULL);
CREATE TABLE engine_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  json TEXT NOT NULL);
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (1, 1795856400000, 'replay', 'policy', '{"t":"2026-11-28T09:00:00Z","type":"policy","event":"assign","policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1"}', 'applied', NULL);
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (2, 1795856460000, 'replay', 'app', '{"t":"2026-11-28T09:01:00Z","type":"app","event":"job_accepted"}', 'applied', NULL);
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (3, 1795856430000, 'ipc', 'app', '{"t":"2026-11-28T09:00:30Z","type":"app","event":"heartbeat"}', 'rejected', 'out_of_order');
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (4, 1795860060000, 'timer', 'tick', '{"t":"2026-11-28T10:01:00Z","type":"tick"}', 'applied', NULL);
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (5, 1795861260000, 'replay', 'app', '{"t":"2026-11-28T10:21:00Z","type":"app","event":"offline"}', 'applied', NULL);
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (6, 1795861200000, 'ipc', 'app', '{"t":"2026-11-28T10:20:00Z","type":"app","event":"heartbeat"}', 'rejected', 'out_of_order');
INSERT INTO events (id, t_ms, source, type, json, status, reason) VALUES (7, 1795861270000, 'replay', 'fix', '{"t":"2026-11-28T10:21:10Z","type":"fix","lat":51.5,"lon":-0.12,"mode":1}', 'rejected', 'bad_fix');
INSERT INTO sessions (id, ordinal, trigger, policy_id, driver_id, vehicle_id, start_ms, end_ms, end_reason, open_event_id, close_event_id) VALUES ('fixture-dev-20261128T090100Z-1', 1, 'job', 'P-1', 'D-1', 'V-1', 1795856460000, 1795861260000, 'offline', 2, 5);
INSERT INTO activations (id, session_id, idx, revision, status, start_ms, end_ms, end_reason, distance_m, moving_ms, jobs, start_lat, start_lon, end_lat, end_lon, time_quality, anomalies, open_event_id, close_event_id, open_rule, close_rule) VALUES ('fixture-dev-20261128T090100Z-1-0', 'fixture-dev-20261128T090100Z-1', 0, 2, 'closed', 1795856460000, 1795860060000, 'hour', 1234.5, 600000, 1, 51.5, -0.12, 51.51, -0.1, 'gnss', 0, 2, 4, 'start_job', 'hour_boundary');
INSERT INTO activations (id, session_id, idx, revision, status, start_ms, end_ms, end_reason, distance_m, moving_ms, jobs, start_lat, start_lon, end_lat, end_lon, time_quality, anomalies, open_event_id, close_event_id, open_rule, close_rule) VALUES ('fixture-dev-20261128T090100Z-1-1', 'fixture-dev-20261128T090100Z-1', 1, 2, 'closed', 1795860060000, 1795861260000, 'offline', 250.0, 120000, 0, 51.51, -0.1, NULL, NULL, 'ntp', 1, 4, 5, 'hour_boundary', 'offline');
INSERT INTO outbox (seq, kind, record_id, revision, body, created_ms, delivered_ms) VALUES (1, 'activation', 'fixture-dev-20261128T090100Z-1-0', 1, '{"v":1,"kind":"activation","event":"opened","seq":1,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","device_id":"fixture-dev","id":"fixture-dev-20261128T090100Z-1-0","revision":1,"session_id":"fixture-dev-20261128T090100Z-1","index":0,"policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1","start":"2026-11-28T09:01:00Z","end":null,"end_reason":null,"distance_m":0,"moving_s":0,"jobs":1,"start_pos":{"lat":51.5,"lon":-0.12},"end_pos":null,"time_quality":"gnss","anomalies":[]}', 1795856460000, 1795856520000);
INSERT INTO outbox (seq, kind, record_id, revision, body, created_ms, delivered_ms) VALUES (2, 'activation', 'fixture-dev-20261128T090100Z-1-0', 2, '{"v":1,"kind":"activation","event":"closed","seq":2,"prev_hash":"7611bee3a8e5e02196b83e952aaa124ef458aa87bafee0bcba639004393cfb7f","device_id":"fixture-dev","id":"fixture-dev-20261128T090100Z-1-0","revision":2,"session_id":"fixture-dev-20261128T090100Z-1","index":0,"policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1","start":"2026-11-28T09:01:00Z","end":"2026-11-28T10:01:00Z","end_reason":"hour","distance_m":1234.5,"moving_s":600,"jobs":1,"start_pos":{"lat":51.5,"lon":-0.12},"end_pos":{"lat":51.51,"lon":-0.1},"time_quality":"gnss","anomalies":[]}', 1795860060000, NULL);
INSERT INTO outbox (seq, kind, record_id, revision, body, created_ms, delivered_ms) VALUES (3, 'activation', 'fixture-dev-20261128T090100Z-1-1', 1, '{"v":1,"kind":"activation","event":"opened","seq":3,"prev_hash":"bf75df7d22bd72635165824fa71551d58d608aa331a6f56b1c1b54d8661dc745","device_id":"fixture-dev","id":"fixture-dev-20261128T090100Z-1-1","revision":1,"session_id":"fixture-dev-20261128T090100Z-1","index":1,"policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1","start":"2026-11-28T10:01:00Z","end":null,"end_reason":null,"distance_m":0,"moving_s":0,"jobs":0,"start_pos":{"lat":51.51,"lon":-0.1},"end_pos":null,"time_quality":"gnss","anomalies":[]}', 1795860060000, NULL);
INSERT INTO outbox (seq, kind, record_id, revision, body, created_ms, delivered_ms) VALUES (4, 'activation', 'fixture-dev-20261128T090100Z-1-1', 2, '{"v":1,"kind":"activation","event":"closed","seq":4,"prev_hash":"4d295d288ef138a8befb1a225bd377ac9b313634f54687a9e983876d3e4d8f00","device_id":"fixture-dev","id":"fixture-dev-20261128T090100Z-1-1","revision":2,"session_id":"fixture-dev-20261128T090100Z-1","index":1,"policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1","start":"2026-11-28T10:01:00Z","end":"2026-11-28T10:21:00Z","end_reason":"offline","distance_m":250,"moving_s":120,"jobs":0,"start_pos":{"lat":51.51,"lon":-0.1},"end_pos":null,"time_quality":"ntp","anomalies":["position_jump"]}', 1795861260000, NULL);
INSERT INTO track (session_id, t0_ms, t1_ms, n, fmt, points) VALUES ('fixture-dev-20261128T090100Z-1', 1795856461000, 1795856463000, 3, 1, X'00000000c046b21e80b0edff0d0228233c0003e8030000b448b21e3cb3edff2602be23410003d0070000a84ab21ef8b5edffffffffffffff02');
INSERT INTO engine_state (id, json) VALUES (1, '{"format":1,"version":1,"started":true,"last_t_ms":1795861260000,"online":false,"private_mode":false,"ignition_on":false,"has_policy":true,"policy":{"assign":true,"policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1"},"jobs_active":0,"last_job_end_ms":null,"last_app_ms":1795861260000,"last_move_ms":1795856462000,"have_fix":true,"last_fix_ms":1795856463000,"last_fix":{"lat":51.5001,"lon":-0.11986,"speed_mps":null,"course_deg":null,"eph_m":null,"mode":2},"last_fix_moving":false,"sessions_total":1,"rejected_total":3,"s":{"open":false,"id":"fixture-dev-20261128T090100Z-1","ordinal":1,"trigger":0,"start_ms":1795856460000,"end_ms":1795861260000,"end_reason":1,"policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1","n_acts":2,"acts":[{"index":0,"status":2,"revision":2,"start_ms":1795856460000,"end_ms":1795860060000,"end_reason":9,"distance_m":1234.5,"moving_ms":600000,"jobs":1,"start_pos":{"lat":51.5,"lon":-0.12,"valid":true},"end_pos":{"lat":51.51,"lon":-0.1,"valid":true},"tq":0,"anomalies":0},{"index":1,"status":2,"revision":2,"start_ms":1795860060000,"end_ms":1795861260000,"end_reason":1,"distance_m":250.0,"moving_ms":120000,"jobs":0,"start_pos":{"lat":51.51,"lon":-0.1,"valid":true},"end_pos":{"lat":0,"lon":0,"valid":false},"tq":1,"anomalies":1}]}}');
PRAGMA user_version = 1;
COMMIT;
