import { selectMigrationFiles } from './listMigrations';

describe('selectMigrationFiles', () => {
  it('orders migrations by number and ignores other files', () => {
    expect(selectMigrationFiles(['010_later.sql', 'README.md', '002_catalog.sql', '001_event_store.sql', 'notes.txt'])).toEqual([
      { name: '001_event_store', version: 1, file: '001_event_store.sql' },
      { name: '002_catalog', version: 2, file: '002_catalog.sql' },
      { name: '010_later', version: 10, file: '010_later.sql' },
    ]);
  });

  it('ignores files that do not follow NNN_name.sql', () => {
    expect(selectMigrationFiles(['1_short.sql', '001-dash.sql', '001_Upper.sql', '001_x.sql.bak'])).toEqual([]);
  });

  it('refuses two migrations with one number, whose order would be arbitrary', () => {
    expect(() => selectMigrationFiles(['002_a.sql', '002_b.sql'])).toThrow(/two migrations share number 2/);
  });
});
