#!/usr/bin/env node
// The `edgecd` command. The CLI is TypeScript (src/cli/main.ts), so this registers tsx's ESM loader in-process and
// imports it: one process, no build step, and the same code `npm start` runs.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../src/cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
