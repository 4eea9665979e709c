/**
 * Redis key layout of the balance projection (see projections/README.md). Every key of a
 * generation starts with `<root>:<generation>:`, so a generation is deleted by one prefix
 * scan and a switch is one SET of the active pointer.
 */
const DEFAULT_KEY_PREFIX = 'tally';

export interface KeySpace {
  readonly root: string;
  /** Holds the name of the generation readers and the live projector use. */
  readonly active: string;
  /** Sorted set of the aside generations being built (replay, verify), scored by their builder's last heartbeat (epoch ms). */
  readonly building: string;
  /** `<root>:<generation>`: the scripts append `:balance:<id>` and `:customer:<id>` themselves. */
  generationRoot(generation: string): string;
  checkpoint(generation: string): string;
  /** Epoch ms as of which the generation is known to hold every event (the projector's last look at the head). */
  freshAsOf(generation: string): string;
  /** The position a generation the projector made must reach before readers are served from it. */
  target(generation: string): string;
  /** BALANCE_FOLD_VERSION of the release that folded the generation's snapshots. */
  version(generation: string): string;
  balance(generation: string, balanceId: string): string;
  customer(generation: string, customerId: string): string;
  /** SCAN pattern of every key of a generation. */
  generationPattern(generation: string): string;
  /** SCAN pattern of a generation's balance hashes; the balance id is what follows `balancePrefix`. */
  balancePattern(generation: string): string;
  balancePrefix(generation: string): string;
  /** SCAN pattern of a generation's customer index sets; the customer id is what follows `customerPrefix`. */
  customerPattern(generation: string): string;
  customerPrefix(generation: string): string;
  /** The shell command that deletes a generation by hand, for messages about one left behind. */
  deleteByHand(generation: string): string;
}

/** SCAN MATCH is a glob: a prefix holding `*?[]\` must not match other prefixes' keys. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (character) => `\\${character}`);
}

export function createKeySpace(root: string = DEFAULT_KEY_PREFIX): KeySpace {
  if (root.length === 0) throw new Error('keyPrefix must not be empty');
  const generationRoot = (generation: string) => `${root}:${generation}`;
  const generationPattern = (generation: string) => `${escapeGlob(generationRoot(generation))}:*`;
  return {
    root,
    active: `${root}:active`,
    building: `${root}:building`,
    generationRoot,
    checkpoint: (generation) => `${generationRoot(generation)}:checkpoint`,
    freshAsOf: (generation) => `${generationRoot(generation)}:freshAsOf`,
    target: (generation) => `${generationRoot(generation)}:target`,
    version: (generation) => `${generationRoot(generation)}:version`,
    balance: (generation, balanceId) => `${generationRoot(generation)}:balance:${balanceId}`,
    customer: (generation, customerId) => `${generationRoot(generation)}:customer:${customerId}`,
    generationPattern,
    balancePattern: (generation) => `${escapeGlob(generationRoot(generation))}:balance:*`,
    balancePrefix: (generation) => `${generationRoot(generation)}:balance:`,
    customerPattern: (generation) => `${escapeGlob(generationRoot(generation))}:customer:*`,
    customerPrefix: (generation) => `${generationRoot(generation)}:customer:`,
    deleteByHand: (generation) => `redis-cli --scan --pattern '${generationPattern(generation)}' | xargs redis-cli unlink`,
  };
}
