import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { CustomerDirectory } from '@tally/ledger';
import { customerId, errorResponses, LIMIT_PATTERN } from '../apiSchemas';
import { fetchPage, pageSchema } from '../pagination';

interface CustomerRoutesOptions {
  readonly customers: CustomerDirectory;
}

const CustomerSchema = Type.Object({
  id: Type.String(),
  balances: Type.Integer({ description: 'How many balances the customer has.' }),
  since: Type.String({ format: 'date-time', description: "When the customer's first balance was opened." }),
});

/** Who has balances: the console's customer list and search. */
export const customerRoutes: FastifyPluginAsyncTypebox<CustomerRoutesOptions> = async (app, { customers }) => {
  app.get(
    '/customers',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['customers'],
        operationId: 'listCustomers',
        summary: 'List customers, or search them by id prefix',
        description:
          'Every customer with at least one balance (from the balance registry), by id compared byte by byte. Pass `next` back as `after` for the following page; `next` is null on the last one.',
        querystring: Type.Object(
          {
            prefix: Type.Optional(Type.String({ maxLength: 256, description: 'Only customers whose id starts with it.' })),
            // Customer ids are any text of 1-256 characters, not identifiers: the cursor is one.
            after: Type.Optional({ ...customerId, description: 'The `next` of the previous page.' }),
            limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: 'Customers per page, 1-500; default 50.' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: pageSchema(CustomerSchema), ...errorResponses },
      },
    },
    async (request) =>
      fetchPage(
        request.query,
        ({ after, limit }) => customers.listCustomers({ prefix: request.query.prefix ?? '', after, limit }),
        (customer) => customer.customerId,
        (customer) => ({ id: customer.customerId, balances: customer.balances, since: customer.since.toISOString() }),
      ),
  );
};
