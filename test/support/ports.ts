import { randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** Ports others use on this machine (etcd's defaults, a shared dev member); never handed out here. */
const reservedPorts = new Set([2379, 2380, 23790, 23791])

/** Ports this process handed out already: not handed out twice (a member restarted on its port may be down). */
const handedOut = new Set<number>()

/**
 * The lowest port of the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768 by default). Below
 * it, a free port stays free until someone binds it by number: the kernel never gives it to an outgoing connection
 * or a bind to port 0. A port from the ephemeral range, free when probed, could be taken by any of the many
 * connections a test run opens before the member binds it (or while a member restarts on it).
 */
function ephemeralLow(): number | undefined {
  // Deno's member tests may read only their own files (scripts/test-deno.mjs): the OS chooses there.
  if ('Deno' in globalThis) return undefined
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 12_000 ? low : undefined
  } catch {
    return undefined
  }
}
const ephemeralStart = ephemeralLow()

/** Binds `port` (0: the kernel chooses) on 127.0.0.1 and closes it; the port bound, or undefined when taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(undefined))
    s.listen(port, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => resolve(typeof a === 'object' && a ? a.port : undefined))
    })
  })
}

/**
 * A free TCP port on 127.0.0.1 (outside the reserved ones, never the same twice in a process). Where the kernel's
 * ephemeral range is known, a random port between 10,000 and its start, so that nothing but another bind by number
 * can take it before the caller binds it; otherwise one the OS chooses.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const want = ephemeralStart !== undefined ? randomInt(10_000, ephemeralStart) : 0
    if (reservedPorts.has(want) || handedOut.has(want)) continue
    const port = await probe(want)
    if (port === undefined || reservedPorts.has(port) || handedOut.has(port)) continue
    handedOut.add(port)
    return port
  }
  throw new Error('no free port')
}
