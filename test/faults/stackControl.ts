import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '..', '..');

/**
 * Stops and starts the local stack's services for the outage scenario, through the stack's own
 * scripts wherever they have the command (scripts/stack.sh for Kafka, scripts/lib for starting
 * PostgreSQL and Redis the way `stack.sh up` does), so the suite and the stack agree on how
 * each service runs. Every one of these disrupts all other users of the service.
 */
async function bash(script: string, timeoutMs = 300_000): Promise<void> {
  await run('bash', ['-c', `set -euo pipefail; source scripts/lib/env.sh; source scripts/lib/common.sh; ${script}`], {
    cwd: REPO_ROOT,
    timeout: timeoutMs,
  });
}

/** The machine's Debian cluster, stopped "fast": open sessions are cut, as in a crash of the server. */
export const stopPostgres = () => bash('pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main stop');
/** postgres_up starts the cluster and waits until it accepts connections. */
export const startPostgres = () => bash('source scripts/lib/postgres.sh; postgres_up');

/** `nosave`: Redis runs without persistence here, so it comes back empty, like a lost cache node. */
export const stopRedis = () => bash('redis-cli -u "$TALLY_REDIS_URL" shutdown nosave || true; ! redis-cli -u "$TALLY_REDIS_URL" ping >/dev/null 2>&1');
export const startRedis = () => bash('source scripts/lib/redis.sh; redis_up');
export const flushRedis = () => bash('redis-cli -u "$TALLY_REDIS_URL" flushall >/dev/null');

/** Refuses to go on when the broker still answers: kafka-stop only stops a broker this checkout started. */
export const stopKafka = () =>
  bash('bash scripts/stack.sh kafka-stop >/dev/null; b="$(first_broker "$TALLY_KAFKA_BROKERS")"; ! port_open "$(host_of "$b")" "$(port_of "$b")"');
export const startKafka = () => bash('bash scripts/stack.sh kafka-start >/dev/null');
