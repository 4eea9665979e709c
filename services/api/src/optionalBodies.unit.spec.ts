import swagger from '@fastify/swagger';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { declareOptionalBodies, documentOptionalBodies } from './optionalBodies';

type Operation = { requestBody?: { required?: boolean }; [key: string]: unknown };

async function appWithRoutes() {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>();
  declareOptionalBodies(app);
  await app.register(swagger, {
    openapi: { openapi: '3.1.0', info: { title: 't', version: '1' } },
    transformObject: (document) => ('openapiObject' in document ? documentOptionalBodies(document.openapiObject) : document.swaggerObject),
  });
  const body = Type.Optional(Type.Object({ note: Type.Optional(Type.String()) }, { additionalProperties: false }));
  // A route's own preValidation still runs, after the body is made {}.
  const seen: unknown[] = [];
  app.post('/optional', { config: { optionalBody: true }, schema: { body }, preValidation: async (request) => void seen.push(request.body) }, async (request) => ({ got: request.body }));
  app.post('/required', { schema: { body } }, async (request) => ({ got: request.body }));
  await app.ready();
  return { app, seen };
}

describe('optional bodies', () => {
  it('takes a POST with no body (no content-type either) as {} on an optionalBody route, and still checks a body sent', async () => {
    const { app, seen } = await appWithRoutes();
    const bare = await app.inject({ method: 'POST', url: '/optional' });
    expect([bare.statusCode, bare.json()]).toEqual([200, { got: {} }]);
    expect(seen).toEqual([{}]);
    expect((await app.inject({ method: 'POST', url: '/optional', payload: { note: 'n' } })).json()).toEqual({ got: { note: 'n' } });
    expect((await app.inject({ method: 'POST', url: '/optional', payload: { note: { not: 'a string' } } })).statusCode).toBe(400);
    // Other routes as Fastify has them.
    expect((await app.inject({ method: 'POST', url: '/required' })).statusCode).toBe(400);
  });

  it('documents the body of an optionalBody route as not required, and leaves no mark of its own in the document', async () => {
    const { app } = await appWithRoutes();
    const paths = (app.swagger() as { paths: Record<string, { post: Operation }> }).paths;
    expect(paths['/optional']!.post.requestBody?.required).toBe(false);
    expect(paths['/required']!.post.requestBody?.required).toBe(true);
    expect(Object.keys(paths['/optional']!.post).filter((key) => key.startsWith('x-'))).toEqual([]);
  });
});
