#!/usr/bin/env bash
# Local stack for Tally on real services, all on 127.0.0.1:
#   up      start whatever is not running (Kafka, schema registry, PostgreSQL, Redis), create
#           topics and databases, migrate; returns at once when everything already runs
#   down    stop what `up` started (Kafka and the schema registry); PostgreSQL and Redis are the
#           machine's services and keep running
#   status  print each part's state and address; exit 1 when one is down
#   kafka-stop, kafka-start
#           stop, then start again, only the broker that `up` started (its topics and data
#           stay): for fault tests, which disrupt every other user of Kafka meanwhile
# Logs and data live under $TALLY_HOME (default .tally/). Settings: scripts/lib/env.sh.
set -eEuo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
source "$TALLY_ROOT/scripts/lib/common.sh"
source "$TALLY_ROOT/scripts/lib/kafka.sh"
source "$TALLY_ROOT/scripts/lib/schema-registry.sh"
source "$TALLY_ROOT/scripts/lib/postgres.sh"
source "$TALLY_ROOT/scripts/lib/redis.sh"

status_line() {
  printf '%-16s %-5s %-45s %s\n' "$1" "$2" "$3" "($4)"
}

print_status() {
  local down=0
  kafka_status || down=1
  registry_status || down=1
  postgres_status || down=1
  redis_status || down=1
  return "$down"
}

# One `up` or `down` at a time per TALLY_HOME (jest runs and `npm start` may race). Whatever
# starts a daemon closes fd 9 for it (`9>&-`): a daemon that kept it would hold the lock for as
# long as it runs. The wait is bounded, and names the processes that have the lock open.
take_lock() {
  local lock="$TALLY_HOME/stack.lock"
  exec 9>"$lock"
  flock -n 9 && return 0
  lock_holders "$lock"
  say "stack: waiting for $lock, open in: $LOCK_HOLDERS"
  if ! flock -w "$TALLY_STACK_TIMEOUT_SECONDS" 9; then
    lock_holders "$lock"
    fail "stack: $lock is still held after ${TALLY_STACK_TIMEOUT_SECONDS}s; open in: $LOCK_HOLDERS"
  fi
}

# Sets LOCK_HOLDERS to `pid N (command line)` of every other process with FILE open, from /proc:
# not this shell, nor the subshell that runs find (it has fd 9 open too).
lock_holders() {
  local fds fd pid key value parent args
  LOCK_HOLDERS=""
  mapfile -t fds < <(find /proc/[0-9]*/fd -maxdepth 1 -lname "$1" 2>/dev/null 9>&- || true)
  for fd in "${fds[@]}"; do
    pid="${fd#/proc/}"
    pid="${pid%%/*}"
    parent=""
    while read -r key value; do
      if [[ "$key" == PPid: ]]; then parent="$value"; fi
    done 2>/dev/null <"/proc/$pid/status" || continue
    if [[ "$pid" == "$$" || "$parent" == "$$" ]]; then continue; fi
    mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || continue
    LOCK_HOLDERS+="pid $pid ($(printf '%.100s' "${args[*]}")); "
  done
  LOCK_HOLDERS="${LOCK_HOLDERS%; }"
  LOCK_HOLDERS="${LOCK_HOLDERS:-no process found}"
}

up() {
  local started=$SECONDS
  take_lock
  postgres_up
  redis_up
  # Both JVMs start before either is waited for: their start-up overlaps on the two cores.
  kafka_up_begin
  registry_up_begin
  kafka_up_finish
  registry_up_finish
  postgres_ensure_databases
  postgres_ensure_tls
  postgres_migrate
  print_status
  say "stack is up ($((SECONDS - started))s); logs in $TALLY_HOME/logs; stop with: npm run stack:down"
}

down() {
  take_lock
  registry_down
  kafka_down
}

kafka_stop() {
  take_lock
  kafka_down
}

kafka_start() {
  take_lock
  kafka_up_begin
  kafka_up_finish
}

# Every expected failure says what failed; this names the line of an unexpected one.
trap 'printf "error: stack.sh %s stopped at %s:%s\n" "${1:-}" "${BASH_SOURCE[0]}" "$LINENO" >&2' ERR

mkdir -p "$TALLY_HOME/logs"
case "${1:-}" in
  up) up ;;
  down) down ;;
  kafka-stop) kafka_stop ;;
  kafka-start) kafka_start ;;
  status) print_status || exit 1 ;;
  *)
    say "usage: $0 up|down|status|kafka-stop|kafka-start" >&2
    exit 2
    ;;
esac
