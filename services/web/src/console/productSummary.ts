import type { CreditProduct } from '../shared/apiTypes';
import { formatCredits } from '../shared/format';

/** A product's consumption rules in one line, as the catalog and a product's history show them. */
export function rulesSummary(product: CreditProduct): string {
  return product.consumption.map((rule) => `${rule.event}: ${rule.credits}${rule.perUnitOf !== undefined ? ` per ${rule.perUnitOf}` : ''}`).join('; ');
}

export function warningLimitSummary(product: CreditProduct): string {
  return product.lowBalanceThreshold === null ? 'none' : formatCredits(product.lowBalanceThreshold);
}

export function bundlesSummary(product: CreditProduct): string {
  return product.bundles.map((bundle) => `${bundle.id}${bundle.purchaseOption === false ? ' (not offered)' : ''}`).join(', ');
}
