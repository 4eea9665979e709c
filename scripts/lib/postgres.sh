# shellcheck shell=bash
# Sourced by scripts/stack.sh: the machine's PostgreSQL (Debian cluster), Tally's databases and
# their schema migrations. The server is the machine's, not ours: `down` leaves it running.

PG_AUTHORITY="$(url_authority "$TALLY_DATABASE_URL")"
PG_HOST="$(host_of "$PG_AUTHORITY")"
PG_MIGRATE_LOG="$TALLY_HOME/logs/migrate.log"
PG_MIGRATE_CLI="$TALLY_ROOT/services/postgres/dist/migrateCli.js"
PG_MIGRATIONS_DIR="$TALLY_ROOT/infra/postgres/migrations"
PG_MIGRATE_STAMP="$TALLY_HOME/postgres-migrations.stamp"
PG_DATABASE_OID=""

pg_database_of() {
  local path="${1#*://*/}"
  printf '%s' "${path%%\?*}"
}
# Databases are created from the server's maintenance database, `postgres`.
pg_admin_url() { sed -E 's#^(postgres(ql)?://[^/]*)/[^?]*#\1/postgres#' <<<"$1"; }
pg_ready() { pg_isready -q -t 2 -d "$TALLY_DATABASE_URL"; }
pg_server_log() { ls /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -n 1 || true; }

# Only a machine without PostgreSQL gets it installed; Debian's default cluster asks local TCP
# clients for a password, while Tally's URLs (like this machine kind's clusters) rely on trust.
pg_install() {
  apt_install postgresql postgresql-client
  sed -i -E 's/^(host\s.*)\s(scram-sha-256|md5)$/\1 trust/' /etc/postgresql/*/main/pg_hba.conf
}

postgres_up() {
  command -v pg_isready >/dev/null || apt_install postgresql-client
  if pg_ready; then return 0; fi
  is_local_host "$PG_HOST" || fail "postgres: nothing answers at $PG_AUTHORITY and it is not local"
  if ! command -v pg_ctlcluster >/dev/null || [[ ! -d /etc/postgresql ]]; then pg_install; fi
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  say "postgres: starting cluster $version/main"
  # Without fd 9, the stack lock, which the server would otherwise hold for as long as it runs.
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 9>&- ||
    fail "postgres: the cluster did not start; see $(pg_server_log)"
  wait_until postgres "$(pg_server_log)" "" pg_ready
}

# TLS on the machine's own server, so Tally's `sslmode=require` path is tested against a real
# server and not only a proxy. Only a local cluster with ssl off whose data directory is on this
# machine is touched (a server in a container publishes the same address, but would be given
# files it cannot see, and fail its next start): a self-signed certificate the server alone can
# read, then `ALTER SYSTEM` and a reload (ssl needs no restart, and clients that do not ask for
# TLS keep connecting as before). `SHOW ssl` is the setting, not whether the server could load the
# files, so a connection that demands TLS proves it; one that fails gets the settings taken back.
# TALLY_POSTGRES_TLS=off skips it.
postgres_ensure_tls() {
  [[ "${TALLY_POSTGRES_TLS:-on}" == "off" ]] && return 0
  is_local_host "$PG_HOST" || return 0
  local admin ssl cert datadir dir
  admin="$(pg_admin_url "$TALLY_DATABASE_URL")"
  IFS='|' read -r ssl cert datadir < <(psql "$admin" -XtAqc \
    "SELECT current_setting('ssl') || '|' || current_setting('ssl_cert_file') || '|' || current_setting('data_directory')")
  if [[ "$ssl" == "on" ]]; then
    # Someone else's TLS, or ours in working order; ours that does not work is undone below.
    [[ "$cert" == */tally-tls/server.crt ]] || return 0
    pg_serves_tls "$admin" && return 0
    pg_tls_reset "$admin" "its TLS settings (certificate $cert) are on, but it does not serve TLS"
  fi
  if [[ ! -f "$datadir/PG_VERSION" ]]; then
    say "postgres: TLS left off: its data directory $datadir is not on this machine (a container's server?); TALLY_POSTGRES_TLS=off skips this check"
    return 0
  fi
  command -v openssl >/dev/null || apt_install openssl
  dir="$datadir/tally-tls"
  if [[ ! -s "$dir/server.key" || ! -s "$dir/server.crt" ]]; then
    say "postgres: creating a self-signed TLS certificate in $dir"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/server.key" -out "$dir/server.crt" >/dev/null 2>&1 ||
      fail "postgres: openssl could not create a certificate in $dir"
    chown -R postgres:postgres "$dir" 2>/dev/null || true
    chmod 700 "$dir"
    chmod 600 "$dir/server.key"
  fi
  say "postgres: turning TLS on (ALTER SYSTEM SET ssl = on, then a reload)"
  psql "$admin" -Xq -v ON_ERROR_STOP=1 \
    -c "ALTER SYSTEM SET ssl_cert_file = '$dir/server.crt'" \
    -c "ALTER SYSTEM SET ssl_key_file = '$dir/server.key'" \
    -c "ALTER SYSTEM SET ssl = on" \
    -c "SELECT pg_reload_conf()" >/dev/null || fail "postgres: could not turn TLS on; see $(pg_server_log)"
  # The reload is asynchronous; a server that refused the files serves no TLS and says why in its log.
  local tries=0
  until pg_serves_tls "$admin"; do
    tries=$((tries + 1))
    if ((tries > 20)); then
      pg_tls_reset "$admin" "it serves no TLS after the reload (the server's log says why: $(pg_server_log))"
      return 0
    fi
    sleep 0.1
  done
}

# Whether a connection that demands TLS gets it (pg_stat_ssl: this very connection encrypted).
pg_serves_tls() {
  [[ "$(PGSSLMODE=require PGCONNECT_TIMEOUT=5 psql "$1" -XtAqc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null)" == t ]]
}

# Takes back the settings postgres_ensure_tls makes, so the server's next start does not fail on them.
pg_tls_reset() {
  say "warning: postgres: $2; TLS left off: resetting ssl, ssl_cert_file and ssl_key_file (ALTER SYSTEM RESET, then a reload)" >&2
  psql "$1" -Xq -v ON_ERROR_STOP=1 \
    -c "ALTER SYSTEM RESET ssl" \
    -c "ALTER SYSTEM RESET ssl_cert_file" \
    -c "ALTER SYSTEM RESET ssl_key_file" \
    -c "SELECT pg_reload_conf()" >/dev/null ||
    fail "postgres: could not reset its TLS settings; its next start may fail on them (postgresql.auto.conf, in its data directory)"
}

# Sets PG_DATABASE_OID, the oid of TALLY_DATABASE_URL's database: a dropped and re-created
# database gets a new one, which tells postgres_migrate that its stamp no longer holds.
postgres_ensure_databases() {
  local url name admin oid
  for url in "$TALLY_DATABASE_URL" "$TALLY_TEST_DATABASE_URL"; do
    name="$(pg_database_of "$url")"
    admin="$(pg_admin_url "$url")"
    oid="$(psql "$admin" -XtAqc "SELECT oid FROM pg_database WHERE datname = '$name'")"
    if [[ -z "$oid" ]]; then
      say "postgres: creating database $name"
      # The lock is per TALLY_HOME: another checkout may create it meanwhile, which is as good.
      psql "$admin" -Xqc "CREATE DATABASE \"$name\"" 2>>"$PG_MIGRATE_LOG" ||
        say "postgres: CREATE DATABASE $name failed (see $PG_MIGRATE_LOG); looking whether another checkout made it"
      oid="$(psql "$admin" -XtAqc "SELECT oid FROM pg_database WHERE datname = '$name'")"
      [[ -n "$oid" ]] || fail "postgres: could not create database $name; see $PG_MIGRATE_LOG"
    fi
    if [[ "$url" == "$TALLY_DATABASE_URL" ]]; then PG_DATABASE_OID="$oid"; fi
  done
}

# Tests make their own schemas in the test database; only `tally` is migrated here. Starting
# node costs most of a warm `up`, so it runs only when the migration files, the target or the
# database changed since the last successful run.
postgres_migrate() {
  # `npm start` and `npm test` build first; a bare `stack:up` on a fresh build builds this one
  # package, and an unmigrated database is never passed off as ready.
  if [[ ! -f "$PG_MIGRATE_CLI" ]]; then
    [[ -x "$TALLY_ROOT/node_modules/.bin/tsc" ]] ||
      fail "postgres: cannot migrate: $PG_MIGRATE_CLI is not built and node_modules is missing (npm ci, or npm start or npm test, which install and build)"
    say "postgres: building the migrations (tsc -b services/postgres)"
    "$TALLY_ROOT/node_modules/.bin/tsc" -b "$TALLY_ROOT/services/postgres" >>"$PG_MIGRATE_LOG" 2>&1 ||
      fail "postgres: cannot migrate: building $PG_MIGRATE_CLI failed; see $PG_MIGRATE_LOG"
    [[ -f "$PG_MIGRATE_CLI" ]] || fail "postgres: cannot migrate: $PG_MIGRATE_CLI is not built, and tsc -b services/postgres did not build it"
  fi
  local stamp
  # The target without its password: a new password is the same database, and a file is no place for it.
  stamp="$PG_DATABASE_OID $(url_redacted "$TALLY_DATABASE_URL") ${TALLY_DATABASE_SCHEMA:-public} $(cat "$PG_MIGRATIONS_DIR"/*.sql 2>/dev/null | sha256sum)"
  stamp_matches "$PG_MIGRATE_STAMP" "$stamp" && return 0
  say "postgres: migrating $(pg_database_of "$TALLY_DATABASE_URL")"
  node "$PG_MIGRATE_CLI" >>"$PG_MIGRATE_LOG" 2>&1 ||
    fail "postgres: migrating $(pg_database_of "$TALLY_DATABASE_URL") failed; see $PG_MIGRATE_LOG"
  printf '%s' "$stamp" >"$PG_MIGRATE_STAMP"
}

postgres_status() {
  if pg_ready; then
    status_line postgres up "$(url_redacted "$TALLY_DATABASE_URL")" "machine service, log $(pg_server_log)"
  else
    status_line postgres down "$(url_redacted "$TALLY_DATABASE_URL")" "machine service, log $(pg_server_log)"
    return 1
  fi
}
