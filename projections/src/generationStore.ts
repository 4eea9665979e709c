import { randomBytes } from 'node:crypto';
import { BALANCE_FOLD_VERSION, TallyError } from '@tally/domain';
import type { Redis } from 'ioredis';
import { BalanceSnapshot, hashFromFlatArray, SNAPSHOT_FIELDS, snapshotFromHash, snapshotToHash } from './balanceSnapshot';
import { createKeySpace, KeySpace } from './keySpace';
import { createLuaScript } from './luaScript';

/**
 * The Redis side of the projection: generations (a full set of snapshots with their own
 * checkpoint), the active pointer, and the batch write. Positions travel as decimal strings
 * and are compared in Lua by length, then digit chunks of 15 (exact in a double), so a
 * position beyond 2^53 is never rounded.
 */

/**
 * `reset`: the generation's keys (or the active pointer) vanished, e.g. FLUSHALL or a restart
 * without persistence. `stale`: another generation is active now. `rewound`: the generation's
 * checkpoint is below the position the writer knows it wrote, so Redis went back in time (restored
 * from an older snapshot, or failed over to a lagging replica) and the snapshots with it.
 */
export type WriteOutcome = 'ok' | 'stale' | 'reset' | 'rewound';

/** `live` writes only while its generation is active; `aside` builds a generation readers do not see yet. */
export type WriteMode = 'live' | 'aside';

export const POSITION_GREATER = `
local function greater(a, b)
  if #a ~= #b then return #a > #b end
  for i = 1, #a, 15 do
    local x, y = tonumber(string.sub(a, i, i + 14)), tonumber(string.sub(b, i, i + 14))
    if x ~= y then return x > y end
  end
  return false
end
`;

/**
 * For readers (with POSITION_GREATER): whether the generation at `root` (`<root>:<gen>`) may be
 * served. One the projector made (at its first start, or after the projection was lost) is not
 * until its checkpoint reaches its target, the head when it was made: rebuilt from position 0,
 * it would otherwise serve every balance as it was months ago, climbing back up. Meanwhile
 * readers answer nothing and the API folds from the event store. A generation without a target
 * (a replay's, switched to only once caught up; one made before targets) is served at once.
 */
export const GENERATION_SERVED = `
local function served(root)
  local target = redis.call('GET', root .. ':target')
  if not target then return true end
  local checkpoint = redis.call('GET', root .. ':checkpoint')
  return checkpoint and not greater(target, checkpoint)
end
`;

// Batches travel as one JSON argument and come back as one JSON string (cjson is built into
// Redis): per-value arguments and replies cost ioredis more than the writes cost Redis. The
// scripts build a generation's keys from its root, the layout keySpace.ts documents.

// KEYS: active, checkpoint. ARGV: generation, mode, new checkpoint, generation root,
// JSON array of snapshots, each the SNAPSHOT_FIELDS values in order, the position the writer
// last wrote ('' when it does not know one).
const WRITE_BATCH = createLuaScript(`${POSITION_GREATER}
local active = redis.call('GET', KEYS[1])
if ARGV[2] == 'live' then
  if not active then return 'reset' end
  if active ~= ARGV[1] then return 'stale' end
end
local checkpoint = redis.call('GET', KEYS[2])
if not checkpoint then return 'reset' end
-- A checkpoint only moves forward, so one below what this writer wrote means Redis went back in
-- time: writing on would move it past events whose snapshots the rollback undid.
if ARGV[6] ~= '' and greater(ARGV[6], checkpoint) then return 'rewound' end
local root = ARGV[4]
for _, row in ipairs(cjson.decode(ARGV[5])) do
  local key = root .. ':balance:' .. row[1]
  local stored = redis.call('HGET', key, 'position')
  -- An unreadable stored position belongs to a corrupted snapshot, which the caller rebuilt.
  local readable = stored and string.match(stored, '^%d+$')
  if not readable or greater(row[${SNAPSHOT_FIELDS.indexOf('position') + 1}], stored) then
    redis.call('HSET', key, ${SNAPSHOT_FIELDS.map((field, index) => `'${field}', row[${index + 1}]`).join(', ')})
    -- With every write of the hash, not only its first: an index set lost on its own (evicted,
    -- deleted) comes back with the customer's next write instead of hiding the balance for good.
    redis.call('SADD', root .. ':customer:' .. row[${SNAPSHOT_FIELDS.indexOf('customerId') + 1}], row[1])
  end
end
if greater(ARGV[3], checkpoint) then redis.call('SET', KEYS[2], ARGV[3]) end
return 'ok'
`);

// ARGV: generation root, JSON array of balance ids. Returns a JSON array of flat HGETALL replies.
const READ_SNAPSHOTS = createLuaScript(`
local root = ARGV[1]
local hashes = {}
for index, balanceId in ipairs(cjson.decode(ARGV[2])) do
  hashes[index] = redis.call('HGETALL', root .. ':balance:' .. balanceId)
end
return cjson.encode(hashes)
`);

// Every generation records the BALANCE_FOLD_VERSION of the release that folds it: snapshots
// another version of evolve made are not this release's fold. A generation made before versions
// were recorded is taken as folded by the release that meets it first (the fold version did not
// change with that release).

// KEYS: active. ARGV: root, candidate generation, 'over' to replace the active one regardless,
// the target of a generation made here, this release's fold version. Returns { generation,
// checkpoint, created '1'/'0', abandoned or '', 'older' when the one replaced was an older
// release's fold or '' }, or { 'newer', that version } when the active generation is a newer
// release's fold: that one is left alone, whatever ARGV[3] says.
const ENSURE_ACTIVE = createLuaScript(`
local active = redis.call('GET', KEYS[1])
local older = ''
if active then
  local root = ARGV[1] .. ':' .. active
  local checkpoint = redis.call('GET', root .. ':checkpoint')
  if checkpoint then
    local version = redis.call('GET', root .. ':version')
    if not version then
      version = ARGV[5]
      redis.call('SET', root .. ':version', version)
    end
    -- An unreadable version is no release's: folded anew, as an older one.
    local folded = tonumber(version) or 0
    if folded > tonumber(ARGV[5]) then return { 'newer', version } end
    if folded < tonumber(ARGV[5]) then older = 'older'
    elseif ARGV[3] ~= 'over' then return { active, checkpoint, '0', '', '' } end
  end
end
local root = ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', root .. ':checkpoint', '0')
redis.call('SET', root .. ':target', ARGV[4])
redis.call('SET', root .. ':version', ARGV[5])
redis.call('SET', KEYS[1], ARGV[2])
return { ARGV[2], '0', '1', active or '', older }
`);

// KEYS: the generation's target, its checkpoint. ARGV: position. Only up, and only while the
// generation exists (one that vanished meanwhile gets no key that its deletion would never remove).
const RAISE_TARGET = createLuaScript(`${POSITION_GREATER}
if redis.call('EXISTS', KEYS[2]) == 0 then return 'reset' end
local target = redis.call('GET', KEYS[1])
if not target or greater(ARGV[1], target) then redis.call('SET', KEYS[1], ARGV[1]) end
return 'ok'
`);

// KEYS: active, the generation's checkpoint. ARGV: generation, the position the caller last
// wrote ('' when it does not know one).
const CHECK_GENERATION = createLuaScript(`${POSITION_GREATER}
local active = redis.call('GET', KEYS[1])
local checkpoint = redis.call('GET', KEYS[2])
if not active or not checkpoint then return 'reset' end
if active ~= ARGV[1] then return 'stale' end
if ARGV[2] ~= '' and greater(ARGV[2], checkpoint) then return 'rewound' end
return 'ok'
`);

// KEYS: active, the new generation's checkpoint, its freshAsOf, building. ARGV: new generation, root, its
// fold version, freshAsOf (epoch ms) or '', the live generation to replace however far it got
// or ''. Returns { 'switched', previous or '' }, { 'behind' }, { 'newer' } or { 'reset' }.
const SWITCH_ACTIVE = createLuaScript(`${POSITION_GREATER}
local checkpoint = redis.call('GET', KEYS[2])
if not checkpoint then return { 'reset' } end
local previous = redis.call('GET', KEYS[1])
if previous then
  local version = redis.call('GET', ARGV[2] .. ':' .. previous .. ':version')
  if (tonumber(version) or 0) > tonumber(ARGV[3]) then return { 'newer' } end
  -- Only the generation the caller judged: one another process made meanwhile is compared as usual.
  if previous ~= ARGV[5] then
    local live = redis.call('GET', ARGV[2] .. ':' .. previous .. ':checkpoint')
    if live and greater(live, checkpoint) then return { 'behind' } end
    -- A live generation still short of its target serves nothing yet, but what was served before it
    -- was made may reach up to that target.
    local target = redis.call('GET', ARGV[2] .. ':' .. previous .. ':target')
    if live and target and greater(target, checkpoint) then return { 'behind' } end
  end
end
-- With the pointer, so that readers never meet this generation without a lagMs to measure.
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
redis.call('SET', KEYS[1], ARGV[1])
-- Serving now, so no longer built: with the switch, or a sweep could take it for abandoned.
redis.call('ZREM', KEYS[4], ARGV[1])
return { 'switched', previous or '' }
`);

// KEYS: active. ARGV: root. The live generation and its checkpoint, or nothing.
const READ_ACTIVE = createLuaScript(`
local active = redis.call('GET', KEYS[1])
if not active then return false end
local checkpoint = redis.call('GET', ARGV[1] .. ':' .. active .. ':checkpoint')
if not checkpoint then return false end
return { active, checkpoint }
`);

// KEYS: the generation's checkpoint, its freshAsOf. ARGV: epoch ms, the position the projector
// last wrote ('' when it does not know one). Only while the generation exists: a write after a
// FLUSHALL would leave a key no generation's deletion ever removes. And not below what it wrote:
// after a rollback the projector is at the head but the snapshots are not, and lagMs must say so.
const MARK_FRESH = createLuaScript(`${POSITION_GREATER}
local checkpoint = redis.call('GET', KEYS[1])
if not checkpoint then return 'reset' end
if ARGV[2] ~= '' and greater(ARGV[2], checkpoint) then return 'rewound' end
redis.call('SET', KEYS[2], ARGV[1])
return 'ok'
`);

// Beats are scored, and the cutoff computed, by Redis's clock: a builder's and a sweeper's hosts
// may disagree by more than the bound, and a sweeper ahead would delete a live build.
const REDIS_NOW_MS = `
local function nowMs()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
`;

// KEYS: building, the generation's checkpoint, its version. ARGV: generation, fold version.
// Recorded with its keys, in one script: nothing is left that no record names.
const CREATE_ASIDE = createLuaScript(`${REDIS_NOW_MS}
redis.call('ZADD', KEYS[1], nowMs(), ARGV[1])
redis.call('SET', KEYS[2], '0')
redis.call('SET', KEYS[3], ARGV[2])
`);

// KEYS: building. ARGV: generation. XX: a generation dropped meanwhile (swept, switched to, deleted) is not recorded again.
const BEAT_ASIDE = createLuaScript(`${REDIS_NOW_MS}
redis.call('ZADD', KEYS[1], 'XX', nowMs(), ARGV[1])
`);

// KEYS: building. ARGV: the silence (ms) after which a builder is gone. The generations silent that long.
const SILENT_ASIDES = createLuaScript(`${REDIS_NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', nowMs() - tonumber(ARGV[1])))
`);

// KEYS: active, building, the generation's checkpoint. ARGV: generation, the silence (ms) after
// which its builder is gone. 'serving': it serves (dropped from building, kept); 'alive': it beat
// since; 'claimed': its checkpoint is deleted, so its builder's next write or switch answers
// 'reset' and it can never serve; the caller deletes the rest and then drops it from building.
const CLAIM_ABANDONED = createLuaScript(`${REDIS_NOW_MS}
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 'serving'
end
local beat = redis.call('ZSCORE', KEYS[2], ARGV[1])
if beat and tonumber(beat) >= nowMs() - tonumber(ARGV[2]) then return 'alive' end
redis.call('DEL', KEYS[3])
return 'claimed'
`);

const SCAN_COUNT = '1000';

/** Unique, and sortable by creation time when listing keys by hand. */
function newGenerationName(): string {
  return `g${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

/**
 * Positions never go back: a projection whose checkpoint is above the event store's head was made
 * from another store (or from this one before it was reset or restored from a backup). It cannot
 * catch up, only start over; the projector and a replay both ask here.
 */
export function projectedFromAnotherStore(head: bigint, checkpoint: bigint): boolean {
  return head < checkpoint;
}

/**
 * A replay's event store is behind the live generation (projectedFromAnotherStore): the operator's
 * shell may point at another database or schema than the services, and replacing the served
 * balances with that store's would be silent damage. Replaced only when the caller says so.
 */
export class StoreBehindProjectionError extends TallyError {
  readonly code = 'store_behind_projection';
  readonly retriable = false;
}

export type SwitchOutcome = { kind: 'switched'; previous: string | undefined } | { kind: 'behind' } | { kind: 'newer' } | { kind: 'reset' };

/**
 * The active generation holds a newer release's fold (a higher BALANCE_FOLD_VERSION): this
 * release may neither write to it nor replace it. Met during a rolling upgrade, by the processes
 * not yet replaced; their projector stands by (retrying) until they are. Retrying cannot fold it.
 */
export class NewerProjectionError extends TallyError {
  readonly code = 'projection_of_newer_release';
  readonly retriable = false;
}

export interface GenerationStore {
  readonly keys: KeySpace;
  /**
   * The active generation and its checkpoint; creates a fresh one at 0 when the pointer or
   * the checkpoint is gone, when the active one is an older release's fold (`outdated`), or when
   * told to start over; NewerProjectionError when it is a newer release's. A generation made here is not served
   * until its checkpoint reaches `target` (GENERATION_SERVED): give the event store's head, read
   * before the call.
   */
  ensureActive(
    target: bigint,
    options?: { startOver?: boolean },
  ): Promise<{ generation: string; checkpoint: bigint; created: boolean; abandoned: string | undefined; outdated: boolean }>;
  /**
   * Raises the generation's target (gives it one if it has none): to a head read after
   * ensureActive made it, or to what the projector had written before Redis went back in time.
   */
  raiseTarget(generation: string, target: bigint): Promise<void>;
  readActive(): Promise<{ generation: string; checkpoint: bigint } | undefined>;
  /** `written`: the position the caller last wrote to this generation, to detect a rollback ('rewound'). */
  checkGeneration(generation: string, mode: WriteMode, written?: bigint): Promise<WriteOutcome>;
  /**
   * A new, empty generation at checkpoint 0, invisible to readers until switched to. Recorded as
   * being built, beaten now: keep it beating (beatAside) until it is switched to or deleted, or a
   * later sweep takes it for abandoned.
   */
  createAside(): Promise<string>;
  /** Its builder is alive (scored by Redis's clock). Not for one dropped from building meanwhile (swept, switched to, deleted). */
  beatAside(generation: string): Promise<void>;
  /** Whether the generation is still recorded as being built: a sweep drops it only once it deleted its keys. */
  isBuilding(generation: string): Promise<boolean>;
  /**
   * Deletes the aside generations whose builder has not beaten for `silentForMs`, by Redis's
   * clock: left by a process killed mid-build, whose own cleanup never ran. Never the active one.
   * Returns them.
   */
  deleteAbandonedAsides(silentForMs: number): Promise<string[]>;
  readSnapshots(generation: string, balanceIds: readonly string[]): Promise<Map<string, BalanceSnapshot | undefined>>;
  /**
   * Writes the snapshots whose position is above the stored one and moves the checkpoint,
   * atomically. With `written` (the position this writer last wrote), writes nothing and answers
   * 'rewound' when the stored checkpoint is below it.
   */
  writeBatch(
    generation: string,
    mode: WriteMode,
    snapshots: readonly BalanceSnapshot[],
    checkpoint: bigint,
    written?: bigint,
  ): Promise<WriteOutcome>;
  /**
   * Points readers at the generation, unless it vanished ('reset') or the live generation has
   * moved past its checkpoint meanwhile ('behind'): readers never see positions go backwards.
   * `freshAsOf` (epoch ms): the generation held every event recorded up to then, written with the
   * switch (see markFresh). `over`: the live generation, when it was found projectedFromAnotherStore,
   * is replaced however far it got; it alone, and never a newer release's.
   */
  switchActive(generation: string, options?: { freshAsOf?: number; over?: string }): Promise<SwitchOutcome>;
  /** Deletes every key of a generation in chunks (SCAN + UNLINK), then its building record; returns how many keys. */
  deleteGeneration(generation: string): Promise<number>;
  /** Balance ids of a generation, in chunks as SCAN returns them (a id may repeat across chunks). */
  scanBalanceIds(generation: string): AsyncGenerator<string[]>;
  /** The customer ids of a generation's index sets, a SCAN batch at a time. */
  scanCustomerIds(generation: string): AsyncGenerator<string[]>;
  /**
   * Records that the generation held every event recorded up to `millis` (epoch ms): what readers'
   * lagMs is measured from. Not when its checkpoint is below `written` (the position the caller
   * last wrote to it): Redis went back in time, and the snapshots with it.
   */
  markFresh(generation: string, millis: number, written?: bigint): Promise<void>;
}

export function createGenerationStore({ redis, keyPrefix }: { redis: Redis; keyPrefix?: string }): GenerationStore {
  const keys = createKeySpace(keyPrefix);

  async function* scan(pattern: string): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (found.length > 0) yield found;
    } while (cursor !== '0');
  }

  async function deleteGeneration(generation: string): Promise<number> {
    let deleted = 0;
    for await (const found of scan(keys.generationPattern(generation))) deleted += await redis.unlink(...found);
    // After the keys: a deletion cut short stays recorded, and a later sweep finishes it.
    await redis.zrem(keys.building, generation);
    return deleted;
  }

  return {
    keys,

    async ensureActive(target, { startOver = false } = {}) {
      const args = [keys.root, newGenerationName(), startOver ? 'over' : '', target.toString(), String(BALANCE_FOLD_VERSION)];
      const reply = (await ENSURE_ACTIVE.run(redis, [keys.active], args)) as [string, string, string, string, string] | ['newer', string];
      if (reply[0] === 'newer') {
        throw new NewerProjectionError(
          `the active generation holds the fold of a newer release (fold version ${reply[1]}; this release's is ${BALANCE_FOLD_VERSION}): standing by until this process runs that release`,
        );
      }
      const [generation, checkpoint, created, abandoned, outdated] = reply as [string, string, string, string, string];
      return {
        outdated: outdated === 'older',
        generation,
        checkpoint: BigInt(checkpoint),
        created: created === '1',
        // Replaced, or a pointer whose checkpoint vanished: what is left of that generation is garbage.
        abandoned: abandoned === '' ? undefined : abandoned,
      };
    },

    async raiseTarget(generation, target) {
      await RAISE_TARGET.run(redis, [keys.target(generation), keys.checkpoint(generation)], [target.toString()]);
    },

    async readActive() {
      const found = (await READ_ACTIVE.run(redis, [keys.active], [keys.root])) as [string, string] | null;
      return found === null ? undefined : { generation: found[0], checkpoint: BigInt(found[1]) };
    },

    async checkGeneration(generation, mode, written) {
      const args = [generation, written === undefined ? '' : written.toString()];
      const outcome = (await CHECK_GENERATION.run(redis, [keys.active, keys.checkpoint(generation)], args)) as WriteOutcome;
      // An aside generation is not active by design: only its own keys matter.
      return mode === 'aside' && outcome === 'stale' ? 'ok' : outcome;
    },

    async markFresh(generation, millis, written) {
      const args = [String(Math.floor(millis)), written === undefined ? '' : written.toString()];
      await MARK_FRESH.run(redis, [keys.checkpoint(generation), keys.freshAsOf(generation)], args);
    },

    async createAside() {
      const generation = newGenerationName();
      await CREATE_ASIDE.run(redis, [keys.building, keys.checkpoint(generation), keys.version(generation)], [generation, String(BALANCE_FOLD_VERSION)]);
      return generation;
    },

    async beatAside(generation) {
      await BEAT_ASIDE.run(redis, [keys.building], [generation]);
    },

    async isBuilding(generation) {
      return (await redis.zscore(keys.building, generation)) !== null;
    },

    async deleteAbandonedAsides(silentForMs) {
      const silence = String(Math.floor(silentForMs));
      const stale = (await SILENT_ASIDES.run(redis, [keys.building], [silence])) as string[];
      const deleted: string[] = [];
      for (const generation of stale) {
        // Asked again, one at a time: it may have beaten, or been switched to, since.
        const claim = await CLAIM_ABANDONED.run(redis, [keys.active, keys.building, keys.checkpoint(generation)], [generation, silence]);
        if (claim !== 'claimed') continue;
        await deleteGeneration(generation);
        deleted.push(generation);
      }
      return deleted;
    },

    async readSnapshots(generation, balanceIds) {
      const reply = await READ_SNAPSHOTS.run(redis, [], [keys.generationRoot(generation), JSON.stringify(balanceIds)]);
      // cjson writes an empty table (a missing hash) as {}.
      const hashes = JSON.parse(reply as string) as (string[] | Record<string, never>)[];
      const snapshots = new Map<string, BalanceSnapshot | undefined>();
      balanceIds.forEach((balanceId, index) => {
        const flat = hashes[index];
        snapshots.set(balanceId, Array.isArray(flat) ? snapshotFromHash(hashFromFlatArray(flat)) : undefined);
      });
      return snapshots;
    },

    async writeBatch(generation, mode, snapshots, checkpoint, written) {
      const rows = snapshots.map((snapshot) => {
        const hash = snapshotToHash(snapshot);
        return SNAPSHOT_FIELDS.map((field) => hash[field]);
      });
      const args = [
        generation,
        mode,
        checkpoint.toString(),
        keys.generationRoot(generation),
        JSON.stringify(rows),
        written === undefined ? '' : written.toString(),
      ];
      return (await WRITE_BATCH.run(redis, [keys.active, keys.checkpoint(generation)], args)) as WriteOutcome;
    },

    async switchActive(generation, { freshAsOf, over } = {}) {
      const args = [generation, keys.root, String(BALANCE_FOLD_VERSION), freshAsOf === undefined ? '' : String(Math.floor(freshAsOf)), over ?? ''];
      const reply = await SWITCH_ACTIVE.run(redis, [keys.active, keys.checkpoint(generation), keys.freshAsOf(generation), keys.building], args);
      const [kind, previous] = reply as ['switched', string] | ['behind' | 'newer' | 'reset'];
      if (kind !== 'switched') return { kind };
      return { kind, previous: previous === '' ? undefined : previous };
    },

    deleteGeneration,

    async *scanBalanceIds(generation) {
      const prefix = keys.balancePrefix(generation);
      for await (const found of scan(keys.balancePattern(generation))) yield found.map((key) => key.slice(prefix.length));
    },

    async *scanCustomerIds(generation) {
      const prefix = keys.customerPrefix(generation);
      for await (const found of scan(keys.customerPattern(generation))) yield found.map((key) => key.slice(prefix.length));
    },
  };
}
