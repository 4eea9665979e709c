import { cloudEventUsageId } from './cloudEventUsage';
import { usageIdentityOf } from './usageIdentity';

describe('usageIdentityOf: the usage event a record names, valid or not', () => {
  it("reads Tally's own fields, whatever else the record gets wrong", () => {
    expect(usageIdentityOf({ id: 'web-3', customerId: 'acme', quantity: -1 })).toEqual({ customerId: 'acme', usageEventId: 'web-3' });
  });

  it("reads a CloudEvent's subject, and its source and id as metering joins them", () => {
    const cloudEvent = { specversion: '1.0', id: 'c-7', source: '/checkout', subject: 'acme', type: 'render', data: 'not an object' };
    expect(usageIdentityOf(cloudEvent)).toEqual({ customerId: 'acme', usageEventId: cloudEventUsageId('/checkout', 'c-7') });
    expect(usageIdentityOf({ ...cloudEvent, source: '' })).toBeNull();
    expect(usageIdentityOf({ ...cloudEvent, subject: undefined })).toBeNull();
    // Too long together for a usage id: no usage event of that id can be looked up.
    expect(usageIdentityOf({ ...cloudEvent, source: 's'.repeat(250) })).toBeNull();
  });

  it('names nothing when either id is missing, not text, empty or longer than 256 characters', () => {
    for (const record of [
      null,
      'acme',
      [{ id: 'e', customerId: 'c' }],
      { id: 'e' },
      { customerId: 'c' },
      { id: 7, customerId: 'c' },
      { id: 'e', customerId: '' },
      { id: 'e'.repeat(257), customerId: 'c' },
    ]) {
      expect(usageIdentityOf(record)).toBeNull();
    }
    expect(usageIdentityOf({ id: 'e'.repeat(256), customerId: 'c' })).toEqual({ customerId: 'c', usageEventId: 'e'.repeat(256) });
  });

  it('counts ids in characters, as metering does: 256 emoji name a customer, 257 do not', () => {
    expect(usageIdentityOf({ id: 'e', customerId: '😀'.repeat(256) })).toEqual({ customerId: '😀'.repeat(256), usageEventId: 'e' });
    expect(usageIdentityOf({ id: 'e', customerId: '😀'.repeat(257) })).toBeNull();
  });
});
