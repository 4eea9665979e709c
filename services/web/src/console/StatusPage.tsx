import { useState } from 'preact/hooks';
import type { ApiClient } from '../shared/apiClient';
import type { Health } from '../shared/apiTypes';
import { formatTime } from '../shared/format';
import { ErrorMessage, usePolling } from '../shared/ui';

const REFRESH_MS = 5000;

/** A check's name as an operator reads it; a check added later shows by its own name. */
const CHECK_NAMES: Readonly<Record<string, string>> = {
  postgres: 'PostgreSQL',
  redis: 'Redis',
  kafka: 'Kafka',
  schemaRegistry: 'Schema registry',
  usagePartitions: 'Usage partitions (metering)',
};

type StalledPartition = NonNullable<Health['stalledPartitions']>[number];

/** The usage partitions this process's consumer stopped at an undecodable batch, and the command that moves past one. */
function StalledPartitions({ stalled }: { stalled: readonly StalledPartition[] }) {
  return (
    <>
      <h2>Stalled usage partitions</h2>
      <p>
        Each waits at a record batch that cannot be decoded; every other partition goes on. If a missing codec is the cause, deploying it and restarting the consumers meters the batch
        with nothing lost. Only a batch that will never be readable is skipped: stop every consumer process, then run the command shown, which sends the raw batch to the dead-letter topic
        first.
      </p>
      <div class="table-scroll">
        <table>
          <caption>Stalled usage partitions</caption>
          <thead>
            <tr>
              <th scope="col">Partition</th>
              <th scope="col">Batch</th>
              <th scope="col">Codec</th>
              <th scope="col">Reason</th>
              <th scope="col">Since</th>
              <th scope="col">Skip it with</th>
            </tr>
          </thead>
          <tbody>
            {stalled.map((partition) => (
              <tr key={`${partition.topic}:${partition.partition}`}>
                <td>
                  {partition.topic} {partition.partition}
                </td>
                <td>
                  {partition.offset}..{partition.lastOffset}
                </td>
                <td>{partition.codec}</td>
                <td>{partition.reason}</td>
                <td>{formatTime(partition.since)}</td>
                <td>
                  <code>
                    npm run tally -- skip-batch --partition {partition.partition} --offset {partition.offset}
                  </code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/**
 * What GET /health says to a signed-in operator, read again every five seconds: each dependency
 * of the process that answers, and the usage partitions its consumer stopped at.
 */
export function StatusPage({ api }: { api: ApiClient }) {
  const [health, setHealth] = useState<Health>();
  const error = usePolling(
    async () => {
      setHealth(await api.health());
    },
    REFRESH_MS,
    [api],
  );
  const checks = Object.entries(health?.checks ?? {});
  return (
    <section>
      <h1>Status</h1>
      <p>
        As the API process answering this page sees it (<code>GET /health</code>): the dependencies it checks every few seconds, and the usage partitions of a consumer running in the
        same process. In a deployment of separate processes, each answers for its own.
      </p>
      <ErrorMessage message={error} />
      {health !== undefined && (
        <>
          <p role="status" class={health.status === 'up' ? undefined : 'error'}>
            {health.status === 'up' ? 'Up: every check passes.' : 'Down: a check fails.'}
            {health.checkedAt !== undefined && ` Checked ${formatTime(health.checkedAt)}.`}
          </p>
          <div class="table-scroll">
            <table>
              <caption>Checks</caption>
              <thead>
                <tr>
                  <th scope="col">Check</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {checks.map(([name, state]) => (
                  <tr key={name}>
                    <td>{CHECK_NAMES[name] ?? name}</td>
                    <td class={state === 'up' ? undefined : 'error'}>{state === 'up' ? 'Up' : 'Down'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {health.stalledPartitions !== undefined && health.stalledPartitions.length > 0 && <StalledPartitions stalled={health.stalledPartitions} />}
        </>
      )}
    </section>
  );
}
