-- +goose Up
-- Events a projection could not apply. The projection stops at the first
-- one; only an explicit admin skip (recorded here) lets it go past.
CREATE TABLE projection_poison (
    name        text NOT NULL,
    seq         bigint NOT NULL,
    error       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    skipped_at  timestamptz,
    skipped_by  text,
    PRIMARY KEY (name, seq)
);
