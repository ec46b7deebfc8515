/**
 * One way to launch Debian's Chromium for the browser tests and benches (playwright-core): the binary's path
 * (`CHROMIUM_PATH` overrides /usr/bin/chromium), the flags RUNTIMES.md §4 gives for this machine plus a resolver rule
 * that keeps Chromium from looking up any host but our loopback servers, and the skip reason where it is missing.
 */
import { existsSync } from 'node:fs'

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
]

/** false when Chromium is installed, else why a browser test is skipped (node:test's `skip` option). */
export const chromiumSkip: false | string = existsSync(chromiumPath)
  ? false
  : `no Chromium at ${chromiumPath}: run scripts/setup-chromium.sh (apt-get install chromium) to run this test`
