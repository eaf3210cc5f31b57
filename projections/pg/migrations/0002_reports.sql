-- +goose Up
-- Reports need each missed appointment and each refusal with its date and
-- kind, where the paths table keeps only counters. audit_events already
-- holds every event as recorded, so these are views over it rather than
-- tables the projector would also have to fill: nothing to keep in step, and
-- a rebuild that replays audit_events rebuilds them for free.
--
-- They read the data of schema version 1 (docs/events/NoShowRecorded and
-- RefusalReported). Fields are only ever added to an event; if one is ever
-- upcast to a new version, these views must learn to read it too.

CREATE INDEX audit_events_type_idx ON audit_events (type, path_id, seq);
CREATE INDEX sessions_path_service_idx ON sessions (path_id, service, seq);
CREATE INDEX paths_closed_idx ON paths (closed_at) WHERE status = 'closed';
CREATE INDEX paths_taken_idx ON paths (taken_at);

CREATE VIEW no_shows AS
SELECT a.seq,
       a.path_id,
       a.recorded_at,
       (a.data->>'appointment_at')::timestamptz              AS appointment_at,
       COALESCE((a.data->>'justified')::boolean, false)      AS justified,
       a.data->>'kind'                                       AS kind,
       COALESCE((a.data->>'unjustified')::integer, 0)        AS unjustified,
       COALESCE((a.data->>'report_to_inps')::boolean, false) AS report_to_inps
FROM audit_events a
WHERE a.type = 'NoShowRecorded';

CREATE VIEW refusals AS
SELECT a.seq,
       a.path_id,
       a.recorded_at,
       (a.data->>'at')::timestamptz AS at,
       a.data->>'kind'              AS kind
FROM audit_events a
WHERE a.type = 'RefusalReported';
