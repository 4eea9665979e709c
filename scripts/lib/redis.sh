# shellcheck shell=bash
# Sourced by scripts/stack.sh: the machine's Redis. Like PostgreSQL it is the machine's service,
# started here only when it is stopped, and `down` leaves it running.

REDIS_AUTHORITY="$(url_authority "$TALLY_REDIS_URL")"
REDIS_HOST="$(host_of "$REDIS_AUTHORITY")"
REDIS_PORT="$(port_of "$REDIS_AUTHORITY")"
REDIS_LOG=/var/log/redis/ci.log

redis_ping() { [[ "$(redis-cli -u "$TALLY_REDIS_URL" ping 2>/dev/null)" == PONG ]]; }

redis_up() {
  command -v redis-cli >/dev/null || apt_install redis-tools
  if redis_ping; then return 0; fi
  is_local_host "$REDIS_HOST" || fail "redis: nothing answers at $(url_redacted "$TALLY_REDIS_URL") and it is not local"
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis "$(dirname "$REDIS_LOG")"
  say "redis: starting on $REDIS_AUTHORITY"
  # Same flags as this machine kind's own start: loopback only, nothing kept on disk. Without
  # fd 9, the stack lock, which the daemon would otherwise hold for as long as it runs.
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile "$REDIS_LOG" 9>&- || fail "redis: redis-server did not start; see $REDIS_LOG"
  wait_until redis "$REDIS_LOG" "" redis_ping
}

redis_status() {
  if redis_ping; then
    status_line redis up "$(url_redacted "$TALLY_REDIS_URL")" "machine service, log $REDIS_LOG"
  else
    status_line redis down "$(url_redacted "$TALLY_REDIS_URL")" "machine service, log $REDIS_LOG"
    return 1
  fi
}
