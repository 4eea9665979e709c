/**
 * The signals that stop Tally's processes, the main job and the `tally` commands alike: Ctrl-C,
 * SIGTERM (a supervisor), and SIGHUP (the SSH session or terminal went away, or `kill -HUP`).
 * Node's default for each is to die on the spot, leaving the work in hand unfinished. SIGHUP
 * stops rather than being ignored: Tally has no configuration to reload (it is read once, at
 * start), and a process whose terminal is gone should end cleanly rather than run on unseen.
 */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs `stop` once for each of STOP_SIGNALS (so a stop already under way must ignore a second
 * call), with the signal's name. Returns the uninstaller; after the first signal a second one of
 * the same kind takes its default course (quits at once).
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => void): () => void {
  for (const signal of STOP_SIGNALS) process.once(signal, stop);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, stop);
  };
}
