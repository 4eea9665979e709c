import type { KafkaConfig } from 'kafkajs';

/** Where the brokers are and how to reach them: TLS and SASL as kafkajs takes them, both optional. */
export interface KafkaConnection {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl?: KafkaConfig['ssl'];
  readonly sasl?: KafkaConfig['sasl'];
}

/** The part of a client's configuration that says how it connects, for createKafka. */
export function kafkaConnectionConfig(connection: KafkaConnection): Pick<KafkaConfig, 'brokers' | 'clientId' | 'ssl' | 'sasl'> {
  return {
    clientId: connection.clientId,
    brokers: [...connection.brokers],
    ...(connection.ssl !== undefined ? { ssl: connection.ssl } : {}),
    ...(connection.sasl !== undefined ? { sasl: connection.sasl } : {}),
  };
}
