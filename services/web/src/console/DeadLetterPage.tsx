import { useEffect, useState } from 'preact/hooks';
import { errorMessage, path, type ApiClient } from '../shared/apiClient';
import type { Redrive, WholeDeadLetter } from '../shared/apiTypes';
import { formatTime } from '../shared/format';
import { ConfirmDialog, ErrorMessage, ScrollingTable, useId, usePolling } from '../shared/ui';
import { leftText, statusText } from './DeadLettersPage';
import { href } from './router';

/** While the letter's send-back runs, it is read this often. */
const RUN_REFRESH_MS = 1000;

/** What the send-back of this letter did, in words, once it has ended. */
function outcomeText(run: Redrive): string {
  if (run.status === 'running') return statusText(run);
  const what = run.result.republished > 0 ? 'sent back to the usage topic' : `not sent (${leftText(run.result)})`;
  return `${statusText(run)}: ${what}`;
}

/**
 * Sends this one letter back, after a confirmation, as a send-back of its own (the Send-backs
 * table lists it, and only one runs at a time), and follows it to its end.
 */
function SendBackLetter({ api, partition, offset }: { api: ApiClient; partition: number; offset: string }) {
  const [confirming, setConfirming] = useState(false);
  const [run, setRun] = useState<Redrive>();
  const running = run?.status === 'running';
  const error = usePolling(
    async () => {
      if (run !== undefined) setRun(await api.get<Redrive>(path`/dead-letters/redrives/${run.id}`));
    },
    RUN_REFRESH_MS,
    [api, run?.id],
    running,
  );
  return (
    <>
      <h2>Send it back</h2>
      <p>Once what made it fail is fixed, send it to the usage topic to be metered again: it is charged once, however often it is sent. It stays on the dead-letter topic.</p>
      <button type="button" disabled={running} onClick={() => setConfirming(true)}>
        Send back
      </button>
      {run !== undefined && <p role="status">Send-back: {outcomeText(run)}</p>}
      <ErrorMessage message={error} />
      <ConfirmDialog
        title="Send this letter back"
        open={confirming}
        confirmLabel="Send back"
        keepLabel="Keep it"
        onClose={() => setConfirming(false)}
        onConfirm={async () => setRun(await api.post<Redrive>('/dead-letters/redrives', { body: { letters: [`${partition}:${offset}`] } }))}
      >
        <p>
          Sends the letter {partition}@{offset} back to the usage topic, to be metered again.
        </p>
      </ConfirmDialog>
    </>
  );
}

type LetterValue = NonNullable<WholeDeadLetter['value']>;

function formatText(value: LetterValue): string {
  const size = `${value.bytes} bytes`;
  if (value.format === 'avro') return `${size}, Avro (schema id ${value.schemaId ?? '?'}), decoded with its writer's schema`;
  if (value.format === 'json') return `${size}, JSON`;
  return size;
}

/**
 * A long text (a record, bytes) in a box that scrolls: a region named by its visible label, in
 * the tab order, so a keyboard reaches it to scroll it, as ScrollingTable's box.
 */
function ScrollingText({ label, children }: { label: string; children: string }) {
  const id = useId('text');
  return (
    <>
      <h3 id={id}>{label}</h3>
      <pre class="letter-record" role="region" aria-labelledby={id} tabIndex={0}>
        {children}
      </pre>
    </>
  );
}

/** What the producer sent: the record read from the value where it could be, and the bytes whole. */
function LetterValueSection({ value }: { value: WholeDeadLetter['value'] }) {
  return (
    <>
      <h2>What the producer sent</h2>
      {value === null ? (
        <p>No value.</p>
      ) : (
        <>
          <p>{formatText(value)}</p>
          {value.unreadable === null ? (
            <ScrollingText label="Record">{JSON.stringify(value.record, null, 2)}</ScrollingText>
          ) : (
            <p role="note">No record could be read from it: {value.unreadable}</p>
          )}
          <details>
            <summary>The value as base64</summary>
            <ScrollingText label="Value as base64">{value.base64}</ScrollingText>
          </details>
        </>
      )}
    </>
  );
}

/**
 * One dead letter whole, read from the dead-letter topic by where it sits there: why it was not
 * metered, every header and what the producer sent. Read once: a letter never changes.
 */
export function DeadLetterPage({ api, partition, offset }: { api: ApiClient; partition: number; offset: string }) {
  const [letter, setLetter] = useState<WholeDeadLetter>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    api.get<WholeDeadLetter>(`/dead-letters/${partition}/${encodeURIComponent(offset)}`).then(setLetter, (failure: unknown) => setError(errorMessage(failure)));
  }, [api, partition, offset]);
  return (
    <section>
      <div class="title-row">
        <h1>
          Dead letter {partition}@{offset}
        </h1>
        <a href={href({ screen: 'dead-letters' })}>All dead letters</a>
      </div>
      <ErrorMessage message={error} />
      {letter === undefined && error === undefined && <p role="status">Reading the letter from the dead-letter topic…</p>}
      {letter !== undefined && (
        <>
          <ScrollingTable caption="Why it was not metered">
            <tbody>
              <tr>
                <th scope="row">Error</th>
                <td>{letter.errorCode ?? ''}</td>
              </tr>
              <tr>
                <th scope="row">Reason</th>
                <td>{letter.reason ?? ''}</td>
              </tr>
              {letter.causeCode !== null && (
                <tr>
                  <th scope="row">Cause code</th>
                  <td>{letter.causeCode}</td>
                </tr>
              )}
              <tr>
                <th scope="row">Dead-lettered</th>
                <td>{formatTime(letter.deadLetteredAt)}</td>
              </tr>
              <tr>
                <th scope="row">Key (customer)</th>
                <td>{letter.key ?? ''}</td>
              </tr>
              <tr>
                <th scope="row">From</th>
                <td>{letter.sourceTopic === null ? '' : `${letter.sourceTopic} ${letter.sourcePartition ?? '?'}@${letter.sourceOffset ?? '?'}`}</td>
              </tr>
              <tr>
                <th scope="row">Stored on the dead-letter topic</th>
                <td>{formatTime(letter.storedAt)}</td>
              </tr>
            </tbody>
          </ScrollingTable>
          <LetterValueSection value={letter.value} />
          <ScrollingTable caption="Headers" columns={['Name', 'Value']}>
            <tbody>
              {letter.headers.length === 0 && (
                <tr>
                  <td colSpan={2}>None.</td>
                </tr>
              )}
              {letter.headers.map((header, index) => (
                <tr key={index}>
                  <td>
                    <code>{header.name}</code>
                  </td>
                  <td>
                    {header.value === null ? <em>no value</em> : <code>{header.value}</code>}
                    {header.encoding === 'base64' && ' (base64: not UTF-8 text)'}
                  </td>
                </tr>
              ))}
            </tbody>
          </ScrollingTable>
          <SendBackLetter api={api} partition={partition} offset={offset} />
        </>
      )}
    </section>
  );
}
