import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from './config';
import { serviceConnections } from './serviceConnections';

describe('serviceConnections', () => {
  const folder = mkdtempSync(path.join(tmpdir(), 'tally-ca-'));
  const missing = path.join(folder, 'missing.pem');
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it.each([
    ['TALLY_KAFKA_SSL_CA_FILE', { TALLY_KAFKA_SSL_CA_FILE: missing }],
    ['TALLY_REDIS_TLS_CA_FILE', { TALLY_REDIS_URL: 'rediss://redis.internal:6380', TALLY_REDIS_TLS_CA_FILE: missing }],
  ])('refuses a %s that cannot be read, naming the variable and the file', (variable, env) => {
    const connect = () => serviceConnections(loadConfig(env));
    expect(connect).toThrow(ConfigError);
    expect(connect).toThrow(`${variable}: cannot read the CA file ${missing} (ENOENT)`);
  });

  it('hands the CA files it reads to the clients', () => {
    const ca = path.join(folder, 'ca.pem');
    writeFileSync(ca, 'the CA');
    const connections = serviceConnections(loadConfig({ TALLY_KAFKA_SSL_CA_FILE: ca, TALLY_REDIS_URL: 'rediss://redis.internal:6380', TALLY_REDIS_TLS_CA_FILE: ca }));
    expect(connections.kafka.ssl).toEqual({ ca: ['the CA'] });
    expect(connections.redis.tls).toEqual({ ca: 'the CA' });
  });
});
