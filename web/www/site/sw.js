// The lab's service worker, for static hosts (`cargo xtask dist` writes it into the site with
// the build's version and file list). Two jobs:
//
// 1. Cross-origin isolation where the host cannot send headers: every response it hands the
//    page carries Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy:
//    require-corp, which is what makes SharedArrayBuffer — and the wasm worker threads —
//    available. A response that already has them (a host that sends them) passes unchanged;
//    one it changed is marked `X-Conlab-Isolation: service-worker`, so the page can say how it
//    got isolated.
// 2. Offline: installing caches every file of the build (cache `conlab-VERSION`); the lab is
//    then served from the cache, so it opens and runs without a network. A new build has a new
//    version, hence a new sw.js: the browser installs it beside the old one, it caches the new
//    files and waits; the page says a new version is ready and, when asked, this worker steps
//    aside for it and the old cache is deleted.
/// <reference lib="webworker" />

const VERSION = 'dev';
/** Every file of the build, relative to this worker (the site's root). @type {string[]} */
const FILES = [];
const CACHE = `conlab-${VERSION}`;

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

sw.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(FILES.map((file) => new Request(file, { cache: 'reload' })));
      // The first install has no page to disturb: take over at once. An update waits for the
      // page's word (`skip-waiting`), so a running experiment is never cut short.
      if (!sw.registration.active) await sw.skipWaiting();
    })(),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const stale = (await caches.keys()).filter((name) => name.startsWith('conlab-') && name !== CACHE);
      await Promise.all(stale.map((name) => caches.delete(name)));
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') void sw.skipWaiting();
});

sw.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== sw.location.origin) return;
  event.respondWith(respond(request));
});

/** The cached file (any query string ignored), else the network's answer, isolated. @param {Request} request */
async function respond(request) {
  const cached = await caches.match(request, { cacheName: CACHE, ignoreSearch: true });
  return isolated(cached ?? (await fetch(request)));
}

/** `response` with the isolation headers, unless it has them. @param {Response} response */
function isolated(response) {
  const headers = response.headers;
  const has = headers.get('Cross-Origin-Opener-Policy') === 'same-origin' && headers.get('Cross-Origin-Embedder-Policy') === 'require-corp';
  if (has || response.type === 'opaque' || response.status === 0) return response;
  const added = new Headers(headers);
  added.set('Cross-Origin-Opener-Policy', 'same-origin');
  added.set('Cross-Origin-Embedder-Policy', 'require-corp');
  added.set('Cross-Origin-Resource-Policy', 'same-origin');
  added.set('X-Conlab-Isolation', 'service-worker');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers: added });
}
