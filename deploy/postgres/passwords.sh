#!/bin/sh
# Sets the passwords of percorso's PostgreSQL roles from the environment:
# run after bootstrap.sql by the postgres image's entrypoint
# (docker-entrypoint-initdb.d) in docker-compose.yml. Elsewhere, set them
# with ALTER ROLE ... PASSWORD as bootstrap.sql says.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v writer="$PERCORSO_WRITER_PASSWORD" -v reader="$PERCORSO_READER_PASSWORD" <<'SQL'
ALTER ROLE percorso_writer PASSWORD :'writer';
ALTER ROLE percorso_reader PASSWORD :'reader';
SQL
