import { createTestSchema, uniqueName, type TestSchema } from '@tally/test-support';
import { createPostgresCheckpointStore, readCheckpoints, rewindCheckpoint } from './checkpointStore';

describe('PostgreSQL checkpoint store', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'checkpoint_store' });
  });

  afterAll(async () => {
    await db.drop();
  });

  it('starts at 0 and moves forward', async () => {
    const checkpoints = createPostgresCheckpointStore(db.pool);
    const name = uniqueName('forward');
    expect(await checkpoints.load(name)).toBe(0n);
    await checkpoints.save(name, 10n);
    expect(await checkpoints.load(name)).toBe(10n);
    await checkpoints.save(name, 25n);
    expect(await checkpoints.load(name)).toBe(25n);
  });

  it('never moves backwards: a lower or equal position changes nothing', async () => {
    const checkpoints = createPostgresCheckpointStore(db.pool);
    const name = uniqueName('backwards');
    await checkpoints.save(name, 100n);
    await checkpoints.save(name, 40n);
    expect(await checkpoints.load(name)).toBe(100n);
    await checkpoints.save(name, 100n);
    expect(await checkpoints.load(name)).toBe(100n);
    // Positions beyond 2^53 compare exactly (bigint column, no float on the way).
    await checkpoints.save(name, 9_007_199_254_740_993n);
    await checkpoints.save(name, 9_007_199_254_740_992n);
    expect(await checkpoints.load(name)).toBe(9_007_199_254_740_993n);
  });

  it('is moved back only by a rewind, which answers where it was and changes nothing at or above it', async () => {
    const checkpoints = createPostgresCheckpointStore(db.pool);
    const name = uniqueName('rewind');
    expect(await rewindCheckpoint(db.pool, name, 5n)).toBe(0n);
    expect(await checkpoints.load(name)).toBe(0n);
    await checkpoints.save(name, 9_007_199_254_740_993n);
    expect(await rewindCheckpoint(db.pool, name, 9_007_199_254_740_993n)).toBe(9_007_199_254_740_993n);
    expect(await rewindCheckpoint(db.pool, name, 40n)).toBe(9_007_199_254_740_993n);
    expect(await checkpoints.load(name)).toBe(40n);
    expect(await rewindCheckpoint(db.pool, name, 41n)).toBe(40n);
    expect(await checkpoints.load(name)).toBe(40n);
    // From there, saves move it forward again.
    await checkpoints.save(name, 45n);
    expect(await checkpoints.load(name)).toBe(45n);
    // Listed with the others, as tally processors shows them.
    const listed = (await readCheckpoints(db.pool)).find((checkpoint) => checkpoint.name === name);
    expect(listed).toMatchObject({ name, position: 45n });
    expect(Date.now() - listed!.updatedAt.getTime()).toBeLessThan(60_000);
  });

  it('keeps the greatest of concurrent saves, whatever order they land in', async () => {
    const checkpoints = createPostgresCheckpointStore(db.pool);
    const name = uniqueName('concurrent');
    const positions = Array.from({ length: 40 }, (_, index) => BigInt(((index * 17) % 40) + 1));
    await Promise.all(positions.map((position) => checkpoints.save(name, position)));
    expect(await checkpoints.load(name)).toBe(40n);
  });
});
