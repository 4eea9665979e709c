import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright-core';

/** The rules a page is held to: WCAG 2.1 levels A and AA, and axe's best practices. */
export const AUDITED_RULE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] as const;

export interface AccessibilityViolation {
  /** axe's rule id, e.g. `color-contrast`, `label`. */
  readonly rule: string;
  readonly impact: string | null;
  readonly help: string;
  /** The offending elements, by CSS selector, with axe's summary of what to fix. */
  readonly nodes: ReadonlyArray<{ readonly target: string; readonly summary: string }>;
}

/**
 * axe-core's audit of the page as it is shown now: what a screen reader or keyboard user would
 * trip on (controls without a name, contrast, landmarks, ARIA misuse). The browser tests run it
 * on every screen they photograph and expect nothing, so a page that regresses fails by rule and
 * element. axe runs in the page through the DevTools protocol, which the pages' strict
 * Content-Security-Policy does not govern.
 */
export async function auditAccessibility(page: Page): Promise<AccessibilityViolation[]> {
  const results = await new AxeBuilder({ page }).withTags([...AUDITED_RULE_TAGS]).analyze();
  return results.violations.map((violation) => ({
    rule: violation.id,
    impact: violation.impact ?? null,
    help: violation.help,
    nodes: violation.nodes.map((node) => ({ target: node.target.join(' '), summary: node.failureSummary ?? '' })),
  }));
}
