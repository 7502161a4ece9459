// The experiment worker: owns the wasm instance and the rayon pool; runs experiments so the
// page's main thread never blocks. Protocol (all payloads JSON strings from conlab-lab; the
// page's side, with every message typed, is app/protocol.js):
//   page → worker  {type: 'init', threads, link}      worker → page {type: 'loaded', …, link} once wasm runs (the page
//                                                                    is usable: catalogue, forms, the debugging lab;
//                                                                    `link` is the page's query checked for the form,
//                                                                    or null), then {type: 'ready', …} once the thread
//                                                                    pool runs | {type: 'fatal', message}
//   page → worker  {type: 'run', form}                 worker → page {type: 'progress', progress}…, then
//                                                                    {type: 'result', finished, exports}
//                                                                    | {type: 'error', message, invalid?}
//                                                 (`form`: the form's fields as text, named as in a link; `invalid`:
//                                                   a setting did not fit, nothing ran)
//                                                 worker → page {type: 'processes', count, startMs, error} once the
//                                                   process workers (process-worker.js) have loaded, after 'ready';
//                                                   a run asked for before that waits for them: {type: 'waiting', what}
//   page → worker  {type: 'check', form}               worker → page {type: 'checked', problem} ('' when it fits)
//   page → worker  {type: 'render', result}           worker → page {type: 'result', finished, exports, stored: true}
//                                                                    | {type: 'error', message, stored: true}
//   page → worker  {type: 'import', name, text}       worker → page {type: 'imported', name, text, experiment, form, platform, opens}
//                                                                    | {type: 'imported', name, error}
//   page → worker  {type: 'compare', here, there}     worker → page {type: 'comparison', table} | {type: 'comparison', error}
//   page → worker  {type: 'timeline', from, to}       worker → page {type: 'timeline', svg, from, to} | {type: 'error', message}
//   page → worker  {type: 'sim-state', scenario, schedule}   worker → page {type: 'sim-state', state} | {type: 'sim-state', error}
//   page → worker  {type: 'sim-search', scenario, strategy, seed, runs, depth, bound}
//                                                     worker → page {type: 'sim-search', found} | {type: 'sim-search', error}
//   page → worker  {type: 'loop-trace', scenario}   worker → page {type: 'loop-trace', trace} | {type: 'loop-trace', error}
//                                                 (the event loop's step mode: every step of a scenario, with the
//                                                   ready queue, timers and tasks after it)
//   page → worker  {type: 'health'}                   worker → page {type: 'health', wasmBytes, workersStarted, workersEnded,
//                                                                    workersKilled}
//                                                 (between runs: the wasm memory's size and the workers this one
//                                                   started and ended — the pool's, the process workers, the
//                                                   spawner — which a long session must keep steady: the browser
//                                                   soak reads them; and the process workers a run killed on
//                                                   purpose, broken-pool's, whose replacements spawner.js starts)
//   ('loaded' carries the debugging lab's scenarios: `scenarios`, and the loop stepper's: `loopScenarios`)
// A result reaches the page as an object without its trace (`traced` says there was one): the
// megabytes of spans are parsed and serialised here, never on the main thread. The trace stays
// here for the timeline's zoom; the exports that hold it come as Blobs.
import init, * as lab from './conlab-web.js';

/** @type {import('./conlab-web.js').InitOutput} */
let wasm;
/** The trace of the result on the page, as JSON, for the timeline's zoom. @type {string | null} */
let lastTrace = null;
/** The most threads a form may ask for: the pool being started (1 without one). */
let formThreads = 1;
// Settles once the process workers are registered (or failed to load); null where there are none.
/** @type {Promise<void> | null} */
let processWorkers = null;
let processWorkersLoaded = false;

/** The workers this worker started and ended: the rayon pool's, the process workers, the spawner. */
const workers = { started: 0, ended: 0 };
/** @type {any} */ (self).Worker = class CountedWorker extends Worker {
  /** @param {string | URL} url @param {WorkerOptions} [options] */
  constructor(url, options) {
    super(url, options);
    workers.started += 1;
  }

  terminate() {
    workers.ended += 1;
    super.terminate();
  }

  /** Terminates a process worker a run kills on purpose (conlab-core's `WorkerProcess::kill` counts it). */
  kill() {
    super.terminate();
  }
};

/**
 * @typedef {import('./app/messages.js').FromWorker} FromWorker
 * @typedef {import('./app/messages.js').ToWorker} ToWorker
 */

/** Sends the page a message of the protocol (app/messages.js). @param {FromWorker} message */
const tell = (message) => postMessage(message);

/** An exception's message, as the page shows it. @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/**
 * Hands a finished run (JSON of web/src/messages.rs `Finished`) to the page, its trace kept here.
 * @param {string} finishedJson
 * @param {boolean} stored
 */
function deliver(finishedJson, stored) {
  const finished = JSON.parse(finishedJson);
  const { trace, ...result } = finished.result;
  lastTrace = trace ? JSON.stringify(trace) : null;
  const exports = {
    json: new Blob([JSON.stringify(finished.result, null, 2)], { type: 'application/json' }),
    chromeTrace: finished.chrome_trace ? new Blob([JSON.stringify(finished.chrome_trace)], { type: 'application/json' }) : null,
  };
  delete finished.chrome_trace;
  finished.result = result;
  finished.traced = !!trace;
  tell({ type: 'result', finished, exports, stored });
}

/**
 * @param {number} threads
 * @param {Record<string, string>} link
 */
async function start(threads, link) {
  const began = performance.now();
  formThreads = self.crossOriginIsolated ? Math.max(threads, 1) : 1;
  wasm = await init({ module_or_path: new URL('./conlab-web_bg.wasm', import.meta.url) });
  const wasmMs = performance.now() - began;
  // Everything but a run works now: the page need not wait for the pool (its workers start
  // slowly in some browsers — ~0.6 s for 8 in Firefox).
  tell({
    type: 'loaded',
    catalogue: lab.catalogue(self.crossOriginIsolated ? threads : 1),
    scenarios: lab.simScenarios(),
    loopScenarios: lab.loopScenarios(),
    environment: lab.environment(),
    threads: self.crossOriginIsolated ? threads : 0,
    link: lab.checkLink(JSON.stringify(link), formThreads),
  });
  let poolThreads = 0;
  let poolError = null;
  if (self.crossOriginIsolated) {
    try {
      await lab.initThreadPool(threads);
      lab.poolStarted(threads);
      poolThreads = threads;
    } catch (error) {
      poolError = String(error);
      formThreads = 1;
    }
  } else {
    poolError = 'this page is not cross-origin isolated, so SharedArrayBuffer and wasm threads are unavailable';
  }
  tell({
    type: 'ready',
    environment: lab.environment(),
    poolThreads,
    poolError,
    // The shared memory lets the page set the cancel flag while a run blocks this worker.
    memory: self.crossOriginIsolated ? wasm.memory : null,
    cancelAddress: lab.cancelFlagAddress(),
    // Where start-up time goes: compiling and instantiating the module, then the pool.
    startup: { wasmMs, poolMs: performance.now() - began - wasmMs },
  });
}

// Process pools' workers must be started here, up front: a worker only starts while its creator
// returns to its event loop, and a run blocks this one (see core/src/platform/process_wasm.rs).
// The spawner starts more during a run, when a pool needs them.
async function startProcessWorkers() {
  const count = Math.max(4, Math.min(navigator.hardwareConcurrency || 1, 16));
  const started = performance.now();
  const module = lab.compiledModule();
  /** @returns {Promise<Worker>} */
  const load = () => new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./process-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = ({ data }) => {
      worker.onmessage = null;
      if (data.type === 'loaded') resolve(worker);
      else reject(new Error(data.message));
    };
    worker.onerror = (event) => reject(new Error(event.message || 'process-worker.js failed to load'));
    worker.postMessage({ type: 'load', module });
  });
  try {
    const loaded = await Promise.all(Array.from({ length: count }, load));
    lab.registerProcessWorkers(loaded);
    lab.registerSpawner(new Worker(new URL('./spawner.js', import.meta.url), { type: 'module' }), module);
    tell({ type: 'processes', count, startMs: performance.now() - started, error: null });
  } catch (error) {
    tell({ type: 'processes', count: 0, startMs: 0, error: messageOf(error) });
  } finally {
    processWorkersLoaded = true;
  }
}

// A run asked for while the process workers still load waits for them, so every variant runs
// ('ready' comes with the thread pool, before them). A cancel while waiting ends it there: the
// page sets the flag in shared memory, and runExperiment would reset it. Whether to go on.
async function waitForProcessWorkers() {
  if (!processWorkers || processWorkersLoaded) return true;
  tell({ type: 'waiting', what: 'the process workers to load' });
  await processWorkers;
  if (Atomics.load(new Uint8Array(wasm.memory.buffer), lab.cancelFlagAddress()) === 1) {
    tell({ type: 'error', message: 'cancelled' });
    return false;
  }
  return true;
}

/** The first of the form's settings that does not fit, in the CLI's words; '' when all fit. @param {string} form */
function formProblem(form) {
  try {
    return lab.formProblem(form);
  } catch (error) {
    return messageOf(error);
  }
}

self.onmessage = async (/** @type {MessageEvent<ToWorker>} */ { data }) => {
  if (data.type === 'init') {
    try {
      await start(data.threads, data.link);
      if (self.crossOriginIsolated) processWorkers = startProcessWorkers();
    } catch (error) {
      tell({ type: 'fatal', message: messageOf(error) });
    }
  } else if (data.type === 'render') {
    try {
      deliver(lab.renderResult(data.result, formThreads), true);
    } catch (error) {
      tell({ type: 'error', message: messageOf(error), stored: true });
    }
  } else if (data.type === 'import') {
    try {
      tell({ type: 'imported', name: data.name, text: data.text, ...JSON.parse(lab.importResult(data.text, formThreads)) });
    } catch (error) {
      tell({ type: 'imported', name: data.name, error: messageOf(error) });
    }
  } else if (data.type === 'timeline') {
    try {
      if (!lastTrace) throw new Error('no timeline was recorded for this result');
      tell({ type: 'timeline', svg: lab.timelineSvg(lastTrace, data.from, data.to), from: data.from, to: data.to });
    } catch (error) {
      tell({ type: 'error', message: messageOf(error) });
    }
  } else if (data.type === 'sim-state') {
    try {
      tell({ type: 'sim-state', state: lab.simState(data.scenario, data.schedule) });
    } catch (error) {
      tell({ type: 'sim-state', error: messageOf(error) });
    }
  } else if (data.type === 'loop-trace') {
    try {
      tell({ type: 'loop-trace', trace: lab.loopTrace(data.scenario) });
    } catch (error) {
      tell({ type: 'loop-trace', error: messageOf(error) });
    }
  } else if (data.type === 'sim-search') {
    try {
      tell({ type: 'sim-search', found: lab.simSearch(data.scenario, data.strategy, data.seed, data.runs, data.depth, data.bound) });
    } catch (error) {
      tell({ type: 'sim-search', error: messageOf(error) });
    }
  } else if (data.type === 'compare') {
    try {
      tell({ type: 'comparison', table: lab.compareResults(data.here, data.there) });
    } catch (error) {
      tell({ type: 'comparison', error: messageOf(error) });
    }
  } else if (data.type === 'health') {
    tell({
      type: 'health',
      wasmBytes: wasm ? wasm.memory.buffer.byteLength : 0,
      workersStarted: workers.started,
      workersEnded: workers.ended,
      workersKilled: lab.processWorkersKilled(),
    });
  } else if (data.type === 'check') {
    tell({ type: 'checked', problem: formProblem(data.form) });
  } else if (data.type === 'run') {
    const problem = formProblem(data.form);
    if (problem) {
      tell({ type: 'error', message: problem, invalid: true });
      return;
    }
    if (!(await waitForProcessWorkers())) return;
    try {
      deliver(lab.runExperiment(data.form, (/** @type {string} */ progress) => tell({ type: 'progress', progress })), false);
    } catch (error) {
      tell({ type: 'error', message: messageOf(error) });
    }
  }
};
