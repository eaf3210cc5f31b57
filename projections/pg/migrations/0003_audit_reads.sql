-- +goose Up
-- Auditors' reads of paths, recorded outside the event stream (API.md). Not
-- derived from events: a rebuild of the read models keeps this table.
CREATE TABLE audit_reads (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    principal text NOT NULL,
    action    text NOT NULL,
    path_id   uuid NOT NULL
);
CREATE INDEX audit_reads_principal_idx ON audit_reads (principal, id DESC);
