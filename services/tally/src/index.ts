// The deployable is no library: only tests import it, for what they share with the main job.
export type { Role } from './config';
export { toAvroUsageEvent } from './usageEventAvro';
