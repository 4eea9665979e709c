import { useState } from 'preact/hooks';
import { path, type ApiClient } from './apiClient';
import type { BalanceStatement as Statement } from './apiTypes';
import { formatCredits, formatTime, monthName, monthOf, monthPeriod, signedCredits } from './format';
import { ErrorMessage, Field, ScrollingTable, usePolling } from './ui';

/** What each source is called on a statement; rows with nothing in the month are left out. */
const ADDED: readonly (readonly [keyof Statement['toppedUpBySource'], string])[] = [
  ['starting', 'Starting balance'],
  ['manual', 'Top-ups'],
  ['purchase', 'Purchases'],
  ['grant', 'Plan grants'],
  ['refund', 'Refunds'],
];
const TAKEN: readonly (readonly [keyof Statement['consumedBySource'], string])[] = [
  ['usage', 'Usage'],
  ['manual', 'Retained by hand'],
  ['hold', 'Captured holds'],
];

/**
 * A balance's statement of a calendar month (UTC), from `GET …/statement`: the balance when the
 * month began, what was added and used by source, and the balance when it ended (or now). Opens
 * on the current month; any month can be picked. A statement reads the balance's ledger from its
 * start, so it is read when opened or picked and then once a minute, not on every change of a
 * busy balance; the current month says when it was read.
 */
export function BalanceStatement({ api, balanceId }: { api: ApiClient; balanceId: string }) {
  const [open, setOpen] = useState(false);
  const [month, setMonth] = useState(() => monthOf(Date.now()));
  const [statement, setStatement] = useState<{ month: string; figures: Statement; readAt: number }>();
  const period = monthPeriod(month);
  const error = usePolling(
    async () => {
      if (period === undefined) return;
      const figures = await api.get<Statement>(path`/credit-balances/${balanceId}/statement`, { query: period });
      setStatement({ month, figures, readAt: Date.now() });
    },
    60_000,
    [api, balanceId, month],
    open && period !== undefined,
  );
  const shown = statement?.month === month ? statement.figures : undefined;
  const soFar = statement !== undefined && period !== undefined && Date.parse(period.to) > statement.readAt ? ` so far (read ${formatTime(new Date(statement.readAt).toISOString())})` : '';
  const rows = (labels: typeof ADDED | typeof TAKEN, amounts: Readonly<Record<string, string>>, sign: '+' | '−') =>
    labels
      .filter(([source]) => amounts[source] !== '0')
      .map(([source, label]) => (
        <tr key={source}>
          <th scope="row" class="indent">
            {label}
          </th>
          <td class="number">{signedCredits(amounts[source] ?? '0', sign)}</td>
        </tr>
      ));
  return (
    <details onToggle={(event) => setOpen(event.currentTarget.open)}>
      <summary>Monthly statement</summary>
      <Field label="Month" type="month" value={month} hint="Calendar month, UTC (YYYY-MM)" error={period === undefined ? 'Pick a month, e.g. 2026-03' : undefined} onInput={(event) => setMonth(event.currentTarget.value)} />
      <ErrorMessage message={error} />
      {shown !== undefined && (
        <ScrollingTable caption={`Statement for ${monthName(month) ?? month}${soFar}: ${shown.entries} ${shown.entries === 1 ? 'entry' : 'entries'}`} class="statement">
          <tbody>
            <tr>
              <th scope="row">Opening balance</th>
              <td class="number">{formatCredits(shown.opening.balance)}</td>
            </tr>
            <tr>
              <th scope="row">Added</th>
              <td class="number">{signedCredits(shown.toppedUp, '+')}</td>
            </tr>
            {rows(ADDED, shown.toppedUpBySource, '+')}
            <tr>
              <th scope="row">Used</th>
              <td class="number">{signedCredits(shown.consumed, '−')}</td>
            </tr>
            {rows(TAKEN, shown.consumedBySource, '−')}
            <tr class="total">
              <th scope="row">Closing balance</th>
              <td class="number">{formatCredits(shown.closing.balance)}</td>
            </tr>
            {shown.closing.held !== '0' && (
              <tr>
                <th scope="row">Held at the close</th>
                <td class="number">{formatCredits(shown.closing.held)}</td>
              </tr>
            )}
          </tbody>
        </ScrollingTable>
      )}
    </details>
  );
}
