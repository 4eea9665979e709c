import { Type, type Static } from '@sinclair/typebox';
import { formatCredits, isoFromMillis, type Micros } from '@tally/domain';
import { nullableString, SIGNED_CREDITS_PATTERN } from '../apiSchemas';
import { STATEMENT_CONSUMPTION_SOURCES, STATEMENT_TOP_UP_SOURCES } from '@tally/ledger';
import type { BalanceStatement, StatementFigures } from './balanceStatement';

const amount = (description: string) => Type.String({ description, pattern: SIGNED_CREDITS_PATTERN, examples: ['12.5'] });
const figures = (when: string) =>
  Type.Object({
    balance: amount(`The balance ${when}; negative after an overdraft or a deduction past zero.`),
    held: amount(`Credits held by open holds ${when}.`),
  });
const bySource = (sources: readonly string[], what: string) =>
  Type.Object(Object.fromEntries(sources.map((source) => [source, amount(`${what} with source ${source}.`)])), { additionalProperties: false });

export const BalanceStatementSchema = Type.Object(
  {
    balanceId: Type.String(),
    from: Type.String({ format: 'date-time' }),
    to: Type.String({ format: 'date-time' }),
    opening: figures('when the period began'),
    closing: figures('when the period ended (or now, for a period that has not)'),
    toppedUp: amount('Credits added in the period: the sum of toppedUpBySource.'),
    consumed: amount('Credits taken in the period: the sum of consumedBySource.'),
    toppedUpBySource: bySource(STATEMENT_TOP_UP_SOURCES, 'Credits added'),
    consumedBySource: bySource(STATEMENT_CONSUMPTION_SOURCES, 'Credits taken'),
    entries: Type.Integer({ description: 'Ledger entries recorded in the period, of every type.' }),
    firstRevision: nullableString({ description: "The revision of the period's first entry; null when it has none." }),
    lastRevision: nullableString({ description: "The revision of the period's last entry; null when it has none." }),
  },
  { additionalProperties: false },
);

export type BalanceStatementView = Static<typeof BalanceStatementSchema>;

const sum = (amounts: Readonly<Record<string, Micros>>) => Object.values(amounts).reduce((total, micros) => total + micros, 0n);
const formatAll = (amounts: Readonly<Record<string, Micros>>) => Object.fromEntries(Object.entries(amounts).map(([source, micros]) => [source, formatCredits(micros)]));
const figuresView = ({ balance, held }: StatementFigures) => ({ balance: formatCredits(balance), held: formatCredits(held) });

/** A statement as the API answers it: amounts as decimal strings, computed from micro-credits, never floats. */
export function balanceStatementView(balanceId: string, period: { readonly from: number; readonly to: number }, statement: BalanceStatement): BalanceStatementView {
  return {
    balanceId,
    from: isoFromMillis(period.from),
    to: isoFromMillis(period.to),
    opening: figuresView(statement.opening),
    closing: figuresView(statement.closing),
    toppedUp: formatCredits(sum(statement.toppedUp)),
    consumed: formatCredits(sum(statement.consumed)),
    toppedUpBySource: formatAll(statement.toppedUp),
    consumedBySource: formatAll(statement.consumed),
    entries: statement.entries,
    firstRevision: statement.firstRevision?.toString() ?? null,
    lastRevision: statement.lastRevision?.toString() ?? null,
  };
}
