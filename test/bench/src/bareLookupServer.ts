import Fastify from 'fastify';
import { Redis } from 'ioredis';

/** What balanceLookups.ts passes in (as JSON, argv[2]). */
export interface BareLookupServerOptions {
  readonly redisUrl: string;
  /** `<prefix>:<generation>:balance:`: the snapshot hash of a balance is this followed by its id. */
  readonly snapshotKeyPrefix: string;
  readonly port: number;
}

/**
 * The lookups ceiling a reviewer would write by hand: Fastify and ioredis (auto-pipelined), one
 * route that reads the snapshot hash with HGETALL and sends it as it is. No key check, no rate
 * limit, no response schema, no fallback to the event store: what is left of the API's work is
 * HTTP, one Redis round trip and JSON. Run as its own process, as the API is, and loaded by the
 * same autocannon process. Prints `listening` once it accepts connections.
 */
async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '') as BareLookupServerOptions;
  const redis = new Redis(options.redisUrl, { enableAutoPipelining: true });
  const app = Fastify({ logger: false });
  app.get<{ Params: { balanceId: string } }>('/v1/credit-balances/:balanceId', async (request, reply) => {
    const hash = await redis.hgetall(`${options.snapshotKeyPrefix}${request.params.balanceId}`);
    if (hash.balanceId === undefined) return reply.code(404).send({ error: 'not_found' });
    return hash;
  });
  await app.listen({ host: '127.0.0.1', port: options.port });
  process.once('SIGTERM', () => {
    void app
      .close()
      .then(() => redis.quit())
      .finally(() => process.exit(0));
  });
  process.stdout.write('listening\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`bare lookup server failed: ${String(error)}\n`);
  process.exit(1);
});
