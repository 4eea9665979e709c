import { randomBytes } from 'node:crypto';

/** Standard Webhooks' secret form: `whsec_` and the base64 of the key. */
const PREFIX = 'whsec_';
/** 32 random bytes: the HMAC-SHA256 key length (the specification asks for 24 to 64). */
const KEY_BYTES = 32;

/** A new signing secret, as the receiver pastes it into any Standard Webhooks library. */
export function newWebhookSecret(): string {
  return `${PREFIX}${randomBytes(KEY_BYTES).toString('base64')}`;
}
