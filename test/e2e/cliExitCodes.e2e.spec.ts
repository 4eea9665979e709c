import { createTestKafka, createTestTopic, deleteTopics, runTallyCommand, uniqueName } from '@tally/test-support';

jest.setTimeout(60_000);

/** Nothing listens on port 1: a command that connected before refusing its flags would fail there (exit 1), not exit 2. */
const NOWHERE = { TALLY_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/tally', TALLY_REDIS_URL: 'redis://127.0.0.1:1', TALLY_KAFKA_BROKERS: '127.0.0.1:1' };

/** The built `tally` command's exit codes: 2 for what cannot run as given, with its reason and no stack trace. */
describe('tally exit codes', () => {
  it('answers --help with 0', async () => {
    const help = await runTallyCommand(['--help'], {});
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('Usage: tally')]);
  });

  it.each([
    [{ TALLY_API_PORT: '0x1F90' }, 'tally: invalid configuration: TALLY_API_PORT: a whole number in decimal digits\n'],
    [{ TALLY_API_KEYS: ',' }, 'tally: TALLY_API_KEYS: holds no key; give key[:scope[+scope][:name]] entries separated by commas, or unset it for the local key\n'],
    [{ TALLY_KAFKA_SSL_CA_FILE: '/nonexistent/kafka-ca.pem' }, 'tally: TALLY_KAFKA_SSL_CA_FILE: cannot read the CA file /nonexistent/kafka-ca.pem (ENOENT)\n'],
  ])('refuses the configuration %j with its message alone and 2, even for --help', async (env, message) => {
    for (const args of [['--help'], ['api-keys']]) {
      const refused = await runTallyCommand(args, env);
      expect({ args, code: refused.code, stderr: refused.stderr }).toEqual({ args, code: 2, stderr: message });
    }
  });

  it.each([
    [['no-such-command'], "error: unknown command 'no-such-command'"],
    [['api-keys', '--no-such-flag'], "error: unknown option '--no-such-flag'"],
    [['balance'], "error: missing required argument 'customerId'"],
    [['dead-letter', '--partition', '0'], "error: required option '--offset <offset>' not specified"],
    [[], 'Usage: tally'],
  ])('exits 2 for what commander refuses: %j', async (args, message) => {
    const refused = await runTallyCommand(args, NOWHERE);
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining(message)]);
  });

  it.each([
    [['replay', '--batch-size', 'abc'], 'tally: --batch-size takes an integer from 1 to 100000\n'],
    [['replay', '--verify', '--batch-size', '0'], 'tally: --batch-size takes an integer from 1 to 100000\n'],
    [['keep-balance-states', '--page-size', '1e3'], 'tally: --page-size takes an integer from 1 to 100000\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '-n', '0x10'], 'tally: --count takes an integer from 1 to 1000000\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '-p', 'novalue'], 'tally: --property takes key=value, got "novalue"\n'],
    [
      ['send', '-c', 'acme', '-e', 'tokens_used', '-p', 'tokens=12345678901234567890'],
      `tally: --property tokens=12345678901234567890: the number cannot be sent exactly (a usage event's numbers are doubles, exact to 15 significant digits); to send it as a string, quote it: tokens="12345678901234567890"\n`,
    ],
    [['redrive', '--all', '--error-code', 'x'], 'tally: --all, --error-code and --letter exclude each other\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '--schema', '/nonexistent/usage-event.avsc'], 'tally: --schema: cannot read the file /nonexistent/usage-event.avsc (ENOENT)\n'],
    // Times are read as the API and the consumer read theirs: a zone, and a day on the calendar.
    [['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '2027-02-30T00:00:00Z'], 'tally: --timestamp "2027-02-30T00:00:00Z" is not a date and time on the calendar\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '1772546530'], 'tally: --timestamp 1772546530 looks like epoch seconds: send epoch milliseconds (or ISO-8601)\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '99999999999999999'], 'tally: --timestamp is not a valid time between 1970 and 2200\n'],
    // In ISO too, what the consumer would dead-letter: outside 1970..2200, or (sent as a number)
    // so small that the consumer takes it for epoch seconds.
    [['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '1969-12-31T00:00:00Z'], 'tally: --timestamp is not a valid time between 1970 and 2200\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '2300-01-01T00:00:00Z'], 'tally: --timestamp is not a valid time between 1970 and 2200\n'],
    [
      ['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '1972-01-01T00:00:00Z'],
      'tally: --timestamp "1972-01-01T00:00:00Z" goes out as epoch milliseconds, 63072000000, which the consumer would dead-letter: timestamp 63072000000 looks like epoch seconds: send epoch milliseconds (or ISO-8601)\n',
    ],
    [
      ['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '1973-03-03T09:46:39.999Z'],
      'tally: --timestamp "1973-03-03T09:46:39.999Z" goes out as epoch milliseconds, 99999999999, which the consumer would dead-letter: timestamp 99999999999 looks like epoch seconds: send epoch milliseconds (or ISO-8601)\n',
    ],
    [['send', '-c', 'acme', '-e', 'api_call', '--timestamp', '2026-03-01T12:00:00'], `tally: --timestamp must be ISO-8601 with a zone, e.g. 2026-03-01T12:00:00Z (without one it would be each host's local time)\n`],
    // What the consumer would dead-letter as invalid_usage_event (and the HTTP ingest refuses), by its own parser.
    [['send', '-c', '', '-e', 'api_call'], 'tally: not sent, the consumer would dead-letter the event: customerId must be 1-256 characters\n'],
    [['send', '-c', 'acme', '-e', 'api_call', '--id', ''], 'tally: not sent, the consumer would dead-letter the event: id must be 1-256 characters\n'],
    [['send', '-c', 'c'.repeat(300), '-e', 'api_call'], 'tally: not sent, the consumer would dead-letter the event: customerId must be 1-256 characters\n'],
    [['send', '-c', 'acme', '-e', 'e'.repeat(257)], 'tally: not sent, the consumer would dead-letter the event: event must be 1-256 characters\n'],
    // The longest id of a --count run is the last one: 254 characters and -0 fit, and -10 does not.
    [['send', '-c', 'acme', '-e', 'api_call', '--id', 'i'.repeat(254), '-n', '11'], 'tally: not sent, the consumer would dead-letter the event: id must be 1-256 characters\n'],
    [['redrive', '--all', '--since', '2026-03-01T24:00:00Z'], 'tally: --since "2026-03-01T24:00:00Z" is not a date and time on the calendar\n'],
    // skip-batch's places are read as dead-letter places are: a partition Kafka can have, an offset without leading zeros.
    [['skip-batch', '--partition', '99999999999999999999', '--offset', '2'], 'tally: --partition and --offset take non-negative integers\n'],
    [['skip-batch', '--partition', '0', '--offset', '012'], 'tally: --partition and --offset take non-negative integers\n'],
    [['relay-rewind', '--to-time', '2026-03-01 12:00:00'], `tally: --to-time must be ISO-8601 with a zone, e.g. 2026-03-01T12:00:00Z (without one it would be each host's local time)\n`],
  ])('refuses the flags of %j before connecting to anything, naming the flag, with 2', async (args, message) => {
    const refused = await runTallyCommand(args, NOWHERE);
    expect([refused.code, refused.stderr]).toEqual([2, message]);
  });

  it('exits 1 when a service cannot be reached (the control: the flags above were refused before this)', async () => {
    const failed = await runTallyCommand(['keep-balance-states'], { ...NOWHERE, TALLY_DATABASE_CONNECT_TIMEOUT_MS: '1000' });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^tally: /);
  });
  it.each([[['balance', 'acme']], [['usage-event', 'acme', 'some-event']], [['replay']], [['redrive', '--all']]])(
    'says Redis cannot be reached, and where, without its credentials or a stack trace, for %j (exit 1)',
    async (args) => {
      const failed = await runTallyCommand(args, { TALLY_REDIS_URL: 'redis://tally:top-secret@127.0.0.1:1/0' });
      expect({ code: failed.code, lines: failed.stderr.trimEnd().split('\n') }).toEqual({
        code: 1,
        lines: [expect.stringMatching(/^tally: Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1\/0 cannot be reached \(connect ECONNREFUSED 127\.0\.0\.1:1\)/)],
      });
    },
  );

  it('says the schema registry cannot be reached, not that it refused the schema (exit 1)', async () => {
    const failed = await runTallyCommand(['send', '-c', 'acme', '-e', 'api_call'], { TALLY_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1' });
    expect([failed.code, failed.stderr]).toEqual([1, 'tally: the schema registry at http://127.0.0.1:1 cannot be reached (connect ECONNREFUSED 127.0.0.1:1); nothing was sent\n']);
  });

  it('logs a routine warning (a topic that does not exist) without a stack trace', async () => {
    const failed = await runTallyCommand(['send', '--json', '-c', 'acme', '-e', 'api_call'], { TALLY_USAGE_TOPIC: uniqueName('no_such_topic') });
    expect(failed.code).toBe(1);
    const warnings = failed.stderr.split('\n').filter((line) => line.startsWith('{'));
    // The control: there is a warning, with its error.
    expect(warnings.map((line) => (JSON.parse(line) as { err?: { message?: string } }).err?.message)).toContain('This server does not host this topic-partition');
    expect(failed.stderr).not.toContain('    at ');
  });

  it('refuses skip-batch of a partition the topic does not have, naming how many it has, at once (exit 1)', async () => {
    const admin = createTestKafka(uniqueName('cli-exit-codes')).admin();
    await admin.connect();
    const topic = await createTestTopic(admin, { prefix: 'skip_partition', partitions: 2 });
    try {
      const refused = await runTallyCommand(['skip-batch', '--topic', topic, '--group', uniqueName('skip_group'), '--partition', '2', '--offset', '0'], {});
      expect([refused.code, refused.stderr]).toEqual([1, `tally: ${topic} has 2 partitions (0..1): there is no partition 2\n`]);
    } finally {
      await deleteTopics(admin, [topic]).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
