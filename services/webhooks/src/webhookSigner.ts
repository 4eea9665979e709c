import { Webhook } from 'standardwebhooks';

/** The headers that carry a message's identity and signature (Standard Webhooks). */
interface WebhookSignatureHeaders {
  readonly 'webhook-id': string;
  readonly 'webhook-timestamp': string;
  readonly 'webhook-signature': string;
}

interface WebhookSigningInput {
  /** Stable across every attempt of the message: the receiver deduplicates by it. */
  readonly id: string;
  /** Time of this attempt: receivers refuse a timestamp far from their clock (replays). */
  readonly timestamp: Date;
  /** The exact bytes sent: the signature covers them, so they must not be serialised again. */
  readonly body: string;
  /** The endpoint's secret, and during a rotation's grace period the previous one too. */
  readonly secrets: readonly string[];
}

/**
 * Signs with the Standard Webhooks reference library (`standardwebhooks`), not by hand, so
 * what it produces is exactly what every Standard Webhooks verifier checks. During a secret
 * rotation the message is signed with each valid secret and the signatures are sent
 * space-separated, as the specification allows: a receiver holding either secret verifies it.
 */
export function signWebhook(input: WebhookSigningInput): WebhookSignatureHeaders {
  if (input.secrets.length === 0) throw new Error('a webhook needs at least one secret to be signed');
  const signatures = input.secrets.map((secret) => new Webhook(secret).sign(input.id, input.timestamp, input.body));
  return {
    'webhook-id': input.id,
    'webhook-timestamp': String(Math.floor(input.timestamp.getTime() / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}
