// The page's side of the lab's service worker (sw.js), on a static site built by `cargo xtask
// dist`; a classic script at the top of <head>, so it runs before the lab starts.
//
// - Isolation: a page the host served without COOP/COEP headers is not cross-origin isolated,
//   so it has no wasm threads. Once sw.js controls the page, its responses carry the headers:
//   this script reloads the page once to get them. One reload at most (remembered in
//   sessionStorage): if the page is still not isolated after it, the browser refused, and the
//   lab runs single-threaded with its banner, as it does on any host without the headers.
//   A page that is isolated already (the host sent the headers) never reloads.
// - While that reload is pending the lab waits (`window.conlabIsolation`, a promise that
//   resolves only when no reload is coming), so the first visit does not start its workers
//   twice.
// - Updates: when a new build's sw.js has installed and waits, a notice says a new version is
//   ready; its button lets the new worker take over and reloads into the new build.

(() => {
  const RELOADED = 'conlab-isolation-reload';
  const isolated = self.crossOriginIsolated === true;
  const supported = 'serviceWorker' in navigator && window.isSecureContext;
  /** @type {() => void} */
  let settle = () => {};
  /** @type {any} */ (window).conlabIsolation = new Promise((resolve) => {
    settle = () => resolve(undefined);
  });
  if (isolated) sessionStorage.removeItem(RELOADED);
  const mayReload = supported && !isolated && sessionStorage.getItem(RELOADED) === null;
  if (!mayReload) settle();
  if (!supported) return;

  function reloadOnce() {
    if (!mayReload) return;
    sessionStorage.setItem(RELOADED, '1');
    location.reload();
  }

  /** @param {ServiceWorker} waiting */
  function announce(waiting) {
    const show = () => {
      if (document.getElementById('update-notice')) return;
      const notice = document.createElement('p');
      notice.id = 'update-notice';
      notice.className = 'banner';
      notice.setAttribute('role', 'status');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Reload';
      button.addEventListener('click', () => {
        navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
        waiting.postMessage({ type: 'skip-waiting' });
      });
      notice.append('A new version of the lab is ready. ', button);
      document.body.prepend(notice);
    };
    if (document.body) show();
    else document.addEventListener('DOMContentLoaded', show, { once: true });
  }

  /** @param {ServiceWorkerRegistration} registration */
  function watchForUpdates(registration) {
    const offer = () => {
      if (registration.waiting && navigator.serviceWorker.controller) announce(registration.waiting);
    };
    /** @param {ServiceWorker | null} worker */
    const track = (worker) => {
      worker?.addEventListener('statechange', () => {
        if (worker.state === 'installed') offer();
      });
    };
    offer();
    track(registration.installing);
    registration.addEventListener('updatefound', () => track(registration.installing));
  }

  navigator.serviceWorker
    .register('./sw.js')
    .then((registration) => {
      watchForUpdates(registration);
      if (isolated) return;
      // Controlled already (a load that bypassed it, or one it could not isolate), or active
      // but not in control (a forced reload): one reload gets its headers, or shows it cannot.
      if (navigator.serviceWorker.controller || registration.active) reloadOnce();
      else navigator.serviceWorker.addEventListener('controllerchange', reloadOnce, { once: true });
      // An install that fails (a file missing from the host) never takes control: go on.
      registration.installing?.addEventListener('statechange', (event) => {
        if (/** @type {ServiceWorker} */ (event.target).state === 'redundant') settle();
      });
    })
    .catch((error) => {
      console.warn(`conlab: the service worker did not register (${error}); the lab runs without it`);
      settle();
    });
})();
