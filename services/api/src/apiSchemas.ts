/**
 * JSON schemas shared by the routes: the response shapes (registered once with `$id`, so the
 * OpenAPI document names them) and the patterns every input field is checked against before a
 * handler runs. Bounded lengths everywhere: the API never holds an unbounded string.
 */

/** A non-negative amount as the domain parses it: up to 16 integer and 6 fractional digits. */
export const CREDITS_PATTERN = '^[0-9]{1,16}(\\.[0-9]{1,6})?$';
/** As isValidIdentifier in @tally/domain. */
export const IDENTIFIER_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$';

/** An integer from 1 to 500 (querystrings are text: the API does not coerce types anywhere). */
export const LIMIT_PATTERN = '^(500|[1-4][0-9]{2}|[1-9][0-9]?)$';
/** A stream revision, as the ledger's `next` cursor gives it; 18 digits stay within PostgreSQL's bigint. */
export const CURSOR_PATTERN = '^[0-9]{1,18}$';
export const IDEMPOTENCY_KEY_PATTERN = '^[!-~]{1,255}$';

/** What a failed pattern means, in words, for validation messages. */
export const PATTERN_MESSAGES: Readonly<Record<string, string>> = {
  [CREDITS_PATTERN]: 'must be a decimal string with at most 16 integer and 6 fractional digits, e.g. "12.5"',
  [IDENTIFIER_PATTERN]: 'must be 1-128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
  [LIMIT_PATTERN]: 'must be an integer from 1 to 500',
  [CURSOR_PATTERN]: 'must be a cursor as returned in `next`',
  [IDEMPOTENCY_KEY_PATTERN]: 'must be 1-255 printable ASCII characters without spaces',
};

export const credits = { type: 'string', pattern: CREDITS_PATTERN, examples: ['100', '12.5'] } as const;
export const nullableCredits = { type: ['string', 'null'], pattern: CREDITS_PATTERN, examples: ['10', null] } as const;
export const identifier = { type: 'string', pattern: IDENTIFIER_PATTERN } as const;
export const reason = { type: ['string', 'null'], maxLength: 500 } as const;
/** Customer ids come from the producers' usage events (1-256 characters), so any such text is accepted. */
export const customerId = { type: 'string', minLength: 1, maxLength: 256 } as const;

export const ERROR_REF = { $ref: 'Error#' } as const;
export const BALANCE_REF = { $ref: 'CreditBalance#' } as const;
export const PRODUCT_REF = { $ref: 'CreditProduct#' } as const;
export const LEDGER_ENTRY_REF = { $ref: 'LedgerEntry#' } as const;

/** Every route may answer these; 4xx and 5xx bodies are always `{ error, message }`. */
export const errorResponses = { '4xx': ERROR_REF, '5xx': ERROR_REF } as const;

export const consistentQuerystring = {
  type: 'object',
  additionalProperties: false,
  properties: {
    consistent: {
      type: 'string',
      enum: ['true', 'false'],
      description: "true: wait (bounded) until the read model reflects every write made before this request; 503 not_consistent when it does not in time.",
    },
  },
} as const;

export const balanceParams = {
  type: 'object',
  additionalProperties: false,
  required: ['balanceId'],
  properties: { balanceId: identifier },
} as const;

export const idempotencyKeyHeaders = {
  type: 'object',
  properties: {
    'idempotency-key': {
      type: 'string',
      pattern: IDEMPOTENCY_KEY_PATTERN,
      description: 'The same key with the same body returns the first result and changes nothing; with another body: 409.',
    },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;

const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string' }, message: { type: 'string' } },
} as const;

const balanceSchema = {
  $id: 'CreditBalance',
  type: 'object',
  required: ['id', 'customerId', 'productId', 'name', 'balance', 'lowBalanceThreshold', 'belowThreshold', 'updatedAt', 'position'],
  properties: {
    id: { type: 'string' },
    customerId: { type: 'string' },
    productId: { type: 'string' },
    name: { type: 'string' },
    balance: { type: 'string', description: 'Decimal string; may be negative after usage.' },
    lowBalanceThreshold: nullableString,
    belowThreshold: { type: 'boolean' },
    updatedAt: { type: 'string', format: 'date-time' },
    position: { type: 'string', description: 'Global event store position this view reflects.' },
  },
} as const;

const productSchema = {
  $id: 'CreditProduct',
  type: 'object',
  required: ['id', 'name', 'description', 'consumption', 'lowBalanceThreshold', 'bundles'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    consumption: {
      type: 'array',
      items: {
        type: 'object',
        required: ['event', 'credits'],
        properties: {
          event: { type: 'string' },
          credits: { type: 'string' },
          perUnitOf: { type: 'string' },
          where: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
    lowBalanceThreshold: nullableString,
    bundles: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'credits', 'price'],
        properties: {
          id: { type: 'string' },
          credits: { type: 'string' },
          price: {
            type: 'object',
            required: ['amount', 'currency'],
            properties: { amount: { type: 'string' }, currency: { type: 'string' } },
          },
        },
      },
    },
  },
} as const;

const ledgerEntrySchema = {
  $id: 'LedgerEntry',
  type: 'object',
  required: [
    'id', 'type', 'credits', 'balanceAfter', 'source', 'reason', 'usageEventId', 'usageEvent', 'quantity',
    'occurredAt', 'recordedAt', 'revision', 'position', 'purchase', 'grant',
  ],
  properties: {
    id: { type: 'string', description: 'Event id.' },
    type: {
      type: 'string',
      enum: ['CreditBalanceOpened', 'CreditToppedUp', 'CreditConsumed', 'LowBalanceWarned', 'CreditBalanceDepleted', 'CreditBalanceSettingsChanged'],
    },
    credits: { ...nullableString, description: 'Credits added (top-ups) or taken (consumption); null for other events.' },
    balanceAfter: { ...nullableString, description: 'The balance after the event; null where the event does not change or state it.' },
    source: { type: ['string', 'null'], enum: ['starting', 'manual', 'purchase', 'grant', 'usage', null] },
    reason: nullableString,
    usageEventId: nullableString,
    usageEvent: { ...nullableString, description: 'The usage event name, e.g. api_call.' },
    quantity: nullableString,
    occurredAt: { type: 'string', format: 'date-time' },
    recordedAt: { type: 'string', format: 'date-time' },
    revision: { type: 'string', description: 'Position within the balance stream; the pagination cursor.' },
    position: { type: 'string' },
    purchase: {
      type: ['object', 'null'],
      properties: {
        bundleId: { type: 'string' },
        quantity: { type: 'integer' },
        unitPrice: { type: 'string' },
        totalPrice: { type: 'string' },
        currency: { type: 'string' },
      },
    },
    grant: {
      type: ['object', 'null'],
      properties: {
        subscriptionId: { type: 'string' },
        planId: { type: 'string' },
        period: { type: 'integer' },
        periodStart: { type: 'string' },
        periodEnd: { type: 'string' },
      },
    },
  },
} as const;

export const sharedSchemas = [errorSchema, balanceSchema, productSchema, ledgerEntrySchema];
