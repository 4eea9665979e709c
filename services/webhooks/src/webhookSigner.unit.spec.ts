import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { newWebhookSecret } from './webhookSecret';
import { signWebhook } from './webhookSigner';

describe('signWebhook', () => {
  const body = JSON.stringify({ type: 'credit_balance.low', data: { balance: { balance: '1.5' } } });

  it('is verified by the Standard Webhooks library with the endpoint secret', () => {
    const secret = newWebhookSecret();
    const headers = signWebhook({ id: 'msg_1', timestamp: new Date(), body, secrets: [secret] });
    expect(headers['webhook-id']).toBe('msg_1');
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
  });

  it('during a rotation signs with both secrets, so a receiver holding either verifies', () => {
    const [current, previous] = [newWebhookSecret(), newWebhookSecret()];
    const headers = signWebhook({ id: 'msg_2', timestamp: new Date(), body, secrets: [current, previous] });
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(current).verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(new Webhook(previous).verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(() => new Webhook(newWebhookSecret()).verify(body, { ...headers })).toThrow(WebhookVerificationError);
  });

  it('fails verification of an altered body or id', () => {
    const secret = newWebhookSecret();
    const headers = signWebhook({ id: 'msg_3', timestamp: new Date(), body, secrets: [secret] });
    expect(() => new Webhook(secret).verify(body.replace('1.5', '9.5'), { ...headers })).toThrow(WebhookVerificationError);
    expect(() => new Webhook(secret).verify(body, { ...headers, 'webhook-id': 'msg_4' })).toThrow(WebhookVerificationError);
  });

  it('gives the timestamp in whole seconds, which receivers compare with their clock', () => {
    const headers = signWebhook({ id: 'msg_5', timestamp: new Date('2026-11-30T12:00:00.900Z'), body, secrets: [newWebhookSecret()] });
    expect(headers['webhook-timestamp']).toBe(String(Date.UTC(2026, 10, 30, 12) / 1000));
  });

  it('makes secrets in the whsec_ form with a 32-byte key', () => {
    const secret = newWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    expect(newWebhookSecret()).not.toBe(secret);
  });
});
