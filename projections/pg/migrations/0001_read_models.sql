-- +goose Up
-- Read models of percorso, rebuilt from the event stream. Every table is
-- derived: dropping them all and replaying the stream gives them back.

CREATE TABLE projection_checkpoints (
    name       text PRIMARY KEY,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE paths (
    path_id                uuid PRIMARY KEY,
    worker_ref             text NOT NULL,
    -- personal data, in clear only here, for operators; nulled on erasure
    tax_code               text,
    given_name             text,
    family_name            text,
    birth_date             date,
    disability             boolean,
    mediator_language      text,
    erased                 boolean NOT NULL DEFAULT false,
    category               text NOT NULL,
    support_kind           text NOT NULL,
    agreement_code         text,
    support_from           date NOT NULL,
    support_to             date,
    office                 text NOT NULL,
    province               text NOT NULL,
    status                 text NOT NULL,
    taken_at               timestamptz NOT NULL,
    closed_at              timestamptz,
    close_reason           text,
    pact_signed_at         timestamptz,
    did_on                 date,
    unjustified_no_shows   integer NOT NULL DEFAULT 0,
    justified_absences     integer NOT NULL DEFAULT 0,
    refusals               integer NOT NULL DEFAULT 0,
    verified_at            timestamptz,
    verification_outcome   text,
    services               jsonb NOT NULL DEFAULT '{}',
    credited_minutes_total integer NOT NULL DEFAULT 0,
    version                bigint NOT NULL
);
CREATE INDEX paths_office_idx ON paths (office, path_id);
CREATE INDEX paths_tax_code_idx ON paths (tax_code);
CREATE INDEX paths_worker_ref_idx ON paths (worker_ref);

CREATE TABLE sessions (
    event_id            uuid PRIMARY KEY,
    seq                 bigint NOT NULL UNIQUE,
    path_id             uuid NOT NULL,
    session_id          text,
    service             smallint NOT NULL,
    delivered_at        timestamptz NOT NULL,
    office              text NOT NULL,
    province            text NOT NULL,
    category            text NOT NULL,
    worker_ref          text NOT NULL,
    operator            text NOT NULL,
    standard_minutes    integer NOT NULL,
    credited_minutes    integer NOT NULL,
    actual_minutes      integer NOT NULL,
    mediator_present    boolean NOT NULL,
    group_id            uuid,
    group_size          integer,
    outside_group_range boolean NOT NULL DEFAULT false,
    justification       text,
    outside_support     boolean NOT NULL DEFAULT false,
    traineeship_id      text,
    catalogue_version   text NOT NULL
);
CREATE INDEX sessions_path_idx ON sessions (path_id);
CREATE INDEX sessions_delivered_idx ON sessions (delivered_at);

-- Every event with its metadata and hash; data as stored on the stream, so
-- personal data stays sealed.
CREATE TABLE audit_events (
    seq            bigint PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    path_id        uuid NOT NULL,
    type           text NOT NULL,
    schema_version integer NOT NULL,
    recorded_at    timestamptz NOT NULL,
    actor          text NOT NULL,
    command_id     text NOT NULL,
    correlation_id text NOT NULL,
    hash           text NOT NULL,
    prev_hash      text NOT NULL,
    data           jsonb NOT NULL
);
CREATE INDEX audit_events_path_idx ON audit_events (path_id, seq);
