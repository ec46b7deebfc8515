/**
 * The console's service worker: keeps the shell (/ui/, its script and styles) so a reload works while the member is
 * away. Network first (a new build is picked up at once), the cached copy when the network fails. API calls are
 * not touched: the keys view keeps its own last-known listing (api.ts) and says it is stale.
 */
/// <reference lib="webworker" />
declare const self: ServiceWorkerGlobalScope
declare const BUILD: string

const cacheName = `edgecd-console-${BUILD}`
const shell = ['/ui/', '/ui/app.js', '/ui/app.css']
/** Kept too when the member serves it (the browser replica's module, which the keys view reads through). */
const optional = ['/ui/replica.js']

self.addEventListener('install', (e) => {
  e.waitUntil(
    caches
      .open(cacheName)
      .then((c) => Promise.all([c.addAll(shell), ...optional.map((u) => c.add(u).catch(() => {}))]))
      .then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names.filter((n) => n.startsWith('edgecd-console-') && n !== cacheName).map((n) => caches.delete(n)),
        ),
      )
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url)
  if (e.request.method !== 'GET' || url.origin !== location.origin || !url.pathname.startsWith('/ui')) return
  const key = url.pathname === '/ui' || url.pathname === '/ui/index.html' ? '/ui/' : url.pathname
  e.respondWith(
    fetch(e.request)
      .then(async (r) => {
        if (r.ok && (shell.includes(key) || optional.includes(key)))
          await (await caches.open(cacheName)).put(key, r.clone())
        return r
      })
      .catch(async () => (await caches.match(key)) ?? new Response('offline', { status: 503 })),
  )
})
