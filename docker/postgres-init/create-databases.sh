#!/usr/bin/env bash
# The databases of the stack, created once: the postgres image runs this on the first start of an
# empty data volume only (later changes here need `docker compose down -v` or a manual migration).
#   mlops    Feast SQL registry and the start-up checks (MLOPS_FEAST_REGISTRY, MLOPS_POSTGRES_URL)
#   mlflow   MLflow tracking and model registry (the mlflow service's backend store)
#   dagster  Dagster runs, events and schedules (DAGSTER_POSTGRES_URL, docker/dagster.yaml)
# All three belong to the login role `mlops` (password MLOPS_DB_PASSWORD), which is not a
# superuser; the superuser's password (POSTGRES_PASSWORD) stays in the postgres container.
set -euo pipefail

: "${MLOPS_DB_PASSWORD:?set MLOPS_DB_PASSWORD (docker/stack.env)}"

# The password travels as a psql variable, quoted by psql (:'...'), never spliced into the SQL.
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  --set=app_password="$MLOPS_DB_PASSWORD" <<'SQL'
CREATE ROLE mlops LOGIN PASSWORD :'app_password';
CREATE DATABASE mlops OWNER mlops;
CREATE DATABASE mlflow OWNER mlops;
CREATE DATABASE dagster OWNER mlops;
SQL
echo "create-databases: role mlops owns databases mlops, mlflow, dagster"
