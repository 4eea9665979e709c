import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { readProcessorStatus } from '@tally/runtime';
import Fastify from 'fastify';
import type { Pool } from 'pg';
import { ErrorSchema } from '../apiSchemas';
import { mapError } from '../errorMapping';
import { processorRoutes, type ReadProcessors } from './processorRoutes';

/** The route behind buildApp's error handler (the one mapping), with no PostgreSQL: each failure as pg throws it. */
async function answer(read: ReadProcessors) {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>();
  app.addSchema(ErrorSchema);
  app.setErrorHandler((error, _request, reply) => {
    const mapped = mapError(error);
    for (const [name, value] of Object.entries(mapped.headers ?? {})) reply.header(name, value);
    return reply.code(mapped.statusCode).send(mapped.body);
  });
  await app.register(processorRoutes, { read });
  try {
    return await app.inject({ method: 'GET', url: '/processors' });
  } finally {
    await app.close();
  }
}

const failingPool = (error: Error) => ({ query: () => Promise.reject(error) }) as unknown as Pool;
const eventStore = { headPosition: async () => 0n };

describe('GET /v1/processors when the read fails', () => {
  it('answers an outage (connection refused) 503 processors_unavailable with Retry-After', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const response = await answer(() => readProcessorStatus(failingPool(refused), eventStore));
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ error: 'processors_unavailable' });
    expect(response.headers['retry-after']).toBeDefined();
  });

  it.each([
    ['a missing table (42P01)', Object.assign(new Error('relation "subscription_checkpoints" does not exist'), { code: '42P01' })],
    ['a bug (TypeError)', new TypeError("Cannot read properties of undefined (reading 'rows')")],
  ])('answers %s 500 internal_error, not a retriable 503', async (_what, error) => {
    const response = await answer(() => readProcessorStatus(failingPool(error), eventStore));
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: 'internal_error', message: expect.any(String) });
    expect(response.headers['retry-after']).toBeUndefined();
  });
});
