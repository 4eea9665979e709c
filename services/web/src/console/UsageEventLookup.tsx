import { useState } from 'preact/hooks';
import { errorMessage, path, type ApiClient } from '../shared/apiClient';
import type { CreditBalance, UsageEntries } from '../shared/apiTypes';
import { LedgerTable } from '../shared/LedgerTable';
import { formatTime } from '../shared/format';
import { ErrorMessage, Field, ScrollingTable, useBusyAction } from '../shared/ui';
import { SentBackAndShow } from './DeadLettersPage';
import { href } from './router';

/** What the answer says, in a sentence: metered or not, and what it charged; where to look next when it is not. */
function Verdict({ found }: { found: UsageEntries }) {
  const letters = found.deadLetters ?? [];
  if (!found.metered && letters.length > 0) {
    return <>{`Not metered: it was dead-lettered${letters.length === 1 ? '' : ` ${letters.length} times`}. Fix what the reason says and send it again, or send its letter back.`}</>;
  }
  if (!found.metered) {
    return (
      <>
        Not metered: it is still on the usage topic (see the lag on <a href={href({ screen: 'status' })}>Status</a>), or it was dead-lettered (see{' '}
        <a href={href({ screen: 'dead-letters' })}>Dead letters</a>).
      </>
    );
  }
  if (found.balances.length === 0) return <>Metered, and it charged nothing: no rule of this customer's products matched it, or it cost nothing.</>;
  return <>{`Metered: it wrote on ${found.balances.length === 1 ? 'one balance' : `${found.balances.length} balances`}.`}</>;
}

/** The letters that name the event: each time it could not be metered, and why; each links to the whole letter. */
function ItsDeadLetters({ letters }: { letters: NonNullable<UsageEntries['deadLetters']> }) {
  return (
    <ScrollingTable caption="Its dead letters, newest first" columns={['When', 'Error', 'Reason', 'Sent back', 'Whole letter']}>
      <tbody>
        {letters.map((letter) => (
          <tr key={`${letter.partition}:${letter.offset}`}>
            <td>{formatTime(letter.deadLetteredAt)}</td>
            <td>{letter.errorCode ?? ''}</td>
            <td>{letter.reason ?? ''}</td>
            <SentBackAndShow letter={letter} />
          </tr>
        ))}
      </tbody>
    </ScrollingTable>
  );
}

/**
 * Looks up one of the customer's usage events by its id: whether it was metered and the entries
 * it wrote on each balance (GET /v1/customers/{customerId}/usage-events/{eventId}), for the
 * support question "was this event charged, and how much?".
 */
export function UsageEventLookup({ api, customerId, balances }: { api: ApiClient; customerId: string; balances: readonly CreditBalance[] }) {
  const [eventId, setEventId] = useState('');
  const [found, setFound] = useState<UsageEntries>();
  const [error, setError] = useState<string>();
  const [busy, busyWhile] = useBusyAction();
  const nameOf = (balanceId: string, productId: string) => balances.find((balance) => balance.id === balanceId)?.name ?? productId;
  return (
    <section class="card" aria-labelledby="usage-lookup-heading">
      <h2 id="usage-lookup-heading">Find a usage event</h2>
      <form
        class="inline-form"
        role="search"
        aria-label="Usage event"
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          try {
            setFound(await api.get<UsageEntries>(path`/customers/${customerId}/usage-events/${eventId.trim()}`));
            setError(undefined);
          } catch (failure) {
            setFound(undefined);
            setError(errorMessage(failure));
          }
        })}
      >
        <Field label="Usage event id" value={eventId} required maxLength={256} onInput={(event) => setEventId(event.currentTarget.value)} hint="The id its producer sent, e.g. evt-1." />
        <button type="submit" disabled={busy || eventId.trim() === ''}>
          Find
        </button>
      </form>
      <ErrorMessage message={error} />
      {found !== undefined && (
        <>
          <p role="status">
            <code>{found.eventId}</code>: <Verdict found={found} />
          </p>
          {found.balances.map((written) => (
            <LedgerTable key={written.balanceId} entries={written.entries} caption={`On ${nameOf(written.balanceId, written.productId)}`} audience="console" />
          ))}
          {found.deadLetters !== undefined && found.deadLetters.length > 0 && <ItsDeadLetters letters={found.deadLetters} />}
        </>
      )}
    </section>
  );
}
