import { stringify, type Stringifier } from 'csv-stringify';
import type { LedgerEntryView } from './ledgerEntryView';

/**
 * The CSV's columns, in order: the JSON ledger entry's fields, with `purchase`, `grant`, `actor`
 * and `refund` spread out. Columns added later go at the end, so a reader by position keeps working.
 */
export const LEDGER_CSV_COLUMNS = [
  'id',
  'type',
  'occurredAt',
  'recordedAt',
  'credits',
  'balanceAfter',
  'heldAfter',
  'source',
  'reason',
  'usageEventId',
  'usageEvent',
  'quantity',
  'holdId',
  'purchaseBundleId',
  'purchaseQuantity',
  'purchaseUnitPrice',
  'purchaseTotalPrice',
  'purchaseCurrency',
  'grantSubscriptionId',
  'grantPlanId',
  'grantPeriod',
  'grantPeriodStart',
  'grantPeriodEnd',
  'revision',
  'position',
  'actorKind',
  'actorKeyId',
  'actorKeyName',
  'refundEntryId',
  'refundedBy',
] as const;

export type LedgerCsvRow = Readonly<Record<(typeof LEDGER_CSV_COLUMNS)[number], string | number | null>>;

export function ledgerCsvRow(entry: LedgerEntryView): LedgerCsvRow {
  const { purchase, grant, actor } = entry;
  return {
    id: entry.id,
    type: entry.type,
    occurredAt: entry.occurredAt,
    recordedAt: entry.recordedAt,
    credits: entry.credits,
    balanceAfter: entry.balanceAfter,
    heldAfter: entry.heldAfter,
    source: entry.source,
    reason: entry.reason,
    usageEventId: entry.usageEventId,
    usageEvent: entry.usageEvent,
    quantity: entry.quantity,
    holdId: entry.holdId,
    purchaseBundleId: purchase?.bundleId ?? null,
    purchaseQuantity: purchase?.quantity ?? null,
    purchaseUnitPrice: purchase?.unitPrice ?? null,
    purchaseTotalPrice: purchase?.totalPrice ?? null,
    purchaseCurrency: purchase?.currency ?? null,
    grantSubscriptionId: grant?.subscriptionId ?? null,
    grantPlanId: grant?.planId ?? null,
    grantPeriod: grant?.period ?? null,
    grantPeriodStart: grant?.periodStart ?? null,
    grantPeriodEnd: grant?.periodEnd ?? null,
    revision: entry.revision,
    position: entry.position,
    actorKind: actor?.kind ?? null,
    actorKeyId: actor?.kind === 'key' ? actor.keyId : null,
    actorKeyName: actor?.kind === 'key' ? actor.keyName : null,
    refundEntryId: entry.refund?.entryId ?? null,
    refundedBy: entry.refundedBy,
  };
}

const DECIMAL = /^-?\d+(\.\d+)?$/;
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * A cell a spreadsheet would run as a formula (a reason or usage event name starting with `=`,
 * `+`, `-` or `@`, as OWASP's "CSV injection" describes) gets a leading `'`, which spreadsheets
 * show as text; decimal amounts such as `-1.5` stay numbers.
 */
export function spreadsheetSafe(value: string): string {
  return FORMULA_START.test(value) && !DECIMAL.test(value) ? `'${value}` : value;
}

/** The CSV writer of ledger rows: a header line, RFC 4180 quoting, CRLF line ends, empty cells for null. */
export function ledgerCsvStringifier(): Stringifier {
  return stringify({ header: true, columns: [...LEDGER_CSV_COLUMNS], record_delimiter: 'windows', cast: { string: spreadsheetSafe } });
}
