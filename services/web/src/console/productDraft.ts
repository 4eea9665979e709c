/**
 * The product form's model: a credit product as the form edits it (every field a string as
 * typed), and the product the API takes back. What the API answered and the form sends back
 * unchanged is exactly what it answered: a consumption rule's property filters above all, since a
 * filter rewritten on the way (a value cut at a comma, trimmed of a space) no longer matches the
 * usage it priced, which is then not metered at all.
 */

import { rebaseEdits } from '../shared/rebaseEdits';

/** One property filter of a rule: the usage event's property `key` must equal `value`, character for character. */
export interface FilterDraft {
  key: string;
  value: string;
}

export interface RuleDraft {
  event: string;
  credits: string;
  perUnitOf: string;
  /** In the order the API answered them; one row each, so any property name and value is kept as it is. */
  where: FilterDraft[];
}

export interface BundleDraft {
  id: string;
  credits: string;
  amount: string;
  currency: string;
  purchaseOption: boolean;
}

export interface Draft {
  id: string;
  name: string;
  description: string;
  lowBalanceThreshold: string;
  consumption: RuleDraft[];
  bundles: BundleDraft[];
}

/** The body of POST /v1/credit-products (with an id, when one is typed) and of PATCH /v1/credit-products/{id}. */
export interface ProductBody {
  readonly id?: string;
  readonly name: string;
  readonly description: string;
  readonly lowBalanceThreshold: string | null;
  readonly consumption: Array<{ readonly event: string; readonly credits: string; readonly perUnitOf?: string; readonly where?: Record<string, string> }>;
  readonly bundles: Array<{ readonly id: string; readonly credits: string; readonly price: { readonly amount: string; readonly currency: string }; readonly purchaseOption: boolean }>;
}

export const emptyDraft = (): Draft => ({ id: '', name: '', description: '', lowBalanceThreshold: '', consumption: [emptyRule()], bundles: [] });
export const emptyRule = (): RuleDraft => ({ event: '', credits: '', perUnitOf: '', where: [] });
export const emptyFilter = (): FilterDraft => ({ key: '', value: '' });
export const emptyBundle = (): BundleDraft => ({ id: '', credits: '', amount: '', currency: 'EUR', purchaseOption: true });

/** What a stored document holds at `key`, as the form's text: a number as written, nothing as empty. */
function textAt(value: unknown, key: string): string {
  const found = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  if (found === undefined || found === null) return '';
  return typeof found === 'string' ? found : typeof found === 'object' ? JSON.stringify(found) : String(found as number | boolean);
}

const objectsAt = (value: unknown, key: string): unknown[] => {
  const found = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return Array.isArray(found) ? found.filter((item) => typeof item === 'object' && item !== null && !Array.isArray(item)) : [];
};

/**
 * The draft of a product as the API answered it: a valid one (GET, a save's answer), or a stored
 * document that fails validation (the 409 carries it as stored). One reading for both, so that a
 * valid product opens exactly as it would to repair: every field as text, whatever its type, so
 * that the operator sees what is wrong and corrects it; a filter's property and value as answered.
 */
export function draftOf(stored: unknown): Draft {
  return {
    id: textAt(stored, 'id'),
    name: textAt(stored, 'name'),
    description: textAt(stored, 'description'),
    lowBalanceThreshold: textAt(stored, 'lowBalanceThreshold'),
    consumption: objectsAt(stored, 'consumption').map((rule) => {
      const where = (rule as Record<string, unknown>).where;
      return {
        event: textAt(rule, 'event'),
        credits: textAt(rule, 'credits'),
        perUnitOf: textAt(rule, 'perUnitOf'),
        where: typeof where === 'object' && where !== null && !Array.isArray(where) ? Object.keys(where).map((key) => ({ key, value: textAt(where, key) })) : [],
      };
    }),
    bundles: objectsAt(stored, 'bundles').map((bundle) => {
      const price = (bundle as Record<string, unknown>).price;
      return {
        id: textAt(bundle, 'id'),
        credits: textAt(bundle, 'credits'),
        amount: textAt(price, 'amount'),
        currency: textAt(price, 'currency'),
        purchaseOption: (bundle as Record<string, unknown>).purchaseOption !== false,
      };
    }),
  };
}

/**
 * The product as the API takes it; the API validates it and says which field is wrong. Nothing is
 * trimmed or split: a filter's property and value go as typed (see draftProblems for what is not sent).
 */
export function bodyOf(draft: Draft, creating: boolean): ProductBody {
  return {
    ...(creating && draft.id !== '' ? { id: draft.id } : {}),
    name: draft.name,
    description: draft.description,
    lowBalanceThreshold: draft.lowBalanceThreshold === '' ? null : draft.lowBalanceThreshold,
    consumption: draft.consumption.map((rule) => ({
      event: rule.event,
      credits: rule.credits,
      ...(rule.perUnitOf !== '' ? { perUnitOf: rule.perUnitOf } : {}),
      // fromEntries defines each key as the object's own, `__proto__` included.
      ...(rule.where.length > 0 ? { where: Object.fromEntries(rule.where.map((filter) => [filter.key, filter.value])) } : {}),
    })),
    bundles: draft.bundles.map((bundle) => ({
      id: bundle.id,
      credits: bundle.credits,
      price: { amount: bundle.amount, currency: bundle.currency },
      purchaseOption: bundle.purchaseOption,
    })),
  };
}

/** The body of PATCH /v1/credit-products/{id}: the product's texts and limit, and its rules and bundles when they are sent. */
export type ProductChange = Omit<ProductBody, 'id' | 'consumption' | 'bundles'> & Partial<Pick<ProductBody, 'consumption' | 'bundles'>>;

/**
 * The change a save of `draft` sends for the product `stored` as the form read it (the API's answer,
 * or the document as stored when it fails validation): its rules and its bundles only when they
 * differ from what was read, each list whole. A list left as read is not sent, so the API keeps it
 * as stored and holds none of it to what only a write is (no rule repeated whole, no filter on a
 * property with no name, a currency ISO 4217 has): a product stored before those refusals takes a
 * rename. A list that differs from the document as stored is sent, so a save repairs what the form
 * shows rewritten (a number as text).
 */
export function changeOf(draft: Draft, stored: unknown): ProductChange {
  const { consumption, bundles, ...fields } = bodyOf(draft, false);
  const asRead = (key: 'consumption' | 'bundles') => (typeof stored === 'object' && stored !== null ? (stored as Record<string, unknown>)[key] : undefined);
  return {
    ...fields,
    ...(same(consumption, asRead('consumption')) ? {} : { consumption }),
    ...(same(bundles, asRead('bundles')) ? {} : { bundles }),
  };
}

/** The field of a rule's filter row, as the form names it for its own checks (the API names a filter by its property). */
export const filterField = (rule: number, filter: number) => `consumption.${rule}.filters.${filter}`;

/** A rule as a whole, as the form names it for its own checks. */
export const ruleField = (rule: number) => `consumption.${rule}`;


/** Credits typed as a decimal, in one form ("1.50" and "01.5" are "1.5"), so that rules are compared by value; anything else as typed (the API refuses it). */
function creditsValue(credits: string): string {
  const decimal = /^(\d+)(?:\.(\d*))?$/.exec(credits);
  if (decimal === null) return credits;
  const whole = decimal[1]!.replace(/^0+(?=\d)/, '');
  const fraction = (decimal[2] ?? '').replace(/0+$/, '');
  return fraction === '' ? whole : `${whole}.${fraction}`;
}

/** A rule as the API compares rules for sameness: event, per unit, filters as a set of property and value, credits by value. */
function ruleIdentity(rule: RuleDraft): string {
  const where = rule.where.map((filter): [string, string] => [filter.key, filter.value]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([rule.event, rule.perUnitOf, creditsValue(rule.credits), where]);
}

/**
 * What the form refuses to send: by filterField, a filter with no property (it would match no
 * usage event, so the rule would price nothing) and a property filtered twice in one rule (one
 * object keeps one value: the other row would be dropped unseen); by ruleField, a rule the same
 * as one before it (every matching rule applies: each event would be charged twice). The API
 * refuses a filter on no property and a repeated rule too, saying so; the form says it first, by the row.
 * Only of rules that are sent (`sent`, the body; every rule of a new product): rules left as stored
 * are not, and the API keeps a product stored with them before these refusals as it is.
 */
export function draftProblems(draft: Draft, sent: { readonly consumption?: unknown } = bodyOf(draft, true)): Record<string, string> {
  const problems: Record<string, string> = {};
  if (sent.consumption === undefined) return problems;
  const rules = new Map<string, number>();
  draft.consumption.forEach((rule, ruleIndex) => {
    const seen = new Set<string>();
    rule.where.forEach((filter, filterIndex) => {
      if (filter.key === '') problems[filterField(ruleIndex, filterIndex)] = 'name the property, or remove this filter: a filter on no property matches no usage';
      else if (seen.has(filter.key)) problems[filterField(ruleIndex, filterIndex)] = `property "${filter.key}" is filtered twice in this rule: keep one`;
      seen.add(filter.key);
    });
    const identity = ruleIdentity(rule);
    const first = rules.get(identity);
    if (first !== undefined) {
      problems[ruleField(ruleIndex)] =
        `rule ${ruleIndex + 1} is the same as rule ${first + 1} (same event, per unit, filters and credits): every matching rule applies, so each event would be charged twice; remove one`;
    } else rules.set(identity, ruleIndex);
  });
  return problems;
}

/**
 * The fields of a product a change may touch, as a save made after someone else's (412) compares
 * them: each replaced whole, as PATCH replaces it (the id never changes).
 */
export const PRODUCT_FIELDS = ['name', 'description', 'lowBalanceThreshold', 'consumption', 'bundles'] as const;
export type ProductField = (typeof PRODUCT_FIELDS)[number];

/** How a draft and a change made meanwhile stand against the version the draft started from. */
export interface DraftComparison {
  /** The fields the operator changed. */
  readonly mine: ProductField[];
  /** The fields the other change changed. */
  readonly theirs: ProductField[];
  /** Of the fields both changed, those they set differently: a rebase keeps the operator's. */
  readonly conflicts: ProductField[];
}

/** Equal as the API would store them: arrays in order, object keys in any order. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && same((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/** The three-way compare of a draft (`mine`) and the product as it is now (`current`) with the version the draft started from (`base`). */
export function compareDrafts(base: Draft, mine: Draft, current: Draft): DraftComparison {
  const { mine: changedByMe, theirs, conflicts } = rebaseEdits(PRODUCT_FIELDS, base, mine, current, same);
  return { mine: changedByMe, theirs, conflicts };
}

/** The current version with the fields the operator changed from `base` set as the operator set them: what to review and save on the current revision. */
export function rebaseDraft(base: Draft, mine: Draft, current: Draft): Draft {
  // A copy: the draft shares no list with either version it was made from.
  return structuredClone(rebaseEdits(PRODUCT_FIELDS, base, mine, current, same).values);
}
