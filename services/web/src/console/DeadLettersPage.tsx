import { useState } from 'preact/hooks';
import { errorMessage, fieldErrors, type ApiClient } from '../shared/apiClient';
import type { DeadLetter, Redrive } from '../shared/apiTypes';
import { formatTime, keyLabel } from '../shared/format';
import { ConfirmDialog, ErrorMessage, Field, ScrollingTable, SelectField, usePolling } from '../shared/ui';
import { href } from './router';

const REFRESH_MS = 5000;
/** While a send-back runs, its counts are read this often. */
const RUNNING_REFRESH_MS = 1000;
const EVERY_CODE = '';
const LETTER_COLUMNS = ['When', 'Error', 'Reason', 'Key (customer)', 'Usage event', 'From', 'Value starts with', 'Sent back', 'Whole letter'];

const STATUS_TEXT: Readonly<Record<Redrive['status'], string>> = {
  running: 'Running',
  succeeded: 'Done',
  failed: 'Failed',
  interrupted: 'Interrupted',
  cancelled: 'Stopped',
};

/** The status in words: who stopped it, and a stop asked for that its process has not noticed yet. */
export function statusText(run: Redrive): string {
  const stopping = run.status === 'running' && run.cancelRequestedAt !== null;
  const status = stopping ? 'Stopping' : STATUS_TEXT[run.status];
  const by = run.cancelRequestedBy !== null && (stopping || run.status === 'cancelled') ? ` by ${keyLabel(run.cancelRequestedBy)}` : '';
  return `${run.dryRun ? `${status} (count only)` : status}${by}${run.error !== null ? `: ${run.error}` : ''}`;
}

/** A letter's place on the dead-letter topic as the pages show it: partition@offset. */
const placeText = (place: string) => place.replace(':', '@');

function lettersText(run: Redrive): string {
  if (run.letters !== null) return `${run.letters.length === 1 ? 'letter' : 'letters'} ${run.letters.map(placeText).join(', ')}`;
  return run.errorCodes === 'all' ? 'every error code' : run.errorCodes.join(', ');
}

/** What a run left where it was, in words: only the reasons that apply. */
export function leftText({ skipped, tooLarge }: Redrive['result']): string {
  const more = skipped.too_large - tooLarge.length;
  const parts = [
    [skipped.not_selected, 'not selected'],
    [skipped.raw_batch, 'raw batches'],
    [skipped.cut, 'cut to fit'],
    [skipped.other_source, 'from another topic'],
    // Named: each goes back alone, picked by its place, once the usage topic's max.message.bytes is raised.
    [skipped.too_large, `too large for the usage topic (${tooLarge.map(placeText).join(', ')}${more > 0 ? ` and ${more} more` : ''})`],
  ] as const;
  return parts.filter(([count]) => count > 0).map(([count, what]) => `${count} ${what}`).join(', ') || '0';
}

/**
 * The send-backs started from here or over the API, newest first: what each chose and did. A
 * running one can be stopped: what it sent stays sent, and sending back again sends the rest.
 */
function RedriveTable({ api, runs, onStopped }: { api: ApiClient; runs: Redrive[] | undefined; onStopped: () => void }) {
  const [error, setError] = useState<string>();
  const [stopping, setStopping] = useState<string>();
  const stop = async (run: Redrive) => {
    setError(undefined);
    setStopping(run.id);
    try {
      await api.post<Redrive>(`/dead-letters/redrives/${run.id}/cancel`);
      onStopped();
    } catch (failure) {
      setError(errorMessage(failure));
    } finally {
      setStopping(undefined);
    }
  };
  return (
    <>
      <ErrorMessage message={error} />
      <ScrollingTable caption="Send-backs" columns={['Started', 'By', 'Letters of', 'Since', 'Status', 'Read', 'Sent back', 'Left', 'Finished']}>
        <tbody>
          {runs?.length === 0 && (
            <tr>
              <td colSpan={9}>None yet.</td>
            </tr>
          )}
          {runs?.map((run) => (
            <tr key={run.id}>
              <td>{formatTime(run.startedAt)}</td>
              <td>{run.via === 'cli' ? 'tally redrive (shell)' : run.requestedBy === null ? '' : keyLabel(run.requestedBy)}</td>
              <td>{lettersText(run)}</td>
              <td>{run.since === null ? '' : formatTime(run.since)}</td>
              <td>
                {statusText(run)}
                {run.status === 'running' && run.cancelRequestedAt === null && (
                  <>
                    {' '}
                    <button
                      type="button"
                      class="secondary"
                      disabled={stopping === run.id}
                      aria-label={`Stop the send-back of ${lettersText(run)} started ${formatTime(run.startedAt)}`}
                      onClick={() => void stop(run)}
                    >
                      Stop
                    </button>
                  </>
                )}
              </td>
              <td>{run.result.read}</td>
              <td>{run.dryRun ? `would be ${run.result.republished}` : run.result.republished}</td>
              <td>{leftText(run.result)}</td>
              <td>{run.finishedAt === null ? '' : formatTime(run.finishedAt)}</td>
            </tr>
          ))}
        </tbody>
      </ScrollingTable>
    </>
  );
}

/** Every error code (EVERY_CODE), or one of those the page has seen. */
function ErrorCodeSelect({ label, value, codes, onChange }: { label: string; value: string; codes: readonly string[]; onChange: (code: string) => void }) {
  return (
    <SelectField label={label} value={value} onChange={(event) => onChange(event.currentTarget.value)}>
      <option value={EVERY_CODE}>Every error code</option>
      {codes.map((known) => (
        <option key={known} value={known}>
          {known}
        </option>
      ))}
    </SelectField>
  );
}

/**
 * Sends the letters of an error code (or of every code) back to the usage topic once their cause
 * is fixed, as `tally redrive` does: Count first, then Send back after a confirmation.
 */
function SendBack({ api, codes, onStarted }: { api: ApiClient; codes: readonly string[]; onStarted: () => void }) {
  const [code, setCode] = useState(EVERY_CODE);
  const [since, setSince] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string>();
  const [confirming, setConfirming] = useState(false);
  const body = (dryRun: boolean) => ({
    ...(code === EVERY_CODE ? { all: true } : { errorCodes: [code] }),
    ...(since.trim() !== '' ? { since: since.trim() } : {}),
    ...(dryRun ? { dryRun: true } : {}),
  });
  const start = async (dryRun: boolean) => {
    setErrors({});
    setGeneral(undefined);
    try {
      await api.post<Redrive>('/dead-letters/redrives', { body: body(dryRun) });
      onStarted();
    } catch (failure) {
      const found = fieldErrors(failure, (field) => field === 'since');
      setErrors(found.fields);
      // The confirmation shows a refusal of the send-back itself (another one running) and stays open.
      if (!dryRun && found.general !== undefined) throw failure;
      setGeneral(found.general);
    }
  };
  const chosen = code === EVERY_CODE ? 'every error code' : code;
  return (
    <>
      <h2>Send letters back</h2>
      <p>
        Once the cause is fixed (the balance opened, the schema restored, a release deployed), send the letters back to the usage topic: each is charged once,
        however often it is sent. A letter refused for what it is fails again and is dead-lettered anew. Count first to see how many would go.
      </p>
      <form noValidate onSubmit={(event) => event.preventDefault()}>
        <ErrorCodeSelect label="Letters of" value={code} codes={codes} onChange={setCode} />
        <Field
          label="Dead-lettered since"
          value={since}
          error={errors.since}
          hint="Optional: a date-time such as 2026-03-01T12:00:00Z; empty for every letter."
          onInput={(event) => setSince(event.currentTarget.value)}
        />
        <ErrorMessage message={general} />
        <div class="actions">
          <button type="button" class="secondary" onClick={() => void start(true)}>
            Count
          </button>
          <button type="button" onClick={() => setConfirming(true)}>
            Send back
          </button>
        </div>
      </form>
      <ConfirmDialog
        title="Send dead letters back"
        open={confirming}
        confirmLabel="Send back"
        keepLabel="Keep them"
        onClose={() => setConfirming(false)}
        onConfirm={() => start(false)}
      >
        <p>
          Sends the letters of {chosen}
          {since.trim() !== '' && ` dead-lettered since ${since.trim()}`} back to the usage topic, to be metered again. The letters stay on the dead-letter topic.
        </p>
      </ConfirmDialog>
    </>
  );
}

interface LetterFilter {
  readonly errorCode: string;
  readonly key: string;
  readonly usageEventId: string;
}

/** Narrows the list to an error code, a key (the customer), a usage event, or several; applied by Show. */
function FilterForm({ codes, onShow }: { codes: readonly string[]; onShow: (filter: LetterFilter) => void }) {
  const [errorCode, setErrorCode] = useState(EVERY_CODE);
  const [key, setKey] = useState('');
  const [usageEventId, setUsageEventId] = useState('');
  return (
    <form
      class="inline-form"
      role="search"
      aria-label="Filter dead letters"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        onShow({ errorCode, key: key.trim(), usageEventId: usageEventId.trim() });
      }}
    >
      <ErrorCodeSelect label="Error code" value={errorCode} codes={codes} onChange={setErrorCode} />
      <Field label="Key (customer)" value={key} onInput={(event) => setKey(event.currentTarget.value)} />
      <Field label="Usage event id" value={usageEventId} onInput={(event) => setUsageEventId(event.currentTarget.value)} />
      <button type="submit" class="secondary">
        Show
      </button>
    </form>
  );
}

/**
 * A letter's last two cells wherever letters are listed: when a send-back last sent it, and the
 * link to the whole letter, named for where it sits on the topic.
 */
export function SentBackAndShow({ letter }: { letter: { readonly partition: number; readonly offset: string; readonly sentBackAt: string | null } }) {
  return (
    <>
      <td>{letter.sentBackAt === null ? '' : formatTime(letter.sentBackAt)}</td>
      <td>
        <a href={href({ screen: 'dead-letter', partition: letter.partition, offset: letter.offset })} aria-label={`Show the whole letter ${letter.partition}@${letter.offset}`}>
          Show
        </a>
      </td>
    </>
  );
}

/** The usage events that could not be metered lately, newest first, read again every five seconds, and their send-backs. */
export function DeadLettersPage({ api }: { api: ApiClient }) {
  const [letters, setLetters] = useState<DeadLetter[]>();
  const [filter, setFilter] = useState<LetterFilter>({ errorCode: EVERY_CODE, key: '', usageEventId: '' });
  // Every code seen so far, so that a list narrowed to one code still offers the others.
  const [codes, setCodes] = useState<readonly string[]>([]);
  const [runs, setRuns] = useState<Redrive[]>();
  const [version, setVersion] = useState(0);
  const running = runs?.some((run) => run.status === 'running') === true;
  const filtered = filter.errorCode !== EVERY_CODE || filter.key !== '' || filter.usageEventId !== '';
  const error = usePolling(
    async () => {
      const query = {
        limit: '100',
        ...(filter.errorCode !== EVERY_CODE ? { errorCode: filter.errorCode } : {}),
        ...(filter.key !== '' ? { key: filter.key } : {}),
        ...(filter.usageEventId !== '' ? { usageEventId: filter.usageEventId } : {}),
      };
      const items = (await api.get<{ items: DeadLetter[] }>('/dead-letters', { query })).items;
      setLetters(items);
      setCodes((known) => {
        const seen = new Set(known);
        for (const letter of items) if (letter.errorCode !== null) seen.add(letter.errorCode);
        return seen.size === known.length ? known : [...seen].sort();
      });
    },
    REFRESH_MS,
    [api, filter],
  );
  const runsError = usePolling(
    async () => {
      setRuns((await api.get<{ items: Redrive[] }>('/dead-letters/redrives', { query: { limit: '20' } })).items);
    },
    running ? RUNNING_REFRESH_MS : REFRESH_MS,
    [api, running, version],
  );
  return (
    <section>
      <h1>Dead letters</h1>
      <p>
        Usage events that could not be metered. The whole message stays on the dead-letter topic (Show reads it from there), and on its source topic at the partition
        and offset shown under From; one sent back stays listed, with when under Sent back.
      </p>
      <FilterForm codes={codes} onShow={setFilter} />
      <ErrorMessage message={error} />
      <ScrollingTable caption="Most recent dead letters" columns={LETTER_COLUMNS}>
        <tbody>
          {letters?.length === 0 && (
            <tr>
              <td colSpan={LETTER_COLUMNS.length}>{filtered ? 'No dead letters match.' : 'No dead letters.'}</td>
            </tr>
          )}
          {letters?.map((letter) => (
            <tr key={`${letter.partition}:${letter.offset}`}>
              <td>{formatTime(letter.deadLetteredAt)}</td>
              <td>{letter.errorCode ?? ''}</td>
              <td>{letter.reason ?? ''}</td>
              <td>{letter.key ?? ''}</td>
              <td class="usage-event-id">{letter.usageEventId === null ? '' : <code>{letter.usageEventId}</code>}</td>
              <td class="wraps">{letter.sourceTopic === null ? '' : `${letter.sourceTopic} ${letter.sourcePartition ?? '?'}@${letter.sourceOffset ?? '?'}`}</td>
              <td class="value-preview">
                <code>{letter.valuePreview ?? ''}</code>
              </td>
              <SentBackAndShow letter={letter} />
            </tr>
          ))}
        </tbody>
      </ScrollingTable>
      <SendBack api={api} codes={codes} onStarted={() => setVersion(version + 1)} />
      <ErrorMessage message={runsError} />
      <RedriveTable api={api} runs={runs} onStopped={() => setVersion(version + 1)} />
      <p>
        From a shell: <code>npm run tally -- redrive --error-code &lt;error&gt;</code> (one send-back at a time, wherever it is started).
      </p>
    </section>
  );
}
