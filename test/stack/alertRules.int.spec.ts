/**
 * The alerting rules operators load into Prometheus (infra/prometheus/tally-alerts.yml), checked
 * by Prometheus's own promtool: they parse, and each alert fires on the series of its unit tests
 * (tally-alerts.test.yml) and stays quiet on their near misses. Each names a README section that
 * says what to do. Which metrics they read is checked against a running Tally in
 * test/e2e/metricsEndpoint.e2e.spec.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { runPromtool } from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');
const RULES_DIR = path.join(ROOT, 'infra', 'prometheus');

interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

/** promtool resolves the test file's rule_files from its own directory. */
const promtool = (...args: string[]) => runPromtool(args, { cwd: RULES_DIR });

function alertRules(): AlertRule[] {
  const file = parse(readFileSync(path.join(RULES_DIR, 'tally-alerts.yml'), 'utf8')) as { groups: { rules: AlertRule[] }[] };
  return file.groups.flatMap((group) => group.rules);
}

describe('the Prometheus alerting rules', () => {
  jest.setTimeout(60_000);

  it('pass promtool’s check', async () => {
    const output = await promtool('check', 'rules', 'tally-alerts.yml');
    expect(output).toContain(`SUCCESS: ${alertRules().length} rules found`);
  });

  it('fire on their unit tests’ series and only there', async () => {
    expect(await promtool('test', 'rules', 'tally-alerts.test.yml')).toContain('SUCCESS');
  });

  it('have a unit test each', () => {
    const tests = readFileSync(path.join(RULES_DIR, 'tally-alerts.test.yml'), 'utf8');
    const untested = alertRules().filter((rule) => !new RegExp(`alertname: ${rule.alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`).test(tests));
    expect(untested.map((rule) => rule.alert)).toEqual([]);
  });

  it('each carry a severity and a runbook section the README has', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const rules = alertRules();
    expect(rules.length).toBeGreaterThan(10);
    for (const rule of rules) {
      expect([rule.alert, rule.labels?.severity]).toEqual([rule.alert, expect.stringMatching(/^(critical|warning)$/)]);
      expect([rule.alert, rule.annotations?.runbook]).toEqual([rule.alert, `README.md#${rule.alert.toLowerCase()}`]);
      expect([rule.alert, readme.includes(`\n#### ${rule.alert}\n`)]).toEqual([rule.alert, true]);
    }
  });
});
