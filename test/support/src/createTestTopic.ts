import type { Admin } from 'kafkajs';
import { uniqueName } from './uniqueName';

/**
 * Creates a topic of its own for one test (the broker does not auto-create topics) and returns
 * its name once every partition has a leader, so producing to it right away succeeds.
 */
export async function createTestTopic(
  admin: Admin,
  { prefix = 'test', partitions = 1 }: { prefix?: string; partitions?: number } = {},
): Promise<string> {
  const topic = uniqueName(prefix);
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
  return topic;
}

export async function deleteTopics(admin: Admin, topics: readonly string[]): Promise<void> {
  if (topics.length === 0) return;
  await admin.deleteTopics({ topics: [...topics] });
}
