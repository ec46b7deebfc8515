/**
 * Test support shared by test/, bench/ and scripts/: one way each to wait for a condition (`eventually`), call the
 * JSON API (`post`, `get`), pick a loopback port (`freePort`), and launch edgecd members (any runtime), etcd and
 * Deno. Import from here rather than from another test folder's helpers.
 */
export * from './deno.js'
export * from './edgecd.js'
export * from './etcd.js'
export * from './eventually.js'
export * from './http.js'
export * from './ports.js'
export * from './process.js'
