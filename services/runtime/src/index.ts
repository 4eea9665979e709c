export { createBackoff, HeartbeatError, retry, type Backoff, type BackoffOptions, type FailedAttempt, type RetryOptions } from './retry';
export { guardTransient, type TransientGuard } from './guardTransient';
export { createPeriodicWorker, type PeriodicWorkerOptions } from './periodicWorker';
export { createWorker, createWorkerGroup, type StopOutcome, type Worker, type WorkerBody, type WorkerGroup, type WorkerGroupOptions, type WorkerState } from './worker';
export { createPostgresCheckpointStore, type CheckpointStore } from './checkpointStore';
export {
  createCheckpointedProcessor,
  type CheckpointedProcessor,
  type CheckpointedProcessorOptions,
  type PositionedEvent,
  type ProcessorSource,
  type ProcessorLag,
  type ProcessorLease,
  type ProcessorMetrics,
} from './checkpointedProcessor';
