import { createServer, Server } from 'node:net';
import { probeKafka, probeTcp } from './dependencyProbes';

describe('dependency probes', () => {
  let server: Server;
  let address: string;

  beforeAll(async () => {
    server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    address = `127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('reads a listening port as up and a closed one as down', async () => {
    expect(await probeTcp(address, 1000)).toBe('up');
    expect(await probeTcp('127.0.0.1:1', 1000)).toBe('down');
  });

  it('counts Kafka as up when any broker of the list answers', async () => {
    expect(await probeKafka(['127.0.0.1:1', address], 1000)).toBe('up');
    expect(await probeKafka(['127.0.0.1:1'], 1000)).toBe('down');
  });
});
