import { rebaseEdits } from './rebaseEdits';

/** A form's fields as read, as typed since, and as stored now after someone else's change (412). */
const FIELDS = ['name', 'limit'] as const;
const read = { name: 'Seats', limit: '10' };

describe("a form's edits put on the version stored now, after someone else's change (412)", () => {
  it('changes nothing when neither side changed anything', () => {
    expect(rebaseEdits(FIELDS, read, { ...read }, { ...read })).toEqual({ values: read, mine: [], theirs: [], conflicts: [] });
  });

  it("keeps the other's change to a field the operator left, and the operator's typing: no conflict", () => {
    expect(rebaseEdits(FIELDS, read, { ...read, name: 'Mine' }, { ...read, limit: '5' })).toEqual({
      values: { name: 'Mine', limit: '5' },
      mine: ['name'],
      theirs: ['limit'],
      conflicts: [],
    });
  });

  it('keeps the typing where both changed a field to different values, and names it a conflict', () => {
    expect(rebaseEdits(FIELDS, read, { ...read, name: 'Mine' }, { ...read, name: 'Theirs' })).toEqual({
      values: { name: 'Mine', limit: '10' },
      mine: ['name'],
      theirs: ['name'],
      conflicts: ['name'],
    });
  });

  it('names no conflict where both set a field to the same value', () => {
    expect(rebaseEdits(FIELDS, read, { name: 'Same', limit: '' }, { name: 'Same', limit: '10' })).toEqual({
      values: { name: 'Same', limit: '' },
      mine: ['name', 'limit'],
      theirs: ['name'],
      conflicts: [],
    });
  });

  it('keeps what is no field as stored now, and compares with the equality given', () => {
    const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    const base = { id: 'a', rules: [1, 2] };
    const rebased = rebaseEdits(['rules'] as const, base, { id: 'typed', rules: [1, 2] }, { id: 'now', rules: [1, 2] }, sameJson);
    expect(rebased).toEqual({ values: { id: 'now', rules: [1, 2] }, mine: [], theirs: [], conflicts: [] });
  });
});
