import type { Kafka } from 'kafkajs';
import pino from 'pino';
import { isTooLargeForTopic, partEnd, recordBytesOf, sendBudgetOf, sendInParts, topicSendBudget } from './sendParts';

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

describe('sendInParts', () => {
  const logger = pino({ level: 'silent' });
  const tooLarge = () => Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' });
  const message = (name: string, bytes: number) => ({ key: 'k', value: Buffer.alloc(bytes), headers: { name } });
  const fixedBudget = (start: number) => {
    let budget = start;
    return { current: async () => budget, refused: (bytes: number) => (budget = Math.floor(bytes / 2)) };
  };

  it('halves a refused part, leaves out a message refused alone, and sends the rest in order', async () => {
    // The "topic" takes parts of at most 2,500 bytes; the third message alone is over that.
    const messages = [message('a', 1_000), message('b', 1_000), message('c', 3_000), message('d', 1_000), message('e', 1_000)];
    const sent: string[][] = [];
    const refused: number[] = [];
    await sendInParts({
      messages,
      budget: fixedBudget(10_000),
      send: async (part) => {
        if (part.reduce((sum, { value }) => sum + (value as Buffer).length, 0) > 2_500) throw tooLarge();
        sent.push(part.map(({ headers }) => String(headers!.name)));
      },
      refusedAlone: (index) => refused.push(index),
      logger,
    });
    expect(sent.flat()).toEqual(['a', 'b', 'd', 'e']);
    expect(refused).toEqual([2]);
  });

  it('rejects with any other failure as it came, after the parts before it', async () => {
    const down = Object.assign(new Error('down'), { type: 'LEADER_NOT_AVAILABLE' });
    const sent: number[] = [];
    const sending = sendInParts({
      messages: [message('a', 1_000), message('b', 1_000)],
      budget: fixedBudget(1_100),
      send: async (part) => {
        if (sent.length === 1) throw down;
        sent.push(part.length);
      },
      refusedAlone: () => undefined,
      logger,
    });
    await expect(sending).rejects.toBe(down);
    expect(sent).toEqual([1]);
  });
});

describe('topicSendBudget', () => {
  const logger = pino({ level: 'silent' });
  /** A Kafka whose admin answers the topic's max.message.bytes, and nothing else. */
  const kafkaWithMaxMessageBytes = (bytes: number) =>
    ({
      admin: () => ({
        connect: async () => undefined,
        disconnect: async () => undefined,
        describeConfigs: async () => ({ resources: [{ configEntries: [{ configName: 'max.message.bytes', configValue: String(bytes) }] }] }),
      }),
    }) as unknown as Kafka;

  it('only ever lowers the budget: a larger part built under an older budget and refused later does not raise it', async () => {
    const budget = topicSendBudget({ kafka: kafkaWithMaxMessageBytes(1_048_588), topic: 'usage', logger });
    expect(await budget.current()).toBe(sendBudgetOf(1_048_588));
    // Two requests share the budget: one's part of 40,000 bytes is refused first...
    expect(budget.refused(40_000)).toBe(20_000);
    // ...then the other's part of 900,000, built before that, is refused: still 20,000, not 450,000.
    expect(budget.refused(900_000)).toBe(20_000);
    expect(await budget.current()).toBe(20_000);
    // A smaller refusal lowers it further, never below one byte.
    expect(budget.refused(10_000)).toBe(5_000);
    expect(budget.refused(1)).toBe(1);
  });

  it('keeps the lower of a refusal made while the topic is read and what the topic says', async () => {
    const large = topicSendBudget({ kafka: kafkaWithMaxMessageBytes(1_048_588), topic: 'usage', logger });
    const learningLarge = large.current();
    expect(large.refused(40_000)).toBe(20_000);
    expect(await learningLarge).toBe(20_000);
    const small = topicSendBudget({ kafka: kafkaWithMaxMessageBytes(10_000), topic: 'usage', logger });
    const learningSmall = small.current();
    expect(small.refused(40_000)).toBe(20_000);
    expect(await learningSmall).toBe(sendBudgetOf(10_000));
    expect(await small.current()).toBe(sendBudgetOf(10_000));
  });
});
