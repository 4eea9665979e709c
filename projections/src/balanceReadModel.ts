import type { Redis } from 'ioredis';
import { BalanceSnapshot, hashFromFlatArray, snapshotFromHash } from './balanceSnapshot';
import { createKeySpace } from './keySpace';
import { createLuaScript } from './luaScript';

// Every read resolves the active pointer and reads inside one script, so a reader sees
// either the old generation or the new one, never a mix, and pays one round trip.

// KEYS: active. ARGV: root, balance id.
const GET_BALANCE = createLuaScript(`
local generation = redis.call('GET', KEYS[1])
if not generation then return {} end
return redis.call('HGETALL', ARGV[1] .. ':' .. generation .. ':balance:' .. ARGV[2])
`);

// KEYS: active. ARGV: root, customer id. One flat HGETALL reply per indexed balance.
const GET_CUSTOMER_BALANCES = createLuaScript(`
local generation = redis.call('GET', KEYS[1])
if not generation then return {} end
local root = ARGV[1] .. ':' .. generation
local balances = {}
for _, balanceId in ipairs(redis.call('SMEMBERS', root .. ':customer:' .. ARGV[2])) do
  balances[#balances + 1] = redis.call('HGETALL', root .. ':balance:' .. balanceId)
end
return balances
`);

// KEYS: active. ARGV: root.
const GET_CHECKPOINT = createLuaScript(`
local generation = redis.call('GET', KEYS[1])
if not generation then return false end
return redis.call('GET', ARGV[1] .. ':' .. generation .. ':checkpoint')
`);

export interface BalanceReadModel {
  getBalance(balanceId: string): Promise<BalanceSnapshot | undefined>;
  /** Every balance of the customer, ordered by balance id. */
  getCustomerBalances(customerId: string): Promise<BalanceSnapshot[]>;
  /** Position the served snapshots reflect; 0n while there is no projection (e.g. right after a flush). */
  checkpoint(): Promise<bigint>;
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

    async checkpoint() {
      const checkpoint = (await GET_CHECKPOINT.run(redis, [keys.active], [keys.root])) as string | null;
      return checkpoint === null ? 0n : BigInt(checkpoint);
    },
  };
}
