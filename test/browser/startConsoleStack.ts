import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Producer } from 'kafkajs';
import {
  auditAccessibility,
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  freePort,
  launchChromium,
  stackConfig,
  startTallyProcess,
  uniqueName,
  waitFor,
  type Browser,
  type Locator,
  type Page,
} from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Where the browser tests put their screenshots of the main screens: .tally/screenshots, or with
 * TALLY_UPDATE_SCREENSHOTS=1 docs/screenshots, which the README shows.
 */
export const SCREENSHOTS =
  process.env.TALLY_UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'screenshots') : path.join(process.env.TALLY_HOME ?? path.join(ROOT, '.tally'), 'screenshots');

/** A phone-sized window, where the portal is photographed and every console screen is audited too. */
export const PHONE_VIEWPORT = { width: 390, height: 844 };
/** A desktop window, the console's usual. */
export const DESKTOP_VIEWPORT = { width: 1280, height: 900 };

/**
 * axe-core's audit of what the page shows now (WCAG 2.1 A and AA, best practices): nothing may be
 * found. `what` names the screen or state in a failure, beside each rule and element.
 */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  expect({ what, violations: await auditAccessibility(page) }).toEqual({ what, violations: [] });
}

/**
 * A main screen as the README shows it: audited, photographed whole (or only `element` of it),
 * and audited again on a phone, after the photograph so the resize never shows in it.
 */
export async function photograph(page: Page, file: string, options: { readonly fullPage?: boolean; readonly element?: Locator } = {}): Promise<void> {
  await expectAccessible(page, file);
  mkdirSync(SCREENSHOTS, { recursive: true });
  const target = path.join(SCREENSHOTS, file);
  if (options.element !== undefined) await options.element.screenshot({ path: target });
  else await page.screenshot({ path: target, fullPage: options.fullPage ?? false });
  // The same screen on a phone: a layout that only breaks when narrow (a header's links running
  // out of it, a table no keyboard can scroll) is found where it is photographed.
  const viewport = page.viewportSize();
  if (viewport !== null && viewport.width > PHONE_VIEWPORT.width) {
    await page.setViewportSize(PHONE_VIEWPORT);
    try {
      await expectAccessible(page, `${file} on a phone`);
    } finally {
      await page.setViewportSize(viewport);
    }
  }
}

export interface ConsoleStackOptions {
  /** Names the test's schema, topics, Redis prefix and consumer group. */
  readonly prefix: string;
  /** `TALLY_ROLES` of the main job. */
  readonly roles: string;
  /** An admin key, named `operator`, for the console's sign-in and the test's own API calls. */
  readonly adminKey: string;
  /** Where the main job reaches Kafka (a proxy the test controls); default the stack's broker. */
  readonly kafkaBroker?: string;
  readonly usagePartitions?: number;
  /** More of the main job's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

/** The main job on a schema and topics of the test's own, and Chromium to drive its pages. */
export interface ConsoleStack {
  /** `http://127.0.0.1:<port>`, the API and the pages. */
  readonly base: string;
  readonly usageTopic: string;
  readonly dlqTopic: string;
  /** Straight to the broker, whatever `kafkaBroker` the main job uses. */
  readonly producer: Producer;
  /** The main job's environment: a `tally` command run with it acts on the same deployment. */
  readonly env: Readonly<Record<string, string>>;
  readonly browser: Browser;
  /**
   * SQL on the main job's schema (the test's own): to store what the API would refuse, as an
   * older version or a hand edit may have. Answers the rows.
   */
  query(text: string, values?: readonly unknown[]): Promise<Array<Record<string, unknown>>>;
  /**
   * A call to the API with the admin key, for a test's setup: its JSON answer (undefined for a
   * 204); anything but a 2xx throws with the status and the body.
   */
  api<T>(method: string, url: string, body?: unknown): Promise<T>;
  /** Opens the console on the page and signs in with the admin key. */
  signIn(page: Page): Promise<void>;
  close(): Promise<void>;
}

export async function startConsoleStack(options: ConsoleStackOptions): Promise<ConsoleStack> {
  const db = await createTestSchema({ prefix: options.prefix });
  const kafka = createTestKafka(options.prefix);
  const admin = kafka.admin();
  const producer = kafka.producer();
  await Promise.all([admin.connect(), producer.connect()]);
  const [usageTopic, dlqTopic, ledgerTopic] = await Promise.all([
    createTestTopic(admin, { prefix: `${options.prefix}_usage`, partitions: options.usagePartitions ?? 1 }),
    createTestTopic(admin, { prefix: `${options.prefix}_dlq` }),
    createTestTopic(admin, { prefix: `${options.prefix}_ledger` }),
  ]);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const cleanUp = async () => {
    await deleteTopics(admin, [usageTopic, dlqTopic, ledgerTopic]).catch(() => undefined);
    await Promise.all([admin.disconnect(), producer.disconnect()]);
    await db.drop();
  };
  const env: Record<string, string> = {
    TALLY_ROLES: options.roles,
    TALLY_KAFKA_BROKERS: options.kafkaBroker ?? stackConfig.kafkaBrokers.join(','),
    TALLY_SCHEMA_REGISTRY_URL: stackConfig.schemaRegistryUrl,
    TALLY_DATABASE_URL: stackConfig.testDatabaseUrl,
    TALLY_DATABASE_SCHEMA: db.schema,
    TALLY_REDIS_URL: stackConfig.redisUrl,
    TALLY_REDIS_KEY_PREFIX: uniqueName(options.prefix),
    TALLY_USAGE_TOPIC: usageTopic,
    TALLY_DLQ_TOPIC: dlqTopic,
    TALLY_LEDGER_TOPIC: ledgerTopic,
    TALLY_CONSUMER_GROUP: uniqueName(options.prefix),
    TALLY_API_PORT: String(port),
    TALLY_API_KEYS: `${options.adminKey}:admin:operator`,
    TALLY_SESSION_SECRET: randomUUID() + randomUUID(),
    ...options.env,
  };
  const started = await Promise.allSettled([
    startTallyProcess({ env, readyTimeoutMs: 90_000 }),
    launchChromium(),
  ] as const);
  if (started[0].status === 'rejected' || started[1].status === 'rejected') {
    if (started[0].status === 'fulfilled') await started[0].value.kill('SIGTERM');
    if (started[1].status === 'fulfilled') await started[1].value.close();
    await cleanUp();
    throw started[0].status === 'rejected' ? started[0].reason : (started[1] as PromiseRejectedResult).reason;
  }
  const tally = started[0].value;
  const browser = started[1].value;
  return {
    base,
    usageTopic,
    dlqTopic,
    producer,
    env,
    browser,
    query: async (text, values = []) => (await db.pool.query<Record<string, unknown>>(text, [...values])).rows,
    async api<T>(method: string, url: string, body?: unknown): Promise<T> {
      const response = await fetch(`${base}/v1${url}`, {
        method,
        headers: { authorization: `Bearer ${options.adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
      return (response.status === 204 ? undefined : await response.json()) as T;
    },
    async signIn(page) {
      await page.goto(`${base}/console`);
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      await expectAccessible(page, 'the console sign-in');
      await page.getByLabel('API key').fill(options.adminKey);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
    },
    async close() {
      await browser.close();
      await tally.kill('SIGTERM');
      await cleanUp();
    },
  };
}

/**
 * Waits, with a deadline, until the locator's text satisfies the check; no fixed sleeps. When the
 * deadline passes, the error says what the locator last read and what the page said meanwhile
 * (its alerts and statuses, which is where a failed read shows), and a screenshot of the page is
 * kept under .tally/failures: a wait that fails once in CI can then be read, not guessed at.
 */
export async function untilText(locator: Locator, check: (text: string) => boolean, description: string): Promise<string> {
  let last = 'nothing read yet';
  try {
    return await waitFor(
      async () => {
        try {
          const text = await locator.innerText({ timeout: 1000 });
          last = JSON.stringify(text.slice(0, 300));
          return check(text) ? text : undefined;
        } catch (error) {
          last = `no text (${String(error).split('\n')[0]})`;
          return undefined;
        }
      },
      { description, timeoutMs: 30_000, intervalMs: 200 },
    );
  } catch (error) {
    throw new Error(`${String(error)}; the locator last read ${last}; ${await whatThePageSays(locator.page(), description)}`);
  }
}

const FAILURES = path.join(process.env.TALLY_HOME ?? path.join(ROOT, '.tally'), 'failures');

/** The page's alerts and statuses and a screenshot's path, for a wait's timeout message. */
async function whatThePageSays(page: Page, description: string): Promise<string> {
  try {
    const texts = async (role: 'alert' | 'status') => (await page.getByRole(role).allInnerTexts()).map((text) => text.slice(0, 300));
    mkdirSync(FAILURES, { recursive: true });
    const screenshot = path.join(FAILURES, `${description.replace(/[^a-z0-9]+/gi, '-')}-${Date.now()}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    return `page ${page.url()} alerts ${JSON.stringify(await texts('alert'))} statuses ${JSON.stringify(await texts('status'))}; screenshot ${screenshot}`;
  } catch (error) {
    return `the page could not be read (${String(error).split('\n')[0]})`;
  }
}

/** Opens a customer's page from the console's navigation, as an operator does: Customers, the id, Open customer. */
export async function openCustomer(page: Page, customerId: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Customers' }).click();
  await page.getByLabel('Customer id').fill(customerId);
  await page.getByRole('button', { name: 'Open customer' }).click();
  await page.getByRole('heading', { name: `Customer ${customerId}` }).waitFor();
}

/** What has focus in the page: its tag and text. */
const focused = (page: Page) => page.evaluate<{ tag: string; text: string }>("({ tag: document.activeElement?.tagName ?? '', text: document.activeElement?.textContent ?? '' })");

/** Until focus is on a `tag` element whose text `text` matches; what had it last, in the timeout's message. */
export async function untilFocused(page: Page, tag: string, text: string | RegExp): Promise<void> {
  let last: { tag: string; text: string } | undefined;
  try {
    await waitFor(
      async () => {
        last = await focused(page);
        return last.tag === tag && (typeof text === 'string' ? last.text === text : text.test(last.text));
      },
      { description: `focus on the ${tag} ${String(text)}`, timeoutMs: 10_000 },
    );
  } catch (error) {
    throw new Error(`${String(error)}; focus is on the ${last?.tag} ${JSON.stringify(last?.text.slice(0, 80))}`);
  }
}
