import {
  Bundle,
  formatCredits,
  formatExactDecimal,
  InvalidAmountError,
  MAX_CREDITS,
  toExactDecimal,
  ValidationError,
  type ExactDecimal,
  type Micros,
  type Price,
  type PurchaseDetails,
} from '@tally/domain';
import { ProductNotFoundError, StoredProductInvalidError, type CatalogStore } from '@tally/catalog';
import type { Logger } from 'pino';
import type { BalanceRegistry } from './balanceRegistry';
import { BalanceNotFoundError, BundleNotFoundError, PurchaseKeyRefusedError, PurchaseTermsChangedError } from './ledgerErrors';
import type { CommandResult, LedgerService, RequestOptions } from './ledgerService';

export interface PurchaseRequest {
  readonly bundleId: string;
  /** Bundles bought at once: an integer from 1 to MAX_PURCHASE_QUANTITY. */
  readonly quantity: number;
  /**
   * A customer on the portal buys what the portal offers, nothing the operator kept off it: only
   * a bundle shown as a purchase option, BundleNotFoundError for another. A key buys any bundle.
   */
  readonly purchaseOptionsOnly?: boolean;
  /**
   * The bundle's terms as the buyer was shown them (a purchase option's credits and price):
   * PurchaseTermsChangedError, nothing bought, when the bundle's differ now. Absent: priced at the
   * catalog's terms of the moment.
   */
  readonly expected?: BundleTerms;
}

/** One bundle's credits and unit price, as the purchase options list them. */
export interface BundleTerms {
  readonly credits: Micros;
  readonly price: Price;
}

/** What a customer portal offers for one of the customer's balances. */
export interface PurchaseOption {
  readonly balanceId: string;
  readonly productId: string;
  readonly productName: string;
  readonly bundles: readonly Bundle[];
}

export interface PurchaseService {
  /**
   * Tops the balance up with the bundle's credits × quantity and records the prices. Throws
   * BalanceNotFoundError (unknown balance) or BundleNotFoundError (the balance's product has no
   * such bundle): both are "the thing the request names does not exist", 404; and
   * PurchaseTermsChangedError when the bundle is no longer what `expected` says. A retry of a stored
   * purchase (its Idempotency-Key) answers its first result before any of that is checked: what
   * was bought stays bought, whatever the catalog sells or offers now. A keyed request refused for
   * its bundle or terms while a twin priced earlier is still being written answers that twin's
   * purchase, or the twin never lands (LedgerService.refusePurchase): "nothing was bought" holds.
   */
  purchase(balanceId: string, request: PurchaseRequest, options?: RequestOptions): Promise<CommandResult>;
  /**
   * What a purchase of it would record today (bundle, quantity, prices, credits), checked as
   * `purchase` checks it; buys nothing. `refused` ends a changed terms' refusal: what did not
   * happen ("nothing was bought" by default; a setting's caller says what was not set).
   */
  quote(balanceId: string, request: PurchaseRequest, refused?: string): Promise<PurchaseDetails & { credits: Micros }>;
  /** The purchase an auto-recharge makes for one low-balance warning, at today's price; once per warning (found stored: answered again, as `purchase`). Throws as `purchase`. */
  autoRecharge(balanceId: string, request: PurchaseRequest, warningEventId: string): Promise<CommandResult>;
  /** For each of the customer's balances, the bundles its product offers as purchase options, with prices (none: an empty list). */
  purchaseOptions(customerId: string): Promise<PurchaseOption[]>;
}

export const MAX_PURCHASE_QUANTITY = 1_000_000;

/** A refusal made on the catalog as it is now (the bundle, its terms, its credits), which a twin priced earlier may not have met. */
const refusedByCatalog = (error: unknown): boolean =>
  error instanceof BundleNotFoundError || error instanceof PurchaseTermsChangedError || error instanceof InvalidAmountError || error instanceof ProductNotFoundError;

function priceAmount(amount: string): ExactDecimal {
  const exact = toExactDecimal(amount);
  if (exact === undefined || exact.digits < 0n) throw new ValidationError(`unit price "${amount}" is not a non-negative decimal`);
  return exact;
}

/** An amount of money in its one spelling ("9.90" and "9.9" are "9.9"): how expected prices are compared, and hashed. */
export const canonicalAmount = (amount: string): string => formatExactDecimal(priceAmount(amount));

/**
 * price × quantity, exactly: integer digits times an integer, no float. The result keeps the
 * unit price's decimals ("49.90" × 3 = "149.70"), as an invoice line shows it.
 */
export function totalPrice(unitPrice: string, quantity: number): string {
  const unit = priceAmount(unitPrice);
  if (!Number.isSafeInteger(quantity) || quantity < 1) throw new ValidationError('quantity must be a positive integer');
  const text = formatExactDecimal({ digits: unit.digits * BigInt(quantity), scale: unit.scale });
  if (unit.scale === 0) return text;
  const [whole, fraction = ''] = text.split('.');
  return `${whole}.${fraction.padEnd(unit.scale, '0')}`;
}

export function createPurchaseService(options: {
  catalog: Pick<CatalogStore, 'getProduct' | 'soldBundle'>;
  balanceRegistry: Pick<BalanceRegistry, 'getBalance' | 'listCustomerBalances'>;
  ledger: LedgerService;
  /** Where a product left out of the purchase options (stored invalid) is reported; none without it. */
  logger?: Logger;
}): PurchaseService {
  const { catalog, balanceRegistry, ledger } = options;

  async function quote(balanceId: string, request: PurchaseRequest, refused = 'nothing was bought'): Promise<PurchaseDetails & { credits: Micros }> {
    if (!Number.isInteger(request.quantity) || request.quantity < 1 || request.quantity > MAX_PURCHASE_QUANTITY) {
      throw new ValidationError(`quantity must be an integer from 1 to ${MAX_PURCHASE_QUANTITY}`);
    }
    const ref = await balanceRegistry.getBalance(balanceId);
    if (ref === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
    const product = await catalog.getProduct(ref.productId);
    if (product === undefined) throw new ProductNotFoundError(`no credit product with id "${ref.productId}"`);
    const bundle = product.bundles.find((candidate) => candidate.id === request.bundleId);
    if (bundle === undefined) {
      throw new BundleNotFoundError(`credit product "${product.id}" has no bundle with id "${request.bundleId}"`);
    }
    if (request.purchaseOptionsOnly === true && !bundle.purchaseOption) {
      throw new BundleNotFoundError(`balance ${balanceId} offers no bundle "${request.bundleId}" as a purchase option`);
    }
    const { expected } = request;
    if (
      expected !== undefined &&
      (bundle.credits !== expected.credits || bundle.price.currency !== expected.price.currency || canonicalAmount(bundle.price.amount) !== canonicalAmount(expected.price.amount))
    ) {
      const terms = ({ credits, price }: BundleTerms) => `${formatCredits(credits)} credits for ${price.amount} ${price.currency}`;
      throw new PurchaseTermsChangedError(`bundle "${bundle.id}" is now ${terms(bundle)}, not ${terms(expected)} as expected: ${refused}`);
    }
    const credits = bundle.credits * BigInt(request.quantity);
    if (credits > MAX_CREDITS) throw new InvalidAmountError('the purchase exceeds the largest accepted amount (10^15 credits)');
    return {
      bundleId: bundle.id,
      quantity: request.quantity,
      unitPrice: bundle.price.amount,
      totalPrice: totalPrice(bundle.price.amount, request.quantity),
      currency: bundle.price.currency,
      credits,
    };
  }

  /** Whether the balance's product ever had the bundle (see CatalogStore.soldBundle); unknown counts as sold, to fence. */
  async function everSold(balanceId: string, bundleId: string): Promise<boolean> {
    const ref = await balanceRegistry.getBalance(balanceId);
    return ref === undefined || (await catalog.soldBundle(ref.productId, bundleId));
  }

  return {
    quote,

    // A stored purchase is looked for first and passed back as it was stored: the command path
    // replays it (and compares the request's digest), where the catalog might refuse it now.
    async purchase(balanceId, request, requestOptions) {
      const { idempotencyKey, requestHash } = requestOptions ?? {};
      if (idempotencyKey === undefined) return ledger.purchase(balanceId, await quote(balanceId, request), requestOptions);
      const stored = await ledger.storedPurchase(balanceId, { idempotencyKey });
      if (stored !== undefined) return ledger.purchase(balanceId, stored, requestOptions);
      let priced: PurchaseDetails & { credits: Micros };
      try {
        priced = await quote(balanceId, request);
      } catch (error) {
        if (!refusedByCatalog(error)) throw error;
        // A twin of this request (another process, priced before the catalog changed) may still be
        // about to write its purchase: the refusal stands only once none can (refusePurchase).
        // The fence is a write kept for ever, so it is made only where such a twin could exist: a
        // bundle no revision of the product ever had was never priced (any client can name one);
        // changed terms, credits or product always had a bundle behind them.
        if (error instanceof BundleNotFoundError && !(await everSold(balanceId, request.bundleId))) throw error;
        const landed = await ledger.refusePurchase(balanceId, { idempotencyKey, ...(requestHash !== undefined ? { requestHash } : {}) });
        if (landed === undefined) throw error;
        return ledger.purchase(balanceId, landed, requestOptions);
      }
      try {
        return await ledger.purchase(balanceId, priced, requestOptions);
      } catch (error) {
        if (!(error instanceof PurchaseKeyRefusedError)) throw error;
        // A twin was refused while this one was being written: answer as it was answered, with the
        // catalog's terms of now; only if they are back to what this one was priced at, the fence's own error.
        await quote(balanceId, request);
        throw error;
      }
    },

    async autoRecharge(balanceId, request, warningEventId) {
      const stored = await ledger.storedPurchase(balanceId, { warningEventId });
      return ledger.autoRecharge(balanceId, warningEventId, stored ?? (await quote(balanceId, request)));
    },

    async purchaseOptions(customerId) {
      const balances = await balanceRegistry.listCustomerBalances(customerId);
      const productIds = [...new Set(balances.map((balance) => balance.productId))];
      const products = new Map(
        await Promise.all(
          productIds.map(async (productId) => {
            try {
              return [productId, await catalog.getProduct(productId)] as const;
            } catch (error) {
              // One product stored invalid must not hide every other product's options from the
              // portal: its balance is left out (the console lists the product as needing repair).
              if (!(error instanceof StoredProductInvalidError)) throw error;
              options.logger?.warn({ productId, customerId, err: error }, 'purchase options: leaving out a product stored invalid until it is repaired');
              return [productId, undefined] as const;
            }
          }),
        ),
      );
      return balances.flatMap((balance) => {
        const product = products.get(balance.productId);
        // A registry row always names a catalog product (foreign key); skip rather than fail if not.
        return product === undefined
          ? []
          : // Only the bundles the operator chose to offer: what the portal shows and lets a customer buy.
            [{ balanceId: balance.id, productId: product.id, productName: product.name, bundles: product.bundles.filter((bundle) => bundle.purchaseOption) }];
      });
    },
  };
}
