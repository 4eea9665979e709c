# shellcheck shell=bash
# Sourced by scripts/stack.sh: Apicurio Registry 3 (Quarkus) with in-memory storage, serving the
# Confluent-compatible API that @kafkajs/confluent-schema-registry talks to.

REGISTRY_DIR="$TALLY_HOME/schema-registry"
REGISTRY_APP="$REGISTRY_DIR/app"
REGISTRY_PID_FILE="$REGISTRY_DIR/registry.pid"
REGISTRY_LOG="$TALLY_HOME/logs/schema-registry.log"
REGISTRY_INFRA="$TALLY_ROOT/infra/apicurio"
REGISTRY_AUTHORITY="$(url_authority "$TALLY_SCHEMA_REGISTRY_URL")"
REGISTRY_HOST="$(host_of "$REGISTRY_AUTHORITY")"
REGISTRY_PORT="$(port_of "$REGISTRY_AUTHORITY")"
REGISTRY_HEALTH_URL="http://127.0.0.1:$TALLY_SCHEMA_REGISTRY_MANAGEMENT_PORT/health/ready"
REGISTRY_LAUNCHED_PID=""

registry_resolve_app() {
  local digest
  digest="$(file_digest "$REGISTRY_INFRA/pom.xml")"
  stamp_matches "$REGISTRY_APP/.pom.sha256" "$digest" && return 0
  say "schema-registry: fetching Apicurio Registry with Maven (first run downloads it from Maven Central)"
  rm -rf "$REGISTRY_APP" "$REGISTRY_DIR/dist"
  mkdir -p "$REGISTRY_APP" "$REGISTRY_DIR/dist"
  mvn_copy_dependencies "$REGISTRY_INFRA/pom.xml" "$REGISTRY_DIR/dist" "$TALLY_HOME/logs/maven-schema-registry.log"
  tar -xzf "$REGISTRY_DIR"/dist/apicurio-registry-app-*-all.tar.gz -C "$REGISTRY_APP"
  # The unpacked app is all that runs; the 150 MB tarball stays in Maven's local repository.
  rm -rf "$REGISTRY_DIR/dist"
  printf '%s' "$digest" >"$REGISTRY_APP/.pom.sha256"
}

# Apicurio Registry 3.3 is compiled for Java 21. Kafka runs on the machine's default Java 17, so
# the registry takes TALLY_SCHEMA_REGISTRY_JAVA_HOME, else the first JDK >= 21 it finds. A JDK's
# `release` file tells its version without starting a JVM.
java_major_of() {
  local release version
  release="$(dirname "$(dirname "$(readlink -f "$1")")")/release"
  [[ -r "$release" ]] || return 1
  version="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$release")"
  [[ -n "$version" ]] && printf '%s' "$version"
}

registry_java() {
  local candidate major
  if [[ -n "${TALLY_SCHEMA_REGISTRY_JAVA_HOME:-}" ]]; then
    printf '%s' "$TALLY_SCHEMA_REGISTRY_JAVA_HOME/bin/java"
    return 0
  fi
  for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -x "$candidate" ]] || continue
    major="$(java_major_of "$candidate")" || continue
    if ((major >= 21)); then
      printf '%s' "$candidate"
      return 0
    fi
  done
  fail "schema-registry: Apicurio Registry needs Java 21 or newer and none was found under /usr/lib/jvm; set TALLY_SCHEMA_REGISTRY_JAVA_HOME"
}

registry_launch() {
  local java
  java="$(registry_java)"
  registry_resolve_app
  mkdir -p "$REGISTRY_DIR/config" "$REGISTRY_DIR/tmp"
  cp "$REGISTRY_INFRA/application.properties" "$REGISTRY_DIR/config/application.properties"
  say "schema-registry: starting Apicurio Registry on $REGISTRY_AUTHORITY (log: $REGISTRY_LOG)"
  # Quarkus reads config/application.properties from its working directory. The management
  # interface (health, metrics) of 3.3+ listens on 0.0.0.0:9000 unless told otherwise. fd 9 is
  # the stack lock, which the registry must not keep.
  (
    cd "$REGISTRY_DIR" || exit 1
    exec setsid nohup "$java" -Xmx512m -XX:+ExitOnOutOfMemoryError \
      -Djava.io.tmpdir="$REGISTRY_DIR/tmp" \
      -Dquarkus.http.host="$REGISTRY_HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$TALLY_SCHEMA_REGISTRY_MANAGEMENT_PORT" \
      -jar "$REGISTRY_APP/quarkus-run.jar" >"$REGISTRY_LOG" 2>&1 </dev/null 9>&-
  ) &
  REGISTRY_LAUNCHED_PID=$!
  printf '%s' "$REGISTRY_LAUNCHED_PID" >"$REGISTRY_PID_FILE"
}

registry_compatibility() {
  curl -fsS --max-time 3 "$TALLY_SCHEMA_REGISTRY_URL/config" 2>/dev/null
}

# The Confluent API answering with the global BACKWARD rule is the health check: it proves the
# ccompat API is up and that this registry (in memory) has been set up since it started.
registry_healthy() { registry_compatibility | grep -q '"BACKWARD"'; }
registry_answers() { registry_compatibility >/dev/null; }
registry_ready() { curl -fsS --max-time 3 "$REGISTRY_HEALTH_URL" >/dev/null 2>&1; }

registry_up_begin() {
  local pid
  if pid="$(pid_from_file "$REGISTRY_PID_FILE" quarkus-run.jar)"; then
    registry_healthy || REGISTRY_LAUNCHED_PID="$pid"
    return 0
  fi
  if port_open "$REGISTRY_HOST" "$REGISTRY_PORT"; then
    registry_answers || fail "schema-registry: $REGISTRY_AUTHORITY is taken by something that does not serve $(url_redacted "$TALLY_SCHEMA_REGISTRY_URL")"
    say "schema-registry: found a registry at $(url_redacted "$TALLY_SCHEMA_REGISTRY_URL"); reusing it"
    return 0
  fi
  is_local_host "$REGISTRY_HOST" || fail "schema-registry: nothing answers at $(url_redacted "$TALLY_SCHEMA_REGISTRY_URL") and it is not local"
  registry_launch
}

registry_up_finish() {
  if [[ -n "$REGISTRY_LAUNCHED_PID" ]]; then
    say "schema-registry: waiting for $(url_redacted "$TALLY_SCHEMA_REGISTRY_URL")"
    wait_until schema-registry "$REGISTRY_LOG" "$REGISTRY_LAUNCHED_PID" registry_ready
  fi
  if ! registry_healthy; then
    # The storage is in memory, so a fresh registry needs its global rule set on every start.
    say "schema-registry: setting global compatibility to BACKWARD"
    curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
      --data '{"compatibility":"BACKWARD"}' "$TALLY_SCHEMA_REGISTRY_URL/config" >/dev/null ||
      fail "schema-registry: could not set the global compatibility rule; see $REGISTRY_LOG"
    registry_healthy || fail "schema-registry: global compatibility is not BACKWARD after setting it; see $REGISTRY_LOG"
  fi
  registry_usage_rule || fail "schema-registry: could not set the rule of the usage subject $TALLY_USAGE_TOPIC-value; see $REGISTRY_LOG"
}

# The usage subject is FULL_TRANSITIVE, stricter than the global BACKWARD: producers write new
# versions and the consumer reads each record with its writer's schema, requiring id, customerId,
# event and timestamp. BACKWARD would take a version that drops or renames one of them (every
# event of it dead-lettered); the FORWARD half keeps them in every version, the BACKWARD half
# keeps a reader on the latest version able to read the old. Idempotent, set on every start.
registry_usage_rule() {
  curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
    --data '{"compatibility":"FULL_TRANSITIVE"}' "$TALLY_SCHEMA_REGISTRY_URL/config/$TALLY_USAGE_TOPIC-value" >/dev/null
}

registry_down() {
  local pid
  if pid="$(pid_from_file "$REGISTRY_PID_FILE" quarkus-run.jar)"; then
    say "schema-registry: stopping (pid $pid)"
    stop_pid schema-registry "$pid"
  else
    say "schema-registry: not started by this checkout; leaving it"
  fi
  rm -f "$REGISTRY_PID_FILE"
}

registry_status() {
  local pid owner="not started by this checkout"
  if pid="$(pid_from_file "$REGISTRY_PID_FILE" quarkus-run.jar)"; then owner="pid $pid, log $REGISTRY_LOG"; fi
  if registry_healthy; then
    status_line schema-registry up "$(url_redacted "$TALLY_SCHEMA_REGISTRY_URL")" "$owner"
  else
    status_line schema-registry down "$(url_redacted "$TALLY_SCHEMA_REGISTRY_URL")" "$owner"
    return 1
  fi
}
