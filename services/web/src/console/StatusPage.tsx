import { useState } from 'preact/hooks';
import type { ApiClient } from '../shared/apiClient';
import type { Health, Processors } from '../shared/apiTypes';
import { formatTime } from '../shared/format';
import { ErrorMessage, ScrollingTable, usePolling } from '../shared/ui';

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
      <ScrollingTable caption="Stalled usage partitions" columns={['Partition', 'Batch', 'Codec', 'Reason', 'Since', 'Skip it with']}>
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
      </ScrollingTable>
    </>
  );
}

/**
 * The checkpointed processors of the whole deployment (GET /v1/processors, read from PostgreSQL):
 * unlike the checks above, any API process answers for all of them.
 */
function Processors({ processors }: { processors: Processors }) {
  return (
    <>
      <h2>Processors</h2>
      <p>
        Every processor that has saved a checkpoint, whichever process runs it: where it stands in the event store, and the session that leads it (one per processor; the others stand
        by). <code>npm run tally -- processors</code> prints the same.
      </p>
      <ScrollingTable caption={`Processors (event store head ${processors.head})`} columns={['Processor', 'Position', 'Behind', 'Saved', 'Leader']}>
        <tbody>
          {processors.items.length === 0 && (
            <tr>
              <td colSpan={5}>No processor has saved a checkpoint yet.</td>
            </tr>
          )}
          {processors.items.map((processor) => (
            <tr key={processor.name}>
              <td>
                <code>{processor.name}</code>
              </td>
              <td class="number">{processor.position}</td>
              <td class="number">{processor.behind}</td>
              <td>{formatTime(processor.savedAt)}</td>
              <td class={processor.leader === null ? 'error' : undefined}>
                {processor.leader === null ? 'None: no process runs it' : `pid ${processor.leader.pid} (${processor.leader.applicationName || 'no application name'})`}
              </td>
            </tr>
          ))}
        </tbody>
      </ScrollingTable>
    </>
  );
}

/**
 * What GET /health says to a signed-in operator, read again every five seconds: each dependency
 * of the process that answers, and the usage partitions its consumer stopped at; and the
 * deployment's processors (GET /v1/processors).
 */
export function StatusPage({ api }: { api: ApiClient }) {
  const [health, setHealth] = useState<Health>();
  const [processors, setProcessors] = useState<Processors>();
  const error = usePolling(
    async () => {
      setHealth(await api.health());
    },
    REFRESH_MS,
    [api],
  );
  const processorsError = usePolling(
    async () => {
      setProcessors(await api.get<Processors>('/processors'));
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
        same process. In a deployment of separate processes, each answers for its own; the processors below are the whole deployment's.
      </p>
      <ErrorMessage message={error} />
      {health !== undefined && (
        <>
          <p role="status" class={health.status === 'up' ? undefined : 'error'}>
            {health.status === 'up' ? 'Up: every check passes.' : 'Down: a check fails.'}
            {health.checkedAt !== undefined && ` Checked ${formatTime(health.checkedAt)}.`}
          </p>
          <ScrollingTable caption="Checks" columns={['Check', 'State']}>
            <tbody>
              {checks.map(([name, state]) => (
                <tr key={name}>
                  <td>{CHECK_NAMES[name] ?? name}</td>
                  <td class={state === 'up' ? undefined : 'error'}>{state === 'up' ? 'Up' : 'Down'}</td>
                </tr>
              ))}
            </tbody>
          </ScrollingTable>
          {health.stalledPartitions !== undefined && health.stalledPartitions.length > 0 && <StalledPartitions stalled={health.stalledPartitions} />}
        </>
      )}
      <ErrorMessage message={processorsError === undefined ? undefined : `The processors could not be read: ${processorsError}`} />
      {processors !== undefined && <Processors processors={processors} />}
    </section>
  );
}
