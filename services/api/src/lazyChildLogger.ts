import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

/**
 * A request's logger that makes pino's child (the request id bound) on its first use. Fastify
 * makes a child logger for every request, and most requests never log: a lookup's one line is at
 * debug and written only when debug is on. Making the children was all of pino's 1.3–1.7% of the
 * API's busy time under the lookups' load (docs/benchmarks.md, 2026-12-04, afternoon). A request
 * that logs gets the child Fastify's own factory would have made, same bindings and options.
 */
export class LazyChildLogger implements FastifyBaseLogger {
  // The level methods, defined on the prototype by the static block below.
  declare readonly fatal: FastifyBaseLogger['fatal'];
  declare readonly error: FastifyBaseLogger['error'];
  declare readonly warn: FastifyBaseLogger['warn'];
  declare readonly info: FastifyBaseLogger['info'];
  declare readonly debug: FastifyBaseLogger['debug'];
  declare readonly trace: FastifyBaseLogger['trace'];
  declare readonly silent: FastifyBaseLogger['silent'];

  #child: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  /** Fastify's childLoggerFactory: the parent's child, made when something first logs through it. */
  static factory(this: void, parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
    return new LazyChildLogger(parent, bindings, options);
  }

  #logger(): FastifyBaseLogger {
    return (this.#child ??= this.parent.child(this.bindings, this.options));
  }

  // One forwarding method per level, each calling the child's with the child as `this` (pino's
  // methods read their stream and bindings from it).
  static {
    for (const method of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) {
      Object.defineProperty(this.prototype, method, {
        value(this: LazyChildLogger, ...args: unknown[]): void {
          const child = this.#logger();
          Reflect.apply(child[method], child, args);
        },
      });
    }
  }

  get level(): string {
    return this.#logger().level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options);
  }
}
