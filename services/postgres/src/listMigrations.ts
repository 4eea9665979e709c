import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

export interface Migration {
  /** The file name without `.sql`, e.g. `001_event_store`: the key recorded in schema_migrations. */
  readonly name: string;
  readonly version: number;
  readonly sql: string;
  /** sha256 of the file, so an edited, already-applied migration can be noticed. */
  readonly checksum: string;
}

const MIGRATION_FILE = /^(\d{3})_([a-z0-9_]+)\.sql$/;

/**
 * `infra/postgres/migrations` from this package: `src` (jest) and `dist` (built) sit at the
 * same depth, so one relative path serves both.
 */
export const DEFAULT_MIGRATIONS_DIR = path.resolve(__dirname, '../../../infra/postgres/migrations');

/**
 * Picks the migration files among a folder's entries and orders them by number. Other files
 * (a README) are ignored; two files with one number are an error, since their order would be
 * arbitrary.
 */
export function selectMigrationFiles(fileNames: readonly string[]): { name: string; version: number; file: string }[] {
  const selected = fileNames.flatMap((file) => {
    const match = MIGRATION_FILE.exec(file);
    return match ? [{ name: file.slice(0, -'.sql'.length), version: Number(match[1]), file }] : [];
  });
  selected.sort((a, b) => a.version - b.version);
  for (let i = 1; i < selected.length; i += 1) {
    if (selected[i]!.version === selected[i - 1]!.version) {
      throw new Error(`two migrations share number ${selected[i]!.version}: ${selected[i - 1]!.file}, ${selected[i]!.file}`);
    }
  }
  return selected;
}

export async function listMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  const files = selectMigrationFiles(await readdir(dir));
  return Promise.all(
    files.map(async ({ name, version, file }) => {
      const sql = await readFile(path.join(dir, file), 'utf8');
      return { name, version, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}
