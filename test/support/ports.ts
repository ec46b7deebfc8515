import { createServer } from 'node:net'

/** Ports others use on this machine (etcd's defaults, a shared dev member); never handed out here. */
const reservedPorts = new Set([2379, 2380, 23790])

/** A free TCP port on 127.0.0.1 chosen by the OS (outside the reserved ones). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer()
      s.once('error', reject)
      s.listen(0, '127.0.0.1', () => {
        const a = s.address()
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0))
      })
    })
    if (port !== 0 && !reservedPorts.has(port)) return port
  }
  throw new Error('no free port')
}
