/**
 * Reads the main job's pino lines (JSON, one per line) for the one with this message, e.g. the
 * consumer's "usage consumer started": its `time` (epoch ms) says when the process reached it.
 */
export function findLogLine(lines: readonly string[], message: string): Record<string, unknown> | undefined {
  for (const line of lines) {
    if (!line.includes(`"msg":"${message}"`)) continue;
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      // Not pino's JSON (e.g. a stack trace on stderr that quotes the message): keep looking.
    }
  }
  return undefined;
}

export function logTime(lines: readonly string[], message: string): number {
  const time = findLogLine(lines, message)?.time;
  if (typeof time !== 'number') throw new Error(`Tally logged no "${message}" line with a time`);
  return time;
}
