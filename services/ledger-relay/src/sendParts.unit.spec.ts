import { isTooLargeForTopic, partEnd, recordBytesOf, sendBudgetOf } from './sendParts';

describe('parts of a batch the topic takes', () => {
  it('sends the whole batch at once when it fits, else as many messages in order as fit, at least one', () => {
    expect(partEnd([100, 100, 100], 0, 1_000)).toBe(3);
    expect(partEnd([100, 100, 100], 0, 250)).toBe(2);
    expect(partEnd([100, 100, 100], 2, 250)).toBe(3);
    // A record over the budget goes alone: the topic decides whether it takes it.
    expect(partEnd([500, 100], 0, 250)).toBe(1);
    expect(partEnd([100, 500, 100], 0, 250)).toBe(1);
  });

  it('keeps a margin below max.message.bytes, and never a budget below one byte', () => {
    expect(sendBudgetOf(1_048_588)).toBeLessThan(1_048_588 - 61);
    expect(sendBudgetOf(1_048_588)).toBeGreaterThan(900_000);
    expect(sendBudgetOf(10)).toBe(1);
  });

  it("counts a message's key, value and headers, and more", () => {
    const bytes = recordBytesOf({ key: 'acme', value: Buffer.alloc(1_000), headers: { 'tally.event-type': 'CreditToppedUp', 'tally.event-id': 'e-1' } });
    expect(bytes).toBeGreaterThan(4 + 1_000 + 'tally.event-type'.length + 'CreditToppedUp'.length + 'tally.event-id'.length + 3);
  });

  it("finds the broker's refusal as too large wherever kafkajs wraps it", () => {
    const protocol = Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE' });
    expect(isTooLargeForTopic(protocol)).toBe(true);
    expect(isTooLargeForTopic(Object.assign(new Error('wrapped'), { cause: protocol }))).toBe(true);
    expect(isTooLargeForTopic(Object.assign(new Error('aggregate'), { errors: [new Error('x'), protocol] }))).toBe(true);
    expect(isTooLargeForTopic(Object.assign(new Error('down'), { type: 'LEADER_NOT_AVAILABLE' }))).toBe(false);
    expect(isTooLargeForTopic(undefined)).toBe(false);
  });
});
