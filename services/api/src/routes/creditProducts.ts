import { randomUUID } from 'node:crypto';
import { creditProductFromDto, creditProductToDto, type CreditProductDto } from '@tally/domain';
import { ProductNotFoundError } from '@tally/catalog';
import type { FastifyInstance } from 'fastify';
import { credits, errorResponses, identifier, nullableCredits, PRODUCT_REF } from '../apiSchemas';
import { pageOf, pageQuerystring, pageSchema, pageSize, type PageQuery } from '../pagination';
import type { RouteDeps } from '../routeDeps';

type ProductFields = Omit<CreditProductDto, 'id'>;
type CreateProductBody = Partial<ProductFields> & { id?: string; name: string };
type PatchProductBody = Partial<ProductFields>;

const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength }) as const;

const productFields = {
  name: text(256),
  description: { type: 'string', maxLength: 2000 },
  consumption: {
    type: 'array',
    maxItems: 100,
    description: 'Rules pricing usage events; all matching rules apply, each costing credits per event or per unit of a property.',
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['event', 'credits'],
      properties: {
        event: text(256),
        credits,
        perUnitOf: text(256),
        where: { type: 'object', maxProperties: 32, propertyNames: { maxLength: 256 }, additionalProperties: { type: 'string', maxLength: 256 } },
      },
    },
  },
  lowBalanceThreshold: nullableCredits,
  bundles: {
    type: 'array',
    maxItems: 50,
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'credits', 'price'],
      properties: {
        id: identifier,
        credits,
        price: {
          type: 'object',
          additionalProperties: false,
          required: ['amount', 'currency'],
          properties: {
            amount: { type: 'string', pattern: '^[0-9]{1,12}(\\.[0-9]{1,6})?$' },
            currency: { type: 'string', pattern: '^[A-Z]{3}$' },
          },
        },
      },
    },
  },
} as const;

const productParams = {
  type: 'object',
  additionalProperties: false,
  required: ['productId'],
  properties: { productId: identifier },
} as const;

const tags = ['credit products'];

/** The catalog: what credits are, what usage costs, and what bundles sell them. */
export function creditProducts(app: FastifyInstance, { catalog }: RouteDeps): void {
  app.post<{ Body: CreateProductBody }>(
    '/credit-products',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Create a credit product',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { id: identifier, ...productFields },
        },
        response: { 201: PRODUCT_REF, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const product = creditProductFromDto({
        id: body.id ?? randomUUID(),
        name: body.name,
        description: body.description ?? '',
        consumption: body.consumption ?? [],
        lowBalanceThreshold: body.lowBalanceThreshold ?? null,
        bundles: body.bundles ?? [],
      });
      await catalog.createProduct(product);
      return reply.code(201).send(creditProductToDto(product));
    },
  );

  app.get<{ Querystring: PageQuery }>(
    '/credit-products',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'List credit products',
        description: 'In id order, a page at a time.',
        querystring: { type: 'object', additionalProperties: false, properties: pageQuerystring },
        response: { 200: pageSchema(PRODUCT_REF), ...errorResponses },
      },
    },
    async (request) => {
      const size = pageSize(request.query);
      const fetched = await catalog.listProducts({ after: request.query.after ?? null, limit: size + 1 });
      const page = pageOf(fetched, size, (product) => product.id);
      return { items: page.items.map(creditProductToDto), next: page.next };
    },
  );

  app.get<{ Params: { productId: string } }>(
    '/credit-products/:productId',
    { config: { scope: 'read' }, schema: { tags, summary: 'Get a credit product', params: productParams, response: { 200: PRODUCT_REF, ...errorResponses } } },
    async (request) => {
      const product = await catalog.getProduct(request.params.productId);
      if (product === undefined) throw new ProductNotFoundError(`no credit product with id "${request.params.productId}"`);
      return creditProductToDto(product);
    },
  );

  app.patch<{ Params: { productId: string }; Body: PatchProductBody }>(
    '/credit-products/:productId',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Change a credit product',
        description: 'Fields given replace the stored ones; the metering consumer sees the change within its catalog refresh interval.',
        params: productParams,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: productFields },
        response: { 200: PRODUCT_REF, ...errorResponses },
      },
    },
    async (request) => {
      const current = await catalog.getProduct(request.params.productId);
      if (current === undefined) throw new ProductNotFoundError(`no credit product with id "${request.params.productId}"`);
      const product = creditProductFromDto({ ...creditProductToDto(current), ...request.body, id: current.id });
      await catalog.updateProduct(product);
      return creditProductToDto(product);
    },
  );
}
