import type { CreditProduct } from '../shared/apiTypes';
import { formatCredits, formatPrice } from '../shared/format';

/** A product's consumption rules in one line, as the catalog and a product's history show them. */
export function rulesSummary(product: CreditProduct): string {
  return product.consumption.map((rule) => `${rule.event}: ${rule.credits}${rule.perUnitOf !== undefined ? ` per ${rule.perUnitOf}` : ''}${filtersSummary(rule.where)}`).join('; ');
}

/** A rule's property filters, each value quoted so its spaces and commas show: ` where model = " large", region = "eu,us"`. */
function filtersSummary(where: Readonly<Record<string, string>> | undefined): string {
  const filters = Object.entries(where ?? {});
  if (filters.length === 0) return '';
  return ` where ${filters.map(([key, value]) => `${/^[\w.-]+$/.test(key) ? key : JSON.stringify(key)} = ${JSON.stringify(value)}`).join(', ')}`;
}

export function warningLimitSummary(product: CreditProduct): string {
  return product.lowBalanceThreshold === null ? 'none' : formatCredits(product.lowBalanceThreshold);
}

export function bundlesSummary(product: CreditProduct): string {
  return product.bundles.map((bundle) => `${bundle.id}${bundle.purchaseOption === false ? ' (not offered)' : ''}`).join(', ');
}

/** The bundles and then their prices, in the same order, as a product's history and a 412's review show them; empty when there are none. */
export function bundlesWithPricesSummary(product: CreditProduct): string {
  return product.bundles.length === 0 ? '' : `${bundlesSummary(product)}: ${product.bundles.map((bundle) => formatPrice(bundle.price)).join(', ')}`;
}
