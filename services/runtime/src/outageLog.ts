import type { Logger } from 'pino';

/**
 * How a call repeated on a timer tells its failures: the first of an outage as a warning, the
 * rest not at all, and the first success after them once, so that a dependency down for an hour
 * is two lines in the log rather than one a second.
 */
export interface OutageLog {
  /** A failure: logged at warn only when the call was not failing already. */
  failed(fields: Readonly<Record<string, unknown>>, message: string): void;
  /** A success: logged at info only when it ends an outage. */
  succeeded(fields: Readonly<Record<string, unknown>>, message: string): void;
  readonly failing: boolean;
}

export function createOutageLog(logger: Logger): OutageLog {
  let failing = false;
  return {
    failed(fields, message) {
      if (!failing) logger.warn(fields, message);
      failing = true;
    },
    succeeded(fields, message) {
      if (failing) logger.info(fields, message);
      failing = false;
    },
    get failing() {
      return failing;
    },
  };
}
