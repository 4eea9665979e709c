export { abandonable, createBackoff, HeartbeatError, isTransientError, retry, sleep, withDeadline, type Backoff, type BackoffOptions } from './retry';
export { guardTransient } from './guardTransient';
export { createOutageLog, type OutageLog } from './outageLog';
export { createPeriodicWorker } from './periodicWorker';
export { createWorker, createWorkerGroup, type Worker, type WorkerBody, type WorkerState } from './worker';
export { createPostgresCheckpointStore, readCheckpoints, rewindCheckpoint, type CheckpointStore, type SavedCheckpoint } from './checkpointStore';
export { ProcessorStatusUnavailableError, processorStatusView, readProcessorStatus, type ProcessorStatus, type ProcessorStatusView } from './processorStatus';
export {
  createCheckpointedProcessor,
  isPermanentFailure,
  type CheckpointedProcessor,
  type CheckpointedProcessorOptions,
  type PositionedEvent,
  type ProcessorSource,
  type ProcessorLag,
  type ProcessorLease,
  type ProcessorMetrics,
} from './checkpointedProcessor';
