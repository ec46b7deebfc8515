#!/usr/bin/env node
// Completes package-lock.json with the platform-specific optional packages that the registry mirror this project is
// built with does not carry (e.g. @biomejs/cli-darwin-arm64, @deno/win32-x64: 404 there). npm leaves them out of the
// lock when it cannot fetch them, and then `npm ci` refuses the lock ("Missing: @biomejs/cli-android-arm64@ from lock
// file"). The entries added here carry version, os, cpu and libc only; npm skips them on any other platform without
// fetching, and a full registry fills in `resolved`/`integrity` on the next `npm install` there.
//
//   node scripts/lock-optional.mjs          add the missing entries (after any `npm install` that changed the lock)
//   node scripts/lock-optional.mjs --check  exit 1 if any are missing
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const lockPath = join(dirname(fileURLToPath(import.meta.url)), '..', 'package-lock.json')
const check = process.argv.includes('--check')
const text = readFileSync(lockPath, 'utf8')
const lock = JSON.parse(text)
const packages = lock.packages

const oses = ['aix', 'android', 'darwin', 'freebsd', 'linux', 'netbsd', 'openbsd', 'openharmony', 'sunos', 'win32']
const cpus = ['arm', 'arm64', 'ia32', 'loong64', 'mips64el', 'ppc64', 'riscv64', 's390x', 'x64']

/** os, cpu and libc from a platform package name such as cli-linux-x64-musl or linux-arm64-glibc. */
function platformOf(name) {
  const parts = name.split('/').pop().split('-')
  const os = parts.find((p) => oses.includes(p))
  const cpu = parts.find((p) => cpus.includes(p))
  const libc = parts.find((p) => p === 'musl' || p === 'glibc')
  if (!os || !cpu) return undefined
  return { os: [os], cpu: [cpu], ...(libc ? { libc: [libc] } : {}) }
}

const added = []
for (const [path, pkg] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    // Hoisted next to the parent's own node_modules, as npm places them.
    const base = path === '' ? '' : `${path.slice(0, path.lastIndexOf('node_modules/'))}`
    const where = `${base}node_modules/${dep}`
    if (packages[where] || packages[`${path}/node_modules/${dep}`]) continue
    const platform = platformOf(dep)
    if (!platform || !/^\d+\.\d+\.\d+/.test(version)) {
      console.error(
        `lock-optional: ${dep}@${version} (needed by ${path || 'the root'}) is missing and not a platform package`,
      )
      process.exit(2)
    }
    packages[where] = { version, ...platform, ...(pkg.dev ? { dev: true } : {}), optional: true }
    added.push(`${dep}@${version}`)
  }
}

if (check) {
  if (added.length > 0) {
    console.error(`lock-optional: package-lock.json lacks ${added.join(', ')}; run node scripts/lock-optional.mjs`)
    process.exit(1)
  }
  process.exit(0)
}
if (added.length === 0) {
  console.log('lock-optional: nothing missing')
} else {
  lock.packages = Object.fromEntries(
    Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
  )
  writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`)
  console.log(`lock-optional: added ${added.join(', ')}`)
}
