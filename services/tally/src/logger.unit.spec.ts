import { Writable } from 'node:stream';
import { createLogger, quietWhenOutputLost } from './logger';

function capturing(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

describe('createLogger', () => {
  it('writes no authorization header, key, password or connection URL, at the top or one level down', () => {
    const { stream, lines } = capturing();
    const logger = createLogger({ level: 'info' }, stream);
    logger.info(
      {
        authorization: 'Bearer top-secret-1',
        headers: { authorization: 'Bearer top-secret-2', cookie: 'session=top-secret-3' },
        req: { headers: { authorization: 'Bearer top-secret-4' } },
        apiKey: 'top-secret-5',
        kafka: { sasl: { mechanism: 'plain', username: 'tally', password: 'top-secret-6' } },
        registryAuth: { username: 'reg', password: 'top-secret-7' },
        eventStore: { connectionString: 'esdb://admin:top-secret-8@db:2113' },
        databaseUrl: 'postgres://tally:top-secret-9@db/tally',
        web: { sessionSecret: 'top-secret-10' },
        partition: 3,
      },
      'connecting',
    );
    const [line] = lines();
    expect(line).not.toMatch(/top-secret/);
    expect(JSON.parse(line!)).toMatchObject({ msg: 'connecting', partition: 3, authorization: '[redacted]', headers: { authorization: '[redacted]' }, registryAuth: { username: 'reg', password: '[redacted]' } });
  });

  it('leaves out errors\' stacks when told (the CLI at its default level), keeping their type, message and cause', () => {
    const { stream, lines } = capturing();
    const error = new Error('This server does not host this topic-partition', { cause: new Error('the broker said so') });
    createLogger({ level: 'warn', stacks: false }, stream).warn({ err: error, topic: 'usage' }, 'could not read the topic');
    createLogger({ level: 'warn' }, stream).warn({ err: error }, 'with its stack');
    const [without, withStack] = lines().map((line) => JSON.parse(line) as { err: Record<string, unknown>; topic?: string });
    expect(without).toMatchObject({ topic: 'usage', err: { type: 'Error', message: 'This server does not host this topic-partition: the broker said so' } });
    expect(JSON.stringify(without)).not.toContain('    at ');
    // The control: by default (the main job) the stack is there.
    expect(withStack!.err.stack).toEqual(expect.stringContaining('    at '));
  });

  describe('when its output goes away', () => {
    const failing = (code: string) => Object.assign(new Error(`write ${code}`), { code });
    const lines = (terminal: boolean) => {
      const { stream, lines: written } = capturing();
      const thrown: Error[] = [];
      quietWhenOutputLost(stream, { terminal, rethrow: (error) => thrown.push(error) });
      return { stream, written, thrown };
    };

    it('stops writing, quietly, on EIO from a terminal that closed, and on EPIPE anywhere', () => {
      for (const [terminal, code] of [[true, 'EIO'], [true, 'EPIPE'], [false, 'EPIPE']] as const) {
        const { stream, written, thrown } = lines(terminal);
        stream.write('before\n');
        stream.emit('error', failing(code));
        stream.write('after\n');
        expect({ terminal, code, written: written(), thrown }).toEqual({ terminal, code, written: ['before'], thrown: [] });
      }
    });

    it('throws EIO from a file (a failing disk) and any other write error, once, and keeps writing what it can', () => {
      for (const [terminal, code] of [[false, 'EIO'], [true, 'ENOSPC'], [false, 'ENOSPC']] as const) {
        const { stream, written, thrown } = lines(terminal);
        stream.write('before\n');
        const error = failing(code);
        stream.emit('error', error);
        stream.write('after\n');
        expect({ code, written: written(), thrown }).toEqual({ code, written: ['before', 'after'], thrown: [error] });
      }
    });
  });
});
