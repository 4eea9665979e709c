import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The JSON schemas every domain's routes build on, as TypeBox values: the request and response
 * types are derived from them (the TypeBox type provider), so each shape is written once. The
 * JSON they produce is what the validators and the OpenAPI document use; nullable fields are
 * type arrays and enums `enum` lists (not TypeBox's anyOf), so messages and the document read as
 * plain JSON Schema. Bounded lengths everywhere: the API never holds an unbounded string.
 */

/** A non-negative amount as the domain parses it: up to 16 integer and 6 fractional digits. */
export const CREDITS_PATTERN = '^[0-9]{1,16}(\\.[0-9]{1,6})?$';
/** As isValidIdentifier in @tally/domain. */
/**
 * An amount Tally answers: CREDITS_PATTERN's decimals, signed (a balance may be below zero) and
 * with no bound on the integer digits (a balance is a sum of bounded amounts). For the document
 * and clients: answers are serialized without checking it.
 */
export const SIGNED_CREDITS_PATTERN = `^-?[0-9]+${CREDITS_PATTERN.slice(CREDITS_PATTERN.indexOf('(\\.'))}`;
export const IDENTIFIER_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$';
/** A UUID as the event store takes one: 36 characters, no `urn:uuid:` prefix (which ajv's `uuid` format admits). */
export const UUID_PATTERN = '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$';

/** An integer from 1 to 500 (querystrings are text: the API does not coerce types anywhere). */
export const LIMIT_PATTERN = '^(500|[1-4][0-9]{2}|[1-9][0-9]?)$';
/** A stream revision, as the ledger's `next` cursor gives it; 18 digits stay within PostgreSQL's bigint. */
export const CURSOR_PATTERN = '^[0-9]{1,18}$';
export const IDEMPOTENCY_KEY_PATTERN = '^[!-~]{1,255}$';
/**
 * An ETag as `If-Match` sends it back (a balance's, a product's or a subscription's version, quoted),
 * or `*`; 18 digits stay within PostgreSQL's bigint. The header's schema is etag.ts's ifMatchHeader.
 */
export const IF_MATCH_PATTERN = '^(\\*|"(0|[1-9][0-9]{0,17})")$';
/** A bundle's price amount, as the domain's creditProduct parses it: up to 12 integer and 6 fractional digits; never negative. */
export const PRICE_AMOUNT_PATTERN = '^[0-9]{1,12}(\\.[0-9]{1,6})?$';
/**
 * A purchase's total price as Tally answers it: unit price × quantity, so PRICE_AMOUNT_PATTERN's
 * decimals (the unit price's scale) with no bound on the integer digits.
 */
export const TOTAL_PRICE_PATTERN = `^[0-9]+${PRICE_AMOUNT_PATTERN.slice(PRICE_AMOUNT_PATTERN.indexOf('(\\.'))}`;
/** An ISO 4217 currency code. */
export const CURRENCY_PATTERN = '^[A-Z]{3}$';

/** What a failed pattern means, in words, for validation messages. */
export const PATTERN_MESSAGES: Readonly<Record<string, string>> = {
  [CREDITS_PATTERN]: 'must be a decimal string with at most 16 integer and 6 fractional digits, e.g. "12.5"',
  [IDENTIFIER_PATTERN]: 'must be 1-128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
  [LIMIT_PATTERN]: 'must be an integer from 1 to 500',
  [CURSOR_PATTERN]: 'must be a cursor as returned in `next`',
  [IDEMPOTENCY_KEY_PATTERN]: 'must be 1-255 printable ASCII characters without spaces',
  [IF_MATCH_PATTERN]: 'must be an ETag as read (the version, quoted: "3"), or *',
  [PRICE_AMOUNT_PATTERN]: 'must be a decimal string with at most 12 integer and 6 fractional digits, e.g. "9.90"',
  [CURRENCY_PATTERN]: 'must be three capital letters (ISO 4217), e.g. "EUR"',
};

/** A string or null, as `type: ['string', 'null']`. */
export const nullableString = (options: object = {}) => Type.Unsafe<string | null>({ type: ['string', 'null'], ...options });
/** One of `values`, as `{ type: 'string', enum }`. */
export const stringEnum = <T extends string>(values: readonly T[], options: object = {}) =>
  Type.Unsafe<T>({ type: 'string', enum: values, ...options });
/** A `$ref` to a schema registered with its `$id` (buildApp adds them), typed as that schema. */
export function refTo<T extends TSchema>(schema: T) {
  if (schema.$id === undefined) throw new Error('refTo takes a schema with an $id');
  return Type.Unsafe<Static<T>>({ $ref: `${schema.$id}#` });
}
/** An array in a response: what the services hand back is often readonly, which TypeBox's arrays are not. */
export const readonlyArray = <T extends TSchema>(items: T, options: object = {}) => Type.Unsafe<readonly Static<T>[]>(Type.Array(items, options));

export const credits = Type.String({ pattern: CREDITS_PATTERN, examples: ['100', '12.5'] });
export const nullableCredits = nullableString({ pattern: CREDITS_PATTERN, examples: ['10', null] });
/** A money amount in an answer (SIGNED_CREDITS_PATTERN), nullable or not. */
export const answeredCredits = (description?: string) => Type.String({ pattern: SIGNED_CREDITS_PATTERN, ...(description === undefined ? {} : { description }) });
export const nullableAnsweredCredits = (description?: string) => nullableString({ pattern: SIGNED_CREDITS_PATTERN, ...(description === undefined ? {} : { description }) });
export const identifier = Type.String({ pattern: IDENTIFIER_PATTERN });
export const priceAmount = Type.String({ pattern: PRICE_AMOUNT_PATTERN });
export const currency = Type.String({ pattern: CURRENCY_PATTERN });
/**
 * A price as a bundle has it and a purchase may name it: the catalog's and the purchase's one shape,
 * in requests and answers alike (the catalog answers only prices it accepted), so a client sends back what it read.
 */
export const price = Type.Object({ amount: priceAmount, currency }, { additionalProperties: false });
export const reason = nullableString({ maxLength: 500 });
/** Customer ids come from the producers' usage events (1-256 characters), so any such text is accepted. */
export const customerId = Type.String({ minLength: 1, maxLength: 256 });

/**
 * The API key that made a change (ActingKey) or null where none was recorded: before migrations
 * 026/027, or made by Tally itself. `description` says which change, and when null applies.
 */
export const actingKey = (description: string) =>
  Type.Union(
    [
      Type.Object({
        keyId: Type.String({ description: "The first 12 hex digits of the API key's SHA-256; never the key." }),
        keyName: nullableString({ description: 'As configured at the change (`TALLY_API_KEYS=key:scopes:name`).' }),
      }),
      Type.Null(),
    ],
    { description },
  );
export const text = (maxLength: number) => Type.String({ minLength: 1, maxLength });

export const ErrorSchema = Type.Object(
  {
    error: Type.String(),
    message: Type.String(),
    // insufficient_credits (402) says what there was to spend.
    available: Type.Optional(answeredCredits('insufficient_credits only: what the balance had available (balance − held); may be negative.')),
    overdraftLimit: Type.Optional(answeredCredits('insufficient_credits only: how far below zero available may go.')),
    // stored_product_invalid (409) to an operator's GET of the product says what is stored, to repair it from.
    revision: Type.Optional(Type.Integer({ minimum: 1, description: "stored_product_invalid from GET /credit-products/{productId} only: the stored product's revision." })),
    reason: Type.Optional(Type.String({ description: "stored_product_invalid from GET /credit-products/{productId} only: why it fails today's validation, naming the field." })),
    stored: Type.Optional(
      Type.Unknown({ description: 'stored_product_invalid from GET /credit-products/{productId} only: the product as stored, whatever its shape (a hand edit may have written no revision).' }),
    ),
  },
  { $id: 'Error' },
);
/** Every route may answer these; 4xx and 5xx bodies are always `{ error, message }`. */
export const errorResponses = { '4xx': refTo(ErrorSchema), '5xx': refTo(ErrorSchema) };

export const consistent = stringEnum(['true', 'false'], {
  description:
    'true: wait (bounded) until the read model reflects every write made before this request; 503 not_consistent when it does not in time. While the read model is being rebuilt the answer is folded from the event store instead, without waiting.',
});

/** `{ <name>: schema }` as a closed object of required fields: path parameters. */
export const params = <P extends Record<string, TSchema>>(properties: P) => Type.Object(properties, { additionalProperties: false });
export const balanceParams = params({ balanceId: identifier });

export const idempotencyKeyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      pattern: IDEMPOTENCY_KEY_PATTERN,
      description: 'The same key with the same body returns the first result and changes nothing; with another body: 409.',
    }),
  ),
});
