// Bounded waits for tests and the harness: poll a condition until it holds or a deadline passes, then fail with
// the last thing observed. Never a fixed sleep.

export interface EventuallyOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Rejections racing the wait, e.g. a child process that exits. */
  abort?: Promise<never>;
}

/**
 * Calls `probe` until it returns a value other than `undefined`/`false`, and returns that value. `probe` may
 * throw: the error is remembered and shown if the deadline passes.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 200, abort }: EventuallyOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  // Registered before any race on `abort`, so it has run by the time a race rejects with abort's error.
  let aborted: { err: unknown } | undefined;
  abort?.catch((err: unknown) => (aborted = { err }));
  for (;;) {
    try {
      const value = await (abort ? Promise.race([probe(), abort]) : probe());
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (err) {
      if (aborted) throw aborted.err;
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last observed: ${String(last)}`);
    }
    const pause = new Promise((r) => setTimeout(r, intervalMs));
    await (abort ? Promise.race([pause, abort]) : pause);
  }
}
