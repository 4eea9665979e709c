import { Writable } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { LazyChildLogger } from './lazyChildLogger';

/** A pino logger writing its lines into `lines`, and how many children it has made since `reset`. */
function recordingLogger(level: pino.Level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level, base: { module: 'api' } }, stream);
  const child = jest.spyOn(logger, 'child');
  return { logger, lines, children: () => child.mock.calls.length, reset: () => child.mockClear() };
}

async function appWith(logger: pino.Logger) {
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), childLoggerFactory: LazyChildLogger.factory });
  app.get('/quiet', async () => ({ ok: true }));
  app.get('/talks', async (request) => {
    request.log.info({ step: 1 }, 'talking');
    request.log.debug('below the level');
    request.log.warn('twice');
    return { ok: true };
  });
  await app.ready();
  return app;
}

describe('LazyChildLogger', () => {
  it('makes no child for a request that logs nothing', async () => {
    const recording = recordingLogger();
    const app = await appWith(recording.logger);
    recording.reset();
    for (let n = 0; n < 5; n += 1) expect((await app.inject({ method: 'GET', url: '/quiet' })).statusCode).toBe(200);
    expect(recording.children()).toBe(0);
    expect(recording.lines).toEqual([]);
    await app.close();
  });

  it('makes one child on the first line, bound to the request id and the parent’s bindings, honouring the level', async () => {
    const recording = recordingLogger();
    const app = await appWith(recording.logger);
    recording.reset();
    await app.inject({ method: 'GET', url: '/talks' });
    expect(recording.children()).toBe(1);
    expect(recording.lines.map(({ module, reqId, msg, step }) => ({ module, reqId, msg, step }))).toEqual([
      { module: 'api', reqId: 'req-1', msg: 'talking', step: 1 },
      { module: 'api', reqId: 'req-1', msg: 'twice', step: undefined },
    ]);
    await app.close();
  });

  it('writes what Fastify’s own factory writes: request logging, error logging and a route’s level', async () => {
    const linesOf = async (factory: typeof LazyChildLogger.factory | undefined) => {
      const recording = recordingLogger();
      const app = Fastify({
        loggerInstance: recording.logger as FastifyBaseLogger,
        ...(factory !== undefined ? { childLoggerFactory: factory } : {}),
        genReqId: () => 'the-request',
      });
      app.get('/fails', async () => {
        throw new Error('boom');
      });
      app.get('/quiet-at-warn', { logLevel: 'warn' }, async (request) => {
        request.log.info('not at this route’s level');
        request.log.error('at it');
        return { ok: true };
      });
      await app.inject({ method: 'GET', url: '/quiet-at-warn' });
      await app.inject({ method: 'GET', url: '/fails' });
      await app.close();
      return recording.lines.map(({ time: _time, responseTime: _responseTime, err, ...line }): Record<string, unknown> => ({ ...line, err: (err as { message?: string } | undefined)?.message }));
    };
    const lazily = await linesOf(LazyChildLogger.factory);
    expect(lazily).toEqual(await linesOf(undefined));
    expect(lazily.map(({ reqId, msg }) => `${String(reqId)} ${String(msg)}`)).toEqual([
      'the-request at it',
      'the-request incoming request',
      'the-request boom',
      'the-request request completed',
    ]);
  });

  it('reads and sets the level through the child, and makes grandchildren from it', () => {
    const recording = recordingLogger('debug');
    const lazy = LazyChildLogger.factory(recording.logger as FastifyBaseLogger, { reqId: 'r' }, { level: 'warn' });
    expect(recording.children()).toBe(0);
    expect(lazy.level).toBe('warn');
    expect(recording.children()).toBe(1);
    lazy.level = 'info';
    lazy.child({ part: 'x' }).info('from the grandchild');
    expect(recording.lines.map(({ reqId, part, msg }) => ({ reqId, part, msg }))).toEqual([{ reqId: 'r', part: 'x', msg: 'from the grandchild' }]);
  });
});
