export type { BalanceSnapshot } from './balanceSnapshot';
export { DEFAULT_KEY_PREFIX } from './keySpace';
export { createBalanceProjector } from './balanceProjector';
export type { BalanceProjector, BalanceProjectorOptions, ProjectorLag } from './balanceProjector';
export { createBalanceReadModel } from './balanceReadModel';
export type { BalanceReadModel } from './balanceReadModel';
