import { balanceStreamId } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { holdIndexChanges } from './holdExpiryWorker';

let position = 0n;
function recorded(streamId: string, type: string, data: Record<string, unknown>): RecordedEvent {
  position += 1n;
  return {
    id: `e-${position}`,
    type,
    streamId,
    revision: position,
    position,
    data: { occurredAt: '2026-03-01T12:00:00.000Z', ...data } as RecordedEvent['data'],
    metadata: {},
    recordedAt: new Date(0),
  };
}

const figures = { balanceAfter: '10', heldAfter: '0' };
const held = (stream: string, holdId: string, expiresAt: string) =>
  recorded(stream, 'CreditsHeld', { holdId, credits: '1', expiresAt, reference: null, ...figures, heldAfter: '1' });

describe('holdIndexChanges', () => {
  const stream = balanceStreamId('b-1');

  it('indexes a placed hold by its expiry and drops it at its capture, release or expiry, last change per hold winning', () => {
    const changes = holdIndexChanges([
      held(stream, 'b-1:a', '2026-03-01T13:00:00.000Z'),
      held(stream, 'b-1:b', '2026-03-01T14:00:00.000Z'),
      recorded(stream, 'CreditConsumed', { credits: '1', source: 'hold', reason: null, usage: null, ...figures }),
      recorded(stream, 'HoldCaptured', { holdId: 'b-1:a', credits: '1', released: '0', ...figures }),
      held(stream, 'b-1:c', '2026-03-01T15:00:00.000Z'),
      recorded(stream, 'HoldReleased', { holdId: 'b-1:c', credits: '1', reason: null, usageEventId: null, ...figures }),
      held(stream, 'b-1:d', '2026-03-01T16:00:00.000Z'),
      recorded(stream, 'HoldExpired', { holdId: 'b-1:d', credits: '1', expiresAt: '2026-03-01T16:00:00.000Z', ...figures }),
    ]);
    expect(changes).toEqual([
      { holdId: 'b-1:a', balanceId: 'b-1', expiresAt: null },
      { holdId: 'b-1:b', balanceId: 'b-1', expiresAt: new Date('2026-03-01T14:00:00.000Z') },
      { holdId: 'b-1:c', balanceId: 'b-1', expiresAt: null },
      { holdId: 'b-1:d', balanceId: 'b-1', expiresAt: null },
    ]);
  });

  it('ignores every other event and every other stream', () => {
    expect(
      holdIndexChanges([
        recorded(stream, 'CreditToppedUp', { credits: '1', source: 'manual', reason: null, purchase: null, grant: null, ...figures }),
        recorded('subscription-s-1', 'CreditsHeld', { holdId: 'x' }),
      ]),
    ).toEqual([]);
  });
});
