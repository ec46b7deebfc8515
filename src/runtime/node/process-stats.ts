/** process_* figures for /metrics on Node (what the Go client's process collector reports, where Node knows it). */
import { readdirSync, readFileSync } from 'node:fs'
import type { ProcessStats } from '../../api/http/metrics.js'

export function nodeProcessStats(): () => ProcessStats {
  const startTimeSeconds = Date.now() / 1000 - process.uptime()
  let maxFds: number | undefined
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (m) maxFds = Number(m[1])
  } catch {}
  return () => {
    const cpu = process.cpuUsage()
    let openFds: number | undefined
    try {
      openFds = readdirSync('/proc/self/fd').length
    } catch {}
    return {
      residentMemoryBytes: process.memoryUsage.rss(),
      heapBytes: process.memoryUsage().heapUsed,
      cpuSecondsTotal: (cpu.user + cpu.system) / 1e6,
      startTimeSeconds,
      openFds,
      maxFds,
    }
  }
}
