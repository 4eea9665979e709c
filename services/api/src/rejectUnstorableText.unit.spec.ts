import { ValidationError } from '@tally/domain';
import Fastify, { type FastifyInstance } from 'fastify';
import { rejectUnstorableText } from './rejectUnstorableText';

describe('rejectUnstorableText', () => {
  let app: FastifyInstance;

  beforeAll(async () => {
    app = Fastify();
    app.addHook('preValidation', rejectUnstorableText);
    app.setErrorHandler((error, _request, reply) =>
      reply.code(error instanceof ValidationError ? 400 : 500).send({ message: error instanceof Error ? error.message : String(error) }),
    );
    app.post('/whole', async () => ({ ok: true }));
    app.post('/per-item', { config: { bodyTextCheckedByHandler: true } }, async () => ({ ok: true }));
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
  });

  const post = (url: string, payload: string) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });

  it('refuses a NUL or a lone surrogate anywhere in the body, naming where', async () => {
    const nul = await post('/whole', '{"items":[{"note":"a\\u0000b"}]}');
    expect([nul.statusCode, nul.json().message]).toEqual([400, 'body.items[0].note contains the NUL character (U+0000), which is not accepted']);
    // No route: still judged (a 404 handler's config has no flag), never a TypeError.
    expect((await post('/nowhere', '{"a":"\\u0000"}')).statusCode).toBe(400);
    const lone = await post('/whole', '{"k\\ud800":1}');
    expect([lone.statusCode, lone.json().message]).toEqual([400, 'body.<key> is not well-formed Unicode (it holds a lone surrogate), which is not accepted']);
  });

  it('leaves the body to a route whose handler judges it item by item, and still judges its query', async () => {
    expect((await post('/per-item', '{"items":[{"note":"a\\u0000b"},{"note":"\\ud800"}]}')).statusCode).toBe(200);
    const query = await post('/per-item?x=%00', '{}');
    expect([query.statusCode, query.json().message]).toEqual([400, 'query.x contains the NUL character (U+0000), which is not accepted']);
  });
});
