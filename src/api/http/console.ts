/**
 * GET /ui: the operator's console (src/console, built into src/console/assets.gen.ts by scripts/build-console.mjs),
 * served by every member from memory. /ui redirects to /ui/ so the page's relative scope is the service worker's.
 */
import type { Hono } from 'hono'
import { consoleAssets, consoleBuild } from '../../console/assets.gen.js'

export function installConsole(app: Hono<any>): void {
  app.get('/ui', (c) => c.redirect('/ui/', 301))
  app.get('/ui/index.html', (c) => c.redirect('/ui/', 301))
  for (const [path, { type, body }] of Object.entries(consoleAssets)) {
    app.get(path, (c) =>
      c.body(body, 200, {
        'Content-Type': type,
        // Revalidate each time: the service worker keeps the offline copy; a member upgrade shows at once.
        'Cache-Control': 'no-cache',
        ETag: `"${consoleBuild}"`,
        'X-Content-Type-Options': 'nosniff',
        ...(path === '/ui/sw.js' ? { 'Service-Worker-Allowed': '/ui/' } : {}),
      }),
    )
  }
}
