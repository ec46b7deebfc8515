// Finds test files for the runners (scripts/run-tests.mjs, scripts/test-deno.mjs). Node 20's `--test` does not
// expand globs (`node --test "test/**/*.test.ts"` answers "Could not find ..."; glob support came in Node 21), and
// `fs.glob` is Node 22+, so this walks the tree itself.
import { readdirSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'

/** Directory names never searched for tests. */
const skipDirs = new Set(['node_modules', 'testdata', 'fixtures'])

/**
 * Returns the test files under each of `paths` (a file is taken as given, a directory is searched recursively),
 * relative to `root`, sorted, without duplicates, with forward slashes. `match` decides which file names count.
 * `recursive: false` only looks at the files directly inside each directory.
 */
export function findTests(root, paths, { match = (name) => name.endsWith('.test.ts'), recursive = true } = {}) {
  const found = new Set()
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue
      const full = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (recursive && !skipDirs.has(entry.name)) walk(full)
      } else if (entry.isFile() && match(entry.name)) {
        found.add(full)
      }
    }
  }
  for (const p of paths) {
    const full = join(root, p)
    let st
    try {
      st = statSync(full)
    } catch {
      throw new Error(`no such test file or directory: ${p}`)
    }
    if (st.isDirectory()) walk(full)
    else found.add(full)
  }
  return [...found].map((f) => relative(root, f).split(sep).join('/')).sort()
}
