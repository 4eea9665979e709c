import { availableOf, decide, fitsAvailable, foldBalance, MAX_OPEN_HOLDS, OpenBalance } from './balance';
import {
  HoldAlreadyPlacedError,
  HoldNotExpiredError,
  HoldNotOpenError,
  InsufficientCreditsError,
  InvalidAmountError,
  InvalidInstantError,
  TooManyOpenHoldsError,
  ValidationError,
} from './errors';
import {
  AT,
  captured,
  captureHold,
  changeSettings,
  chargedByHold,
  consumeUsage,
  consumed,
  CREDIT,
  depleted,
  EXPIRES,
  expired,
  expireHold,
  held,
  openBalance,
  opened,
  placeHold,
  releaseHold,
  released,
  settingsChanged,
  toppedUp,
  USAGE,
} from './testing/balanceFixtures';
import { given } from './testing/decider';

const open = (state: ReturnType<typeof foldBalance>): OpenBalance => {
  if (state.status !== 'open') throw new Error('expected an open balance');
  return state;
};

/** 10 credits, nothing held. */
const funded = [opened(), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')];
/** 10 credits, 4 of them held by h-1. */
const holding = [...funded, held('h-1', 4n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 4n * CREDIT })];

describe('decide: placing a hold', () => {
  it('sets credits aside: balance unchanged, held and available move', () => {
    const state = given(funded)
      .when(placeHold('h-1', 4n * CREDIT))
      .then([held('h-1', 4n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 4n * CREDIT })]);
    expect(open(state)).toMatchObject({ balance: 10n * CREDIT, held: 4n * CREDIT, holds: { 'h-1': { credits: 4n * CREDIT, expiresAt: EXPIRES } } });
    expect(availableOf(open(state))).toBe(6n * CREDIT);
  });

  it('grants a hold that takes available exactly to zero, and refuses one micro-credit more with what is available', () => {
    given(holding)
      .when(placeHold('h-2', 6n * CREDIT))
      .then([held('h-2', 6n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 10n * CREDIT })]);
    given(holding).when(placeHold('h-2', 6n * CREDIT + 1n)).thenThrows(InsufficientCreditsError);
  });

  it('reports the available amount and the overdraft limit on a refusal', () => {
    let refusal: unknown;
    try {
      decide(placeHold('h-2', 7n * CREDIT), foldBalance(holding));
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(InsufficientCreditsError);
    expect(refusal).toMatchObject({ code: 'insufficient_credits', available: 6n * CREDIT, overdraftLimit: 0n, retriable: false });
    // In credits, as the API speaks: not micro-credits.
    expect(() => decide(placeHold('h-2', 6_500_000n), foldBalance(holding))).toThrow('the hold of 6.5 credits does not fit');
  });

  it('lets holds take available down to −overdraftLimit and no further', () => {
    const overdrawn = [{ ...opened(), overdraftLimit: 5n * CREDIT }, toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')];
    given(overdrawn)
      .when(placeHold('h-1', 15n * CREDIT))
      .then([held('h-1', 15n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 15n * CREDIT })]);
    given(overdrawn).when(placeHold('h-1', 15n * CREDIT + 1n)).thenThrows(InsufficientCreditsError);
  });

  it('refuses any hold on a balance already below −overdraftLimit (usage is charged in full, holds are not)', () => {
    const negative = [...funded, consumed(12n * CREDIT, -2n * CREDIT), depleted(-2n * CREDIT)];
    given(negative).when(placeHold('h-1', 1n)).thenThrows(InsufficientCreditsError);
  });

  it.each([0n, -1n])('rejects %p credits', (credits) => {
    given(funded).when(placeHold('h-1', credits)).thenThrows(InvalidAmountError);
  });

  it('rejects an expiry that is not after the command time, or not a time at all', () => {
    given(funded).when(placeHold('h-1', CREDIT, { expiresAt: AT })).thenThrows(ValidationError);
    given(funded).when(placeHold('h-1', CREDIT, { expiresAt: 'tomorrow' })).thenThrows(ValidationError);
  });

  it('refuses a second open hold under the same id', () => {
    given(holding).when(placeHold('h-1', CREDIT)).thenThrows(HoldAlreadyPlacedError);
  });

  // Date.parse would roll these over (2 March, the next day) or read them in the host's zone
  // (a different instant per host), so a hold could expire at a time the caller never named.
  it.each([
    ['30 February', '2027-02-30T00:00:00Z'],
    ['hour 24', '2027-02-28T24:00:00Z'],
    ['no zone', '2027-02-28T12:00:00'],
  ])('refuses an expiresAt of %s, naming the field', (_what, expiresAt) => {
    const command = placeHold('h-1', CREDIT, { expiresAt, at: '2027-02-27T00:00:00.000Z' });
    given(funded).when(command).thenThrows(InvalidInstantError);
    expect(() => decide(command, foldBalance(funded))).toThrow(/^expiresAt /);
  });
});

describe('decide and evolve: the number of open holds', () => {
  /** The funded balance with `count` open holds of one micro-credit each (h-open-0, h-open-1, ...). */
  const withOpenHolds = (count: number) => [
    ...funded,
    ...Array.from({ length: count }, (_, index) => held(`h-open-${index}`, 1n, { balanceAfter: 10n * CREDIT, heldAfter: BigInt(index + 1) })),
  ];
  const atLimit = withOpenHolds(MAX_OPEN_HOLDS);

  it('grants the hold that reaches the limit', () => {
    given(withOpenHolds(MAX_OPEN_HOLDS - 1))
      .when(placeHold('h-last', 1n))
      .then([held('h-last', 1n, { balanceAfter: 10n * CREDIT, heldAfter: BigInt(MAX_OPEN_HOLDS) })]);
  });

  it('refuses one more, however little it asks, saying the limit and what frees room: not retriable', () => {
    given(atLimit).when(placeHold('h-more', 1n)).thenThrows(TooManyOpenHoldsError);
    expect(() => decide(placeHold('h-more', 1n), foldBalance(atLimit))).toThrow(
      expect.objectContaining({
        code: 'too_many_open_holds',
        retriable: false,
        message: `the balance has ${MAX_OPEN_HOLDS} open holds and may have at most ${MAX_OPEN_HOLDS}: capture or release some before placing another`,
      }),
    );
  });

  it('counts holds past their expiry until their HoldExpired, and says how many of them only the scheduler frees', () => {
    const later = '2026-03-01T12:30:00.000Z';
    const partlyExpired = [
      ...funded,
      ...Array.from({ length: MAX_OPEN_HOLDS }, (_, index) =>
        held(`h-open-${index}`, 1n, { balanceAfter: 10n * CREDIT, heldAfter: BigInt(index + 1) }, index < 3 ? later : EXPIRES),
      ),
    ];
    expect(() => decide(placeHold('h-more', 1n, { at: '2026-03-01T12:45:00.000Z' }), foldBalance(partlyExpired))).toThrow(
      expect.objectContaining({
        code: 'too_many_open_holds',
        message: `the balance has ${MAX_OPEN_HOLDS} open holds (3 of them past their expiry, freed once the hold expiry scheduler records it) and may have at most ${MAX_OPEN_HOLDS}: capture or release some before placing another`,
      }),
    );
  });

  it('grants a hold again once one is released (or captured)', () => {
    const oneReleased = [...atLimit, released('h-open-0', 1n, { balanceAfter: 10n * CREDIT, heldAfter: BigInt(MAX_OPEN_HOLDS - 1) })];
    given(oneReleased)
      .when(placeHold('h-more', 1n))
      .then([held('h-more', 1n, { balanceAfter: 10n * CREDIT, heldAfter: BigInt(MAX_OPEN_HOLDS) })]);
  });

  it('still folds a stream written before the limit with more open holds, and frees them; only new holds are refused', () => {
    const over = withOpenHolds(MAX_OPEN_HOLDS + 2);
    expect(Object.keys(open(foldBalance(over)).holds)).toHaveLength(MAX_OPEN_HOLDS + 2);
    given(over).when(placeHold('h-more', 1n)).thenThrows(TooManyOpenHoldsError);
    given(over)
      .when(releaseHold('h-open-0'))
      .then([released('h-open-0', 1n, { balanceAfter: 10n * CREDIT, heldAfter: BigInt(MAX_OPEN_HOLDS + 1) })]);
  });
});

describe('decide and evolve: holds stored before expiresAt was read strictly', () => {
  // A CreditsHeld already in the ledger folds, is captured and expires exactly as it did: only
  // new commands are refused, never the history (replay gives the same answer).
  const rolledOver = [...funded, held('h-1', 4n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 4n * CREDIT }, '2026-02-30T13:00:00Z')];

  it('folds it with its expiresAt as stored', () => {
    expect(open(foldBalance(rolledOver)).holds['h-1']).toMatchObject({ expiresAt: '2026-02-30T13:00:00Z' });
  });

  it('expires it at the instant Date.parse read (2 March), not before', () => {
    given(rolledOver).when(expireHold('h-1', '2026-03-02T12:59:59.999Z')).thenThrows(HoldNotExpiredError);
    given(rolledOver)
      .when(expireHold('h-1', '2026-03-02T13:00:00.000Z'))
      .then([
        {
          ...expired('h-1', 4n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 0n }, '2026-03-02T13:00:00.000Z'),
          expiresAt: '2026-02-30T13:00:00Z',
        },
      ]);
  });

  it('releases it until then, and not from then on', () => {
    given(rolledOver).when(releaseHold('h-1', null, '2026-03-02T13:00:00.000Z')).thenThrows(HoldNotOpenError);
    given(rolledOver)
      .when(releaseHold('h-1', null, '2026-03-02T12:00:00.000Z'))
      .then([{ ...released('h-1', 4n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 0n }), occurredAt: '2026-03-02T12:00:00.000Z' }]);
  });

  it('captures it until then', () => {
    given(rolledOver)
      .when(captureHold('h-1', CREDIT, '2026-03-02T12:00:00.000Z'))
      .then([
        { ...chargedByHold(CREDIT, { balanceAfter: 9n * CREDIT, heldAfter: 4n * CREDIT }), occurredAt: '2026-03-02T12:00:00.000Z' },
        { ...captured('h-1', CREDIT, 3n * CREDIT, { balanceAfter: 9n * CREDIT, heldAfter: 0n }), occurredAt: '2026-03-02T12:00:00.000Z' },
      ]);
  });
});

describe('decide: capturing a hold', () => {
  it('charges all of it as a CreditConsumed with source "hold", then frees it', () => {
    const state = given(holding)
      .when(captureHold('h-1'))
      .then([
        chargedByHold(4n * CREDIT, { balanceAfter: 6n * CREDIT, heldAfter: 4n * CREDIT }),
        captured('h-1', 4n * CREDIT, 0n, { balanceAfter: 6n * CREDIT, heldAfter: 0n }),
      ]);
    expect(open(state)).toMatchObject({ balance: 6n * CREDIT, held: 0n, holds: {} });
  });

  it('charges part of it and frees the rest', () => {
    const state = given(holding)
      .when(captureHold('h-1', 1_500_000n))
      .then([
        chargedByHold(1_500_000n, { balanceAfter: 8_500_000n, heldAfter: 4n * CREDIT }),
        captured('h-1', 1_500_000n, 2_500_000n, { balanceAfter: 8_500_000n, heldAfter: 0n }),
      ]);
    expect(availableOf(open(state))).toBe(8_500_000n);
  });

  it('never charges more than was held, nor nothing', () => {
    given(holding).when(captureHold('h-1', 4n * CREDIT + 1n)).thenThrows(InvalidAmountError);
    expect(() => decide(captureHold('h-1', 4n * CREDIT + 1n), foldBalance(holding))).toThrow('credits must not exceed the 4 credits held');
    given(holding).when(captureHold('h-1', 0n)).thenThrows(InvalidAmountError);
  });

  it('is refused once the hold was released, expired, captured or never placed', () => {
    const freed = { balanceAfter: 10n * CREDIT, heldAfter: 0n };
    given([...holding, released('h-1', 4n * CREDIT, freed)]).when(captureHold('h-1')).thenThrows(HoldNotOpenError);
    given([...holding, expired('h-1', 4n * CREDIT, freed)]).when(captureHold('h-1')).thenThrows(HoldNotOpenError);
    given([...holding, chargedByHold(4n * CREDIT, { balanceAfter: 6n * CREDIT, heldAfter: 4n * CREDIT }), captured('h-1', 4n * CREDIT, 0n, { balanceAfter: 6n * CREDIT, heldAfter: 0n })])
      .when(captureHold('h-1'))
      .thenThrows(HoldNotOpenError);
    given(funded).when(captureHold('h-9')).thenThrows(HoldNotOpenError);
  });

  it('is refused at and after expiresAt, even before the HoldExpired is written', () => {
    given(holding).when(captureHold('h-1', undefined, EXPIRES)).thenThrows(HoldNotOpenError);
  });

  it('reports the depletion a capture causes, after the hold is freed', () => {
    given([
      { ...opened(), overdraftLimit: 5n * CREDIT },
      toppedUp(CREDIT, CREDIT, 'starting'),
      held('h-1', 5n * CREDIT, { balanceAfter: CREDIT, heldAfter: 5n * CREDIT }),
    ])
      .when(captureHold('h-1'))
      .then([
        chargedByHold(5n * CREDIT, { balanceAfter: -4n * CREDIT, heldAfter: 5n * CREDIT }),
        captured('h-1', 5n * CREDIT, 0n, { balanceAfter: -4n * CREDIT, heldAfter: 0n }),
        depleted(-4n * CREDIT),
      ]);
  });
});

describe('decide: releasing and expiring a hold', () => {
  const freed = { balanceAfter: 10n * CREDIT, heldAfter: 0n };

  it('release frees all of it and charges nothing', () => {
    const state = given(holding).when(releaseHold('h-1', 'cancelled')).then([released('h-1', 4n * CREDIT, freed, { reason: 'cancelled' })]);
    expect(open(state)).toMatchObject({ balance: 10n * CREDIT, held: 0n, holds: {} });
  });

  it('release is refused on a hold that is no longer open', () => {
    given([...holding, expired('h-1', 4n * CREDIT, freed)]).when(releaseHold('h-1')).thenThrows(HoldNotOpenError);
  });

  // As a capture is: past its expiresAt a hold is expired for every command, so the ledger
  // records its HoldExpired, not a client's release, whether or not the expiry worker came yet.
  it('release is refused at and after expiresAt, even before the HoldExpired is written, naming the expiry', () => {
    given(holding).when(releaseHold('h-1', null, EXPIRES)).thenThrows(HoldNotOpenError);
    expect(() => decide(releaseHold('h-1', null, '2026-03-01T14:00:00.000Z'), foldBalance(holding))).toThrow(`hold h-1 expired at ${EXPIRES}`);
    given(holding)
      .when(releaseHold('h-1', null, '2026-03-01T12:59:59.999Z'))
      .then([{ ...released('h-1', 4n * CREDIT, freed), occurredAt: '2026-03-01T12:59:59.999Z' }]);
  });

  it('expiry frees a hold at or after its expiresAt', () => {
    const later = '2026-03-01T13:00:01.000Z';
    given(holding).when(expireHold('h-1')).then([expired('h-1', 4n * CREDIT, freed)]);
    given(holding).when(expireHold('h-1', later)).then([expired('h-1', 4n * CREDIT, freed, later)]);
  });

  it('expiry is refused before expiresAt, and on a hold no longer open: each hold expires once', () => {
    given(holding).when(expireHold('h-1', '2026-03-01T12:59:59.999Z')).thenThrows(HoldNotExpiredError);
    given([...holding, expired('h-1', 4n * CREDIT, freed)]).when(expireHold('h-1')).thenThrows(HoldNotOpenError);
  });
});

describe('decide: usage that settles a hold', () => {
  it('charges the usage as usual and frees the hold in the same decision', () => {
    const state = given(holding)
      .when(consumeUsage(3n * CREDIT, USAGE, 'h-1'))
      .then([
        { ...consumed(3n * CREDIT, 7n * CREDIT), heldAfter: 4n * CREDIT },
        released('h-1', 4n * CREDIT, { balanceAfter: 7n * CREDIT, heldAfter: 0n }, { usageEventId: USAGE.eventId }),
      ]);
    expect(open(state)).toMatchObject({ balance: 7n * CREDIT, held: 0n });
  });

  it('charges usage beyond the hold in full (usage cannot be refused after the fact)', () => {
    given(holding)
      .when(consumeUsage(12n * CREDIT, USAGE, 'h-1'))
      .then([
        { ...consumed(12n * CREDIT, -2n * CREDIT), heldAfter: 4n * CREDIT },
        released('h-1', 4n * CREDIT, { balanceAfter: -2n * CREDIT, heldAfter: 0n }, { usageEventId: USAGE.eventId }),
        depleted(-2n * CREDIT),
      ]);
  });

  it('charges usage naming a hold that is not open as if it named none', () => {
    given(funded).when(consumeUsage(CREDIT, USAGE, 'h-gone')).then([consumed(CREDIT, 9n * CREDIT)]);
  });

  it('frees the hold even when the usage costs nothing', () => {
    given(holding)
      .when(consumeUsage(0n, USAGE, 'h-1'))
      .then([released('h-1', 4n * CREDIT, { balanceAfter: 10n * CREDIT, heldAfter: 0n }, { usageEventId: USAGE.eventId })]);
  });
});

describe('decide: overdraft limit', () => {
  it('is set at open and changed by settings; negative is refused', () => {
    const state = given([]).when(openBalance({ overdraftLimit: 2n * CREDIT })).then([{ ...opened(), overdraftLimit: 2n * CREDIT }]);
    expect(open(state).overdraftLimit).toBe(2n * CREDIT);
    given([]).when(openBalance({ overdraftLimit: -1n })).thenThrows(InvalidAmountError);
    given(funded).when(changeSettings({ overdraftLimit: 3n * CREDIT })).then([settingsChanged('API credits', null, 3n * CREDIT)]);
    given(funded).when(changeSettings({ overdraftLimit: 0n })).then([]);
    given(funded).when(changeSettings({ overdraftLimit: -1n })).thenThrows(InvalidAmountError);
  });

  it('fitsAvailable is the one rule holds and entitlement checks share', () => {
    const state = { balance: 10n, held: 4n, overdraftLimit: 2n };
    expect(fitsAvailable(state, 8n)).toBe(true);
    expect(fitsAvailable(state, 9n)).toBe(false);
  });

  it('top-ups and consumption record the held amount beside the balance', () => {
    given(holding)
      .when(consumeUsage(CREDIT))
      .then([{ ...consumed(CREDIT, 9n * CREDIT), heldAfter: 4n * CREDIT }]);
  });
});
