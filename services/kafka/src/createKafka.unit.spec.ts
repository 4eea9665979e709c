import { logLevel } from 'kafkajs';
import pino from 'pino';
import { createKafka } from './createKafka';

describe('createKafka', () => {
  it("logs kafkajs's own lines through the caller's pino logger, errors of retried attempts as warnings", () => {
    const lines: Array<{ level: number; msg: string; component: string; namespace: string; broker?: string }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const kafka = createKafka({ clientId: 'log-bridge-test', brokers: ['127.0.0.1:1'], logLevel: logLevel.DEBUG, logger });
    const kafkaLogger = kafka.logger().namespace('Connection');
    kafkaLogger.error('Connection error', { broker: '127.0.0.1:1' });
    kafkaLogger.warn('Request timed out');
    kafkaLogger.info('Starting');
    kafkaLogger.debug('Request Metadata');
    expect(lines.map(({ level, msg, component, namespace }) => [pino.levels.labels[level], msg, component, namespace])).toEqual([
      ['warn', 'Connection error', 'kafkajs', 'Connection'],
      ['warn', 'Request timed out', 'kafkajs', 'Connection'],
      ['info', 'Starting', 'kafkajs', 'Connection'],
      ['debug', 'Request Metadata', 'kafkajs', 'Connection'],
    ]);
    expect(lines[0]!.broker).toBe('127.0.0.1:1');
  });
});
