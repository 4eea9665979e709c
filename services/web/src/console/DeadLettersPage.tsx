import { useState } from 'preact/hooks';
import type { ApiClient } from '../shared/apiClient';
import type { DeadLetter } from '../shared/apiTypes';
import { formatTime } from '../shared/format';
import { ErrorMessage, usePolling } from '../shared/ui';

const REFRESH_MS = 5000;

/** The usage events that could not be metered lately, newest first, read again every five seconds. */
export function DeadLettersPage({ api }: { api: ApiClient }) {
  const [letters, setLetters] = useState<DeadLetter[]>();
  const error = usePolling(
    async () => {
      setLetters((await api.get<{ items: DeadLetter[] }>('/dead-letters', { query: { limit: '100' } })).items);
    },
    REFRESH_MS,
    [api],
  );
  return (
    <section>
      <h1>Dead letters</h1>
      <p>Usage events that could not be metered. The whole message stays on the dead-letter topic, and on its source topic at the partition and offset shown under From.</p>
      <p>
        Once the cause is fixed (the balance opened, the schema restored), send the letters of an error back with{' '}
        <code>npm run tally -- redrive --error-code &lt;error&gt;</code>: each is charged once, however often it is sent.
      </p>
      <ErrorMessage message={error} />
      <div class="table-scroll">
        <table>
          <caption>Most recent dead letters</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Error</th>
              <th scope="col">Reason</th>
              <th scope="col">Key (customer)</th>
              <th scope="col">From</th>
              <th scope="col">Value starts with</th>
            </tr>
          </thead>
          <tbody>
            {letters?.length === 0 && (
              <tr>
                <td colSpan={6}>No dead letters.</td>
              </tr>
            )}
            {letters?.map((letter) => (
              <tr key={`${letter.partition}:${letter.offset}`}>
                <td>{formatTime(letter.deadLetteredAt)}</td>
                <td>{letter.errorCode ?? ''}</td>
                <td>{letter.reason ?? ''}</td>
                <td>{letter.key ?? ''}</td>
                <td>{letter.sourceTopic === null ? '' : `${letter.sourceTopic} ${letter.sourcePartition ?? '?'}@${letter.sourceOffset ?? '?'}`}</td>
                <td>
                  <code>{letter.valuePreview ?? ''}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
