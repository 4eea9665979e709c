import type { Redis } from 'ioredis';
import { BalanceSnapshot, hashFromFlatArray, snapshotFromHash } from './balanceSnapshot';
import { GENERATION_SERVED, POSITION_GREATER } from './generationStore';
import { createKeySpace } from './keySpace';
import { createLuaScript } from './luaScript';

// Every read resolves the active pointer and reads inside one script, so a reader sees
// either the old generation or the new one, never a mix, and pays one round trip. A generation
// still being rebuilt up to its target serves nothing (GENERATION_SERVED): the caller then folds
// from the event store, rather than serve balances from before events it served already.
const SERVED = `${POSITION_GREATER}${GENERATION_SERVED}`;

// KEYS: active. ARGV: root, balance id.
const GET_BALANCE = createLuaScript(`${SERVED}
local generation = redis.call('GET', KEYS[1])
if not generation then return {} end
local root = ARGV[1] .. ':' .. generation
if not served(root) then return {} end
return redis.call('HGETALL', root .. ':balance:' .. ARGV[2])
`);

// KEYS: active. ARGV: root, customer id. One flat HGETALL reply per indexed balance.
const GET_CUSTOMER_BALANCES = createLuaScript(`${SERVED}
local generation = redis.call('GET', KEYS[1])
if not generation then return {} end
local root = ARGV[1] .. ':' .. generation
if not served(root) then return {} end
local balances = {}
for _, balanceId in ipairs(redis.call('SMEMBERS', root .. ':customer:' .. ARGV[2])) do
  balances[#balances + 1] = redis.call('HGETALL', root .. ':balance:' .. balanceId)
end
return balances
`);

// KEYS: active. ARGV: root, customer id, product id. { checkpoint, freshAsOf or '', the balance's
// flat HGETALL or nothing }: the customer's balances are few, so the product's is found by scanning them.
const GET_ENTITLEMENT = createLuaScript(`${SERVED}
local generation = redis.call('GET', KEYS[1])
if not generation then return {} end
local root = ARGV[1] .. ':' .. generation
if not served(root) then return {} end
local checkpoint = redis.call('GET', root .. ':checkpoint') or '0'
local fresh = redis.call('GET', root .. ':freshAsOf') or ''
for _, balanceId in ipairs(redis.call('SMEMBERS', root .. ':customer:' .. ARGV[2])) do
  local key = root .. ':balance:' .. balanceId
  if redis.call('HGET', key, 'productId') == ARGV[3] then
    return { checkpoint, fresh, redis.call('HGETALL', key) }
  end
end
return { checkpoint, fresh }
`);

// KEYS: active. ARGV: root. The served generation's checkpoint, or nothing while none is served.
const GET_SERVED_CHECKPOINT = createLuaScript(`${SERVED}
local generation = redis.call('GET', KEYS[1])
if not generation then return false end
local root = ARGV[1] .. ':' .. generation
if not served(root) then return false end
return redis.call('GET', root .. ':checkpoint') or '0'
`);

/** What an entitlement check reads, in one round trip. */
export interface EntitlementRead {
  /** The customer's balance of the product; undefined when the read model holds none. */
  readonly snapshot: BalanceSnapshot | undefined;
  /** The read model reflects every event up to this position. */
  readonly checkpoint: bigint;
  /** Epoch ms as of which it held every event recorded; undefined until a projector has said. */
  readonly freshAsOf: number | undefined;
}

/** Every read answers nothing (undefined, []) while the active generation is rebuilt up to its target. */
export interface BalanceReadModel {
  getBalance(balanceId: string): Promise<BalanceSnapshot | undefined>;
  /** Every balance of the customer, ordered by balance id. */
  getCustomerBalances(customerId: string): Promise<BalanceSnapshot[]>;
  /** The customer's balance of a product with the read model's position and freshness, in one round trip (entitlement checks). */
  getEntitlement(customerId: string, productId: string): Promise<EntitlementRead>;
  /**
   * The checkpoint of the generation readers are served from; undefined while none is (no
   * generation, or one rebuilt up to its target): every read answers nothing then, and a reader
   * that must be current folds from the event store rather than wait for the rebuild.
   */
  servedCheckpoint(): Promise<bigint | undefined>;
}

export function createBalanceReadModel({ redis, keyPrefix }: { redis: Redis; keyPrefix?: string }): BalanceReadModel {
  const keys = createKeySpace(keyPrefix);
  return {
    async getBalance(balanceId) {
      const flat = (await GET_BALANCE.run(redis, [keys.active], [keys.root, balanceId])) as string[];
      return snapshotFromHash(hashFromFlatArray(flat));
    },

    async getCustomerBalances(customerId) {
      const replies = (await GET_CUSTOMER_BALANCES.run(redis, [keys.active], [keys.root, customerId])) as string[][];
      return replies
        .map((flat) => snapshotFromHash(hashFromFlatArray(flat)))
        .filter((snapshot): snapshot is BalanceSnapshot => snapshot !== undefined)
        .sort((a, b) => (a.balanceId < b.balanceId ? -1 : a.balanceId > b.balanceId ? 1 : 0));
    },

    async getEntitlement(customerId, productId) {
      const reply = (await GET_ENTITLEMENT.run(redis, [keys.active], [keys.root, customerId, productId])) as [string?, string?, string[]?];
      const [checkpoint, fresh, flat] = reply;
      return {
        snapshot: flat === undefined ? undefined : snapshotFromHash(hashFromFlatArray(flat)),
        checkpoint: checkpoint === undefined ? 0n : BigInt(checkpoint),
        freshAsOf: fresh === undefined || fresh === '' ? undefined : Number(fresh),
      };
    },

    async servedCheckpoint() {
      const checkpoint = (await GET_SERVED_CHECKPOINT.run(redis, [keys.active], [keys.root])) as string | null;
      return checkpoint === null ? undefined : BigInt(checkpoint);
    },
  };
}
