import { Writable } from 'node:stream';
import { createLogger } from './logger';

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
});
