import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';

/**
 * Logs a consumer's crash at error, and reports a crash kafkajs does not restart from (an
 * authorization error, a non-retriable error out of a batch) to `fail`: nothing is consumed any
 * more, so the worker fails and its process stops and exits non-zero (a supervisor restarts it)
 * instead of running on while /health says up. A crash kafkajs restarts from is only logged.
 */
export function failWorkerOnCrash(consumer: Consumer, logger: Logger, fail: (error: unknown) => void, message = 'consumer crashed'): void {
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    logger.error({ err: payload.error, restart: payload.restart }, message);
    if (!payload.restart) fail(payload.error);
  });
}
