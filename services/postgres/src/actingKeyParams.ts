/**
 * An acting key (`{ keyId, keyName }`, see ActingKey in @tally/domain) as the two parameters its
 * `…_key_id` / `…_key_name` columns take; nulls without one. Read back with the SQL function
 * `acting_key(id, name)` (migration 027), so the pair is written and read one way everywhere.
 */
export function actingKeyParams(key: { readonly keyId: string; readonly keyName: string | null } | null | undefined): [string | null, string | null] {
  return key == null ? [null, null] : [key.keyId, key.keyName];
}
