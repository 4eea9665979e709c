import { readFileSync } from 'node:fs';
import type { RedisOptions } from 'ioredis';
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import { ConfigError, type Config } from './config';

interface ServiceConnections {
  /** Spread into every kafkajs client's configuration. */
  readonly kafka: Readonly<Pick<KafkaConfig, 'ssl' | 'sasl'>>;
  /** Spread into every ioredis client's options. */
  readonly redis: Readonly<Pick<RedisOptions, 'tls'>>;
  /** Basic authentication to the schema registry. */
  readonly registryAuth?: { readonly username: string; readonly password: string };
}

/**
 * TLS and authentication to the services, as the client libraries take them, from the config;
 * CA files are read here, at start, so a missing one stops start-up rather than the first
 * connection. PostgreSQL needs nothing here: `sslmode` and `sslrootcert` in its URL are read by
 * pg itself.
 */
export function serviceConnections(config: Pick<Config, 'connections' | 'redis'>): ServiceConnections {
  const { kafka, registryAuth, redisCaFile } = config.connections;
  const ssl = kafka.caFile !== undefined ? { ca: [readCaFile('TALLY_KAFKA_SSL_CA_FILE', kafka.caFile)] } : kafka.ssl;
  // The config's union of mechanisms, as kafkajs's union of per-mechanism options.
  const sasl = kafka.sasl === undefined ? undefined : ({ ...kafka.sasl } as SASLOptions);
  // ioredis turns TLS on for a rediss:// URL by itself; a CA of our own needs saying.
  const tls = redisCaFile !== undefined ? { ca: readCaFile('TALLY_REDIS_TLS_CA_FILE', redisCaFile) } : undefined;
  return {
    kafka: { ...(ssl !== false ? { ssl } : {}), ...(sasl !== undefined ? { sasl } : {}) },
    redis: tls !== undefined ? { tls } : {},
    ...(registryAuth !== undefined ? { registryAuth: { ...registryAuth } } : {}),
  };
}

/** A CA file the operator named: one that cannot be read is their mistake, so it names the variable. */
function readCaFile(variable: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`${variable}: cannot read the CA file ${file} (${reason})`);
  }
}
