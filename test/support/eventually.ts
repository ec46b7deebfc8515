/** Thrown from an `eventually` check to stop waiting at once (e.g. the process it waits for has exited). */
export class GiveUp extends Error {}

/**
 * Polls `check` until it returns a value other than undefined, and returns that value; fails after `ms` with `what`
 * and the last error `check` threw (errors are retried: a member that is still starting refuses connections). A
 * `GiveUp` thrown by `check` fails at once.
 *
 * `ms` bounds a wait for something that happens; it is no measure of how fast it happens (a test that bounds time
 * asserts it separately). The default is generous: it costs nothing when the condition holds soon, and a loaded CI
 * machine can stretch a 100 ms wait to seconds.
 */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
  what = 'condition',
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) {
      if (err instanceof GiveUp) throw err
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
