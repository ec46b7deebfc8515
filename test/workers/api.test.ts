/**
 * The API suites that run against a Node member (test/server/api.test.ts and watch.test.ts), run here against a
 * workerd member: one suite, several runtimes, as jose does it. EDGECD_TEST_RUNTIME=workerd makes their launcher
 * (startTestMember) start the member as a Durable Object in a local workerd through Miniflare, the way
 * `edgecd serve --runtime workerd` does; the few tests about the HTTP server itself that workerd cannot match are
 * skipped there with the reason (notOnWorkerd, listed in docs/workers.md).
 */
process.env.EDGECD_TEST_RUNTIME = 'workerd'
process.env.CLOUDFLARE_CF_FETCH_ENABLED = 'false'
await import('../server/api.test.js')
await import('../server/watch.test.js')
