// The lab page (main thread): starts the worker, and routes each of its answers to the module
// that shows it. Nothing here blocks — every computation is the worker's (worker.js), and
// every rule, text and drawing comes from conlab-lab through it.
//
// Modules: protocol (the worker and its messages), catalogue (picker and cards), form (the
// run's settings, Run, Cancel), results (a finished run), timeline (zoom), debugger (step
// mode), history (stored results, import and comparison), dom (helpers).

import { fillCatalogue } from './catalogue.js';
import { setUpDebugger, openDebuggerLink, showSimSearch, showSimState } from './debugger.js';
import { setUpLoopStepper, showLoopTrace } from './loop_stepper.js';
import { $, el, setStatus } from './dom.js';
import { fillForm, poolReady, poolThreads, setRunning, setUpForm, showExperiment, showProblem, threadsReady } from './form.js';
import { compareWithImported, openLatest, remember, setUpImport, showHistory, showImported, showStoredError, storedHistory } from './history.js';
import { send, startWorker } from './protocol.js';
import { showComparison, showResult } from './results.js';
import { setUpFlame } from './flame.js';
import { setUpTimelineZoom, showWindow } from './timeline.js';

/**
 * @typedef {import('./protocol.js').Handlers} Handlers
 * @typedef {import('./protocol.js').Startup} Startup
 * @typedef {{ timer_resolution_ns: number, version: string, profile: string }} Environment
 */

// Long tasks (> 50 ms) on this, the main thread: the lab promises none while a run goes on
// (the browser e2e suite reads this list).
/** @type {{ start: number, duration: number }[]} */
const longTasks = [];
/** @type {any} */ (window).conlabLongTasks = longTasks;
// The worker's health between runs (wasm memory, workers started and ended), for the browser
// soak: asked here, answered into `document.body.dataset.health`.
/** @type {any} */ (window).conlabAskHealth = () => send({ type: 'health' });
try {
  new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => ({ start: e.startTime, duration: e.duration }))))
    .observe({ type: 'longtask', buffered: true });
} catch {
  // Not every browser reports long tasks (Firefox does not); the lab works without.
}

// The pool is sized for the widest experiment (thread-per-task) as well as the cores; surplus
// workers sleep, and a run uses exactly the threads it asks for. One more worker than cores: a
// FIFO pool of k workers also occupies its caller's thread. Without isolation there is none.
const POOL_THREADS = self.crossOriginIsolated === true ? Math.max((navigator.hardwareConcurrency || 1) + 1, 8) : 0;

/** When the page became usable, and when Run did (ms since navigation). */
const startup = { interactiveMs: 0, readyMs: 0 };

/** Sets the status line to ready — or, while the pool starts, loading — saying what is shown. @param {string} [showing] */
function sayReady(showing) {
  const threads = poolThreads();
  if (threadsReady()) {
    setStatus('ready', `ready — ${showing ?? (threads ? `${threads} worker threads` : 'single thread (see the banner)')}`);
  } else {
    const starting = threads ? `starting ${threads} worker threads…` : 'starting the worker…';
    setStatus('loading', showing ? `${showing}; ${starting}` : starting);
  }
}

/** @type {Handlers} */
const handlers = {
  // wasm runs: the catalogue, forms, stored results and the debugging lab work; Run waits for
  // the thread pool ('ready'). The forms assume the pool the worker is starting.
  loaded(data) {
    if (startup.interactiveMs) return; // a worker restarted after a cancel: the page is set up
    startup.interactiveMs = Math.round(performance.now());
    fillCatalogue(JSON.parse(data.catalogue), showExperiment);
    setUpForm(data.threads);
    showExperiment(/** @type {HTMLSelectElement} */ ($('experiment-select')).value);
    setUpDebugger(JSON.parse(data.scenarios));
    setUpLoopStepper(JSON.parse(data.loopScenarios));
    const link = JSON.parse(data.link);
    if (link) fillForm(link, 'This link');
    const fromLink = !!link || openDebuggerLink(location.search);
    showHistory();
    // Newcomers see the catalogue; a link or a returning visit goes straight to the lab.
    /** @type {HTMLDetailsElement} */ ($('catalogue')).open = !fromLink && !storedHistory().length;
    if (!fromLink) openLatest();
    sayReady();
    setRunning(false);
  },
  ready(data) {
    const firstTime = !startup.readyMs;
    poolReady(data.poolThreads);
    if (firstTime) {
      startup.readyMs = Math.round(performance.now());
      showEnvironment(JSON.parse(data.environment), data.startup, data.poolError);
    }
    sayReady();
    setRunning(false);
  },
  processes(data) {
    // Process pools (ipc-cost, process-overhead, the `process` variants) run on these.
    document.body.dataset.processWorkers = String(data.count);
    const value = data.error
      ? `unavailable: ${data.error}`
      : `${data.count} Web Workers, each its own wasm instance (loaded in ${Math.round(data.startMs)} ms)`;
    $('env-list').append(el('dt', { text: 'process workers' }), el('dd', { text: value }));
  },
  fatal(data) {
    setStatus('error', `the lab could not start: ${data.message}`);
  },
  waiting(data) {
    $('progress-text').textContent = `waiting for ${data.what}…`;
  },
  imported(data) {
    showImported(data);
  },
  progress(data) {
    const progress = JSON.parse(data.progress);
    const bar = /** @type {HTMLProgressElement} */ ($('progress'));
    bar.max = Math.max(progress.total, 1);
    bar.value = progress.done;
    $('progress-text').textContent = progress.variant
      ? `${progress.variant} · ${progress.threads} thread${progress.threads === 1 ? '' : 's'}${progress.warmup ? ' (warm-up)' : ''} — run ${progress.done + 1} of ${progress.total}`
      : 'summarising…';
  },
  result({ finished, exports, stored }) {
    setRunning(false);
    // A stored result was checked by conlab-lab before it got here: its settings fill the form.
    if (stored && finished.form) fillForm(finished.form, 'The stored result');
    showResult(finished, exports);
    if (stored) {
      sayReady(`showing a stored result of ${finished.result.experiment}`);
    } else {
      // Storing it is a task of its own (a cold localStorage takes ~20 ms): the result shows first.
      setTimeout(() => remember(finished.result));
      setStatus('done', finished.result.all_checks_passed ? 'done — all correctness checks passed' : 'done — a correctness check FAILED');
    }
    compareWithImported();
  },
  checked(data) {
    showProblem(data.problem);
  },
  timeline(data) {
    showWindow(data);
  },
  'sim-state'(data) {
    showSimState(data);
  },
  'sim-search'(data) {
    showSimSearch(data);
  },
  'loop-trace'(data) {
    showLoopTrace(data);
  },
  health({ wasmBytes, workersStarted, workersEnded, workersKilled }) {
    document.body.dataset.health = JSON.stringify({ wasmBytes, workersStarted, workersEnded, workersKilled });
  },
  comparison(data) {
    showComparison(data);
  },
  error(data) {
    if (data.stored) {
      showStoredError(data.message);
      if (threadsReady()) sayReady();
      return;
    }
    setRunning(false);
    $('form-error').textContent = data.message;
    if (data.invalid) sayReady(); // the settings did not fit: nothing ran
    else if (data.message === 'cancelled') setStatus('cancelled', 'cancelled');
    else setStatus('error', 'the run failed');
  },
};

/**
 * The environment panel, and the banner when the page runs single-threaded.
 * @param {Environment} env
 * @param {Startup} times
 * @param {string | null} poolError
 */
function showEnvironment(env, times, poolError) {
  const rows = [
    ['cores (hardwareConcurrency)', String(navigator.hardwareConcurrency || 'unknown')],
    ['cross-origin isolated', self.crossOriginIsolated ? 'yes' : 'no'],
    ['isolation by', isolation],
    ['wasm threads', poolThreads() ? `on — pool of ${poolThreads()} workers` : 'off'],
    ['timer resolution', `${(env.timer_resolution_ns / 1000).toFixed(1)} µs`],
    ['build', `conlab ${env.version} (${env.profile})`],
    ['browser', navigator.userAgent],
    ['page ready in', `${startup.interactiveMs} ms (the worker started and its wasm in ${Math.round(times.wasmMs)} ms: catalogue, forms, debugging lab)`],
    ['threads ready in', `${startup.readyMs} ms (the pool of worker threads in ${Math.round(times.poolMs)} ms: Run)`],
  ];
  for (const [term, value] of rows) $('env-list').append(el('dt', { text: term }), el('dd', { text: value }));
  if (poolError) {
    const banner = $('isolation-banner');
    banner.hidden = false;
    banner.replaceChildren(
      el('strong', { text: 'Running on a single thread. ' }),
      `Wasm threads need SharedArrayBuffer, which browsers grant only to cross-origin isolated pages (${poolError}). ` +
        'Serve the lab with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp — ' +
        '`conlab serve` and `cargo xtask lab` do, and the static site `cargo xtask dist` builds gets them from its service worker ' +
        'where the browser allows one. Sequential variants still run here.',
    );
  }
}

/**
 * How this page is cross-origin isolated: by the host's headers, by the lab's service worker
 * (a static site from `cargo xtask dist` on a host that cannot send them: sw.js marks the
 * responses it added them to), or not at all.
 * @returns {Promise<string>}
 */
async function isolationSource() {
  if (!self.crossOriginIsolated) return 'none: no COOP/COEP headers reached this page';
  if (!navigator.serviceWorker?.controller) return 'headers from the server';
  try {
    const page = await fetch(location.href);
    if (page.headers.get('X-Conlab-Isolation') === 'service-worker') return "the lab's service worker (the host sends no headers)";
  } catch {
    // Unreachable page: its headers cannot be asked; the worker passes real ones unchanged.
  }
  return 'headers from the server';
}

/**
 * On a static site, isolate.js may be about to reload the page once to get isolated: start
 * nothing until it has settled (at most 20 s — an unanswered service worker must not keep the
 * lab from starting).
 */
async function isolationSettled() {
  /** @type {Promise<unknown> | undefined} */
  const pending = /** @type {any} */ (window).conlabIsolation;
  if (pending) await Promise.race([pending, new Promise((resolve) => setTimeout(resolve, 20_000))]);
}

setUpImport();
setUpTimelineZoom();
setUpFlame();
await isolationSettled();
const isolation = await isolationSource();
startWorker(handlers, POOL_THREADS);
