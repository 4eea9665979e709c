import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actingKey, answeredCredits, credits, errorResponses, identifier, nullableAnsweredCredits, nullableCredits, nullableString, params, price, readonlyArray, refTo, text } from '../apiSchemas';
import { beforePageQuery, pageQuery, pageSchema, pageSize } from '../pagination';
import { actingKeyOf } from '../accessGuard';
import type { ProductCatalog } from './productCatalog';
import { etagOf, ifMatchHeader, versionOfIfMatch } from '../etag';

/** A credit product as the API answers it; registered by its `$id`, so the OpenAPI document names it. */
export const CreditProductSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    consumption: readonlyArray(
      Type.Object({
        event: Type.String(),
        credits: answeredCredits(),
        perUnitOf: Type.Optional(Type.String()),
        where: Type.Optional(Type.Unsafe<Readonly<Record<string, string>>>({ type: 'object', additionalProperties: { type: 'string' } })),
      }),
    ),
    lowBalanceThreshold: nullableAnsweredCredits(),
    bundles: readonlyArray(
      Type.Object({
        id: Type.String(),
        credits: answeredCredits(),
        price,
        purchaseOption: Type.Optional(Type.Boolean({ description: "Shown among the customer's purchase options on the portal (always present in answers)." })),
      }),
    ),
    revision: Type.Integer({
      minimum: 1,
      description: "The product's version: 1 as created, one more per change that changed something (see its revisions). Also its ETag; send it back as `If-Match` to change only this version.",
    }),
  },
  { $id: 'CreditProduct' },
);

const PRODUCT = refTo(CreditProductSchema);

const productFields = {
  name: text(256),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  consumption: Type.Optional(
    Type.Array(
      Type.Object(
        {
          event: text(256),
          credits,
          perUnitOf: Type.Optional(text(256)),
          where: Type.Optional(
            Type.Unsafe<Record<string, string>>({
              type: 'object',
              maxProperties: 32,
              propertyNames: { minLength: 1, maxLength: 256 },
              additionalProperties: { type: 'string', maxLength: 256 },
            }),
          ),
        },
        { additionalProperties: false },
      ),
      {
        maxItems: 100,
        description:
          'Rules pricing usage events; all matching rules apply, each costing credits per event or per unit of a property. A rule identical to another (same event, `perUnitOf`, `where` and credits) would charge each event twice and is refused; a filter on a property with no name is refused.',
      },
    ),
  ),
  lowBalanceThreshold: Type.Optional(nullableCredits),
  bundles: Type.Optional(
    Type.Array(
      Type.Object(
        {
          id: identifier,
          credits,
          price,
          purchaseOption: Type.Optional(
            Type.Boolean({ default: true, description: "Shown to the customer among the portal's purchase options; default true." }),
          ),
        },
        { additionalProperties: false },
      ),
      { maxItems: 50 },
    ),
  ),
};

const productParams = params({ productId: identifier });
const tags = ['credit products'];

/** The catalog: what credits are, what usage costs, and what bundles sell them. */
export const catalogRoutes: FastifyPluginAsyncTypebox<{ readonly products: ProductCatalog }> = async (app, { products }) => {
  app.post(
    '/credit-products',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'createCreditProduct',
        summary: 'Create a credit product',
        body: Type.Object({ id: Type.Optional(identifier), ...productFields }, { additionalProperties: false }),
        response: { 201: PRODUCT, ...errorResponses },
      },
    },
    async (request, reply) => {
      const product = await products.create(request.body, actingKeyOf(request));
      return reply.code(201).header('etag', etagOf(product.revision)).send(product);
    },
  );

  app.get(
    '/credit-products',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listCreditProducts',
        summary: 'List credit products',
        description:
          'In id order, a page at a time. A stored product that fails validation (an older version or a hand edit wrote it) is not among `items` but named in `invalid`, with why and as stored, so a page may hold fewer than `limit` items; a PATCH of the failing field repairs it.',
        querystring: pageQuery(),
        response: {
          200: Type.Object({
            ...pageSchema(PRODUCT).properties,
            invalid: Type.Array(
              Type.Object({
                id: Type.String(),
                revision: Type.Integer({ minimum: 1 }),
                message: Type.String({ description: 'Why it fails validation; the usage it should price is dead-lettered as `stored_product_invalid` meanwhile.' }),
                stored: Type.Unknown({ description: 'The product as stored, whatever its shape: what a repair starts from.' }),
              }),
              { description: "The page's stored products that fail validation." },
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => products.list(request.query),
  );

  app.get(
    '/credit-products/:productId',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getCreditProduct',
        summary: 'Get a credit product',
        description:
          'With its revision as the ETag. A stored product that fails validation is 409 `stored_product_invalid`, with its `revision`, why (`reason`, naming the field) and the document as stored (`stored`, whatever its shape: a hand edit that wrote no revision included), to repair it from; a PATCH of the failing field repairs it.',
        params: productParams,
        response: { 200: PRODUCT, ...errorResponses },
      },
    },
    async (request, reply) => {
      const product = await products.get(request.params.productId);
      return reply.header('etag', etagOf(product.revision)).send(product);
    },
  );

  app.get(
    '/credit-products/:productId/revisions',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listCreditProductRevisions',
        summary: "A credit product's versions, newest first",
        description:
          "Every version the product has had: revision 1 as created (or, for a product from before this history was kept, as it stood then), then one per change that changed something, with when it took effect. The consumer meters with a version from its catalog refresh on, so usage may be priced with the previous version for up to that interval after `changedAt`. Each is in today's shape, as the catalog reads it; one that fails today's validation (stored by hand, or under older rules) is `invalid`, with why and as stored. Pass `next` back as `before` for older revisions.",
        params: productParams,
        querystring: beforePageQuery('Revisions'),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                revision: Type.Integer({ minimum: 1 }),
                changedAt: Type.String({ format: 'date-time' }),
                changedBy: actingKey('The API key that made the change; null for versions from before this was recorded.'),
                invalid: Type.Boolean({
                  description:
                    "True for a version that fails today's validation: it has no `product`, only `message` and `stored`. Otherwise `product` is the version as today reads it: one stored before a field existed has it as it was meant (a bundle without `purchaseOption` was offered: `true`).",
                }),
                product: Type.Optional(PRODUCT),
                message: Type.Optional(Type.String({ description: "Where `invalid`: why it fails today's validation." })),
                stored: Type.Optional(Type.Unknown({ description: 'Where `invalid`: the version as stored, whatever its shape.' })),
              }),
            ),
            next: nullableString(),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { before } = request.query;
      // A cursor past any revision (the pattern admits 18 digits) reads from the newest.
      return products.revisions(request.params.productId, { limit: pageSize(request.query), ...(before !== undefined ? { before: Math.min(Number(before), 2 ** 31 - 1) } : {}) });
    },
  );

  app.patch(
    '/credit-products/:productId',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'updateCreditProduct',
        summary: 'Change a credit product',
        description:
          "Fields given replace the stored ones; concurrent changes are made one after the other, none lost. With `If-Match` (the product's ETag, its revision quoted), only that revision is changed: 412 `product_changed` when another change came first. The metering consumer prices usage with the change within its catalog refresh interval. `lowBalanceThreshold` is the default warning limit of balances opened afterwards: a balance keeps the one it was opened with (change it with PATCH /credit-balances/{balanceId}).",
        params: productParams,
        headers: ifMatchHeader('The ETag of the product read (its revision, quoted: `"3"`), or `*`.'),
        body: Type.Partial(Type.Object(productFields), { additionalProperties: false, minProperties: 1 }),
        response: { 200: PRODUCT, ...errorResponses },
      },
    },
    async (request, reply) => {
      const ifMatch = request.headers['if-match'];
      const version = versionOfIfMatch(ifMatch);
      const ifRevision = version === undefined ? undefined : Number(version);
      const product = await products.update(request.params.productId, request.body, actingKeyOf(request), ifRevision === undefined ? {} : { ifRevision });
      return reply.header('etag', etagOf(product.revision)).send(product);
    },
  );
};
