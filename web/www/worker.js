// The experiment worker: owns the wasm instance and the rayon pool; runs experiments so the
// page's main thread never blocks. Protocol (all payloads JSON strings from conlab-lab):
//   page → worker  {type: 'init', threads}            worker → page {type: 'loaded', …} once wasm runs (the page is
//                                                                    usable: catalogue, forms, the debugging lab),
//                                                                    then {type: 'ready', …} once the thread pool runs
//                                                                    | {type: 'fatal', message}
//   page → worker  {type: 'run', request}              worker → page {type: 'progress', progress}…, then
//                                                                    {type: 'result', finished, exports} | {type: 'error', message}
//                                                 worker → page {type: 'processes', count, startMs, error} once the
//                                                   process workers (process-worker.js) have loaded, after 'ready';
//                                                   a run asked for before that waits for them: {type: 'waiting', what}
//   page → worker  {type: 'render', result}           worker → page {type: 'result', finished, exports, stored: true}
//                                                                    | {type: 'error', message, stored: true}
//   page → worker  {type: 'import', name, text}       worker → page {type: 'imported', name, text, settings, platform}
//                                                                    | {type: 'imported', name, error}
//   page → worker  {type: 'compare', here, there}     worker → page {type: 'comparison', table} | {type: 'comparison', error}
//   page → worker  {type: 'timeline', from, to}       worker → page {type: 'timeline', svg, from, to} | {type: 'error', message}
//   page → worker  {type: 'sim-state', scenario, schedule}   worker → page {type: 'sim-state', state} | {type: 'sim-state', error}
//   page → worker  {type: 'sim-search', scenario, strategy, seed, runs, depth, bound}
//                                                     worker → page {type: 'sim-search', found} | {type: 'sim-search', error}
//   ('ready' carries the debugging lab's scenarios: `scenarios`)
// A result reaches the page as an object without its trace (`traced` says there was one): the
// megabytes of spans are parsed and serialised here, never on the main thread. The trace stays
// here for the timeline's zoom; the exports that hold it come as Blobs.
import init, * as lab from './conlab-web.js';

let wasm;
let lastTrace = null;
// Settles once the process workers are registered (or failed to load); null where there are none.
let processWorkers = null;
let processWorkersLoaded = false;

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
  postMessage({ type: 'result', finished, exports, stored });
}

async function start(threads) {
  const began = performance.now();
  wasm = await init({ module_or_path: new URL('./conlab-web_bg.wasm', import.meta.url) });
  const wasmMs = performance.now() - began;
  // Everything but a run works now: the page need not wait for the pool (its workers start
  // slowly in some browsers — ~0.6 s for 8 in Firefox).
  postMessage({
    type: 'loaded',
    catalogue: lab.catalogue(self.crossOriginIsolated ? threads : 1),
    scenarios: lab.simScenarios(),
    environment: lab.environment(),
    threads: self.crossOriginIsolated ? threads : 0,
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
    }
  } else {
    poolError = 'this page is not cross-origin isolated, so SharedArrayBuffer and wasm threads are unavailable';
  }
  postMessage({
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
async function startProcessWorkers() {
  const count = Math.max(4, Math.min(navigator.hardwareConcurrency || 1, 16));
  const started = performance.now();
  const module = lab.compiledModule();
  const load = () => new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./process-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = ({ data }) => {
      worker.onmessage = null;
      if (data.type === 'loaded') resolve({ worker, memory: data.memory });
      else reject(new Error(data.message));
    };
    worker.onerror = (event) => reject(new Error(event.message || 'process-worker.js failed to load'));
    worker.postMessage({ type: 'load', module });
  });
  try {
    const loaded = await Promise.all(Array.from({ length: count }, load));
    lab.registerProcessWorkers(loaded.map((l) => l.worker), loaded.map((l) => l.memory));
    postMessage({ type: 'processes', count, startMs: performance.now() - started, error: null });
  } catch (error) {
    postMessage({ type: 'processes', count: 0, startMs: 0, error: String(error && error.message || error) });
  } finally {
    processWorkersLoaded = true;
  }
}

// A run asked for while the process workers still load waits for them, so every variant runs
// ('ready' comes with the thread pool, before them). A cancel while waiting ends it there: the
// page sets the flag in shared memory, and runExperiment would reset it. Whether to go on.
async function waitForProcessWorkers() {
  if (!processWorkers || processWorkersLoaded) return true;
  postMessage({ type: 'waiting', what: 'the process workers to load' });
  await processWorkers;
  if (Atomics.load(new Uint8Array(wasm.memory.buffer), lab.cancelFlagAddress()) === 1) {
    postMessage({ type: 'error', message: 'cancelled' });
    return false;
  }
  return true;
}

self.onmessage = async ({ data }) => {
  if (data.type === 'init') {
    try {
      await start(data.threads);
      if (self.crossOriginIsolated) processWorkers = startProcessWorkers();
    } catch (error) {
      postMessage({ type: 'fatal', message: String(error && error.message || error) });
    }
  } else if (data.type === 'render') {
    try {
      deliver(lab.renderResult(data.result), true);
    } catch (error) {
      postMessage({ type: 'error', message: String(error && error.message || error), stored: true });
    }
  } else if (data.type === 'import') {
    try {
      postMessage({ type: 'imported', name: data.name, text: data.text, ...JSON.parse(lab.importResult(data.text)) });
    } catch (error) {
      postMessage({ type: 'imported', name: data.name, error: String(error && error.message || error) });
    }
  } else if (data.type === 'timeline') {
    try {
      if (!lastTrace) throw new Error('no timeline was recorded for this result');
      postMessage({ type: 'timeline', svg: lab.timelineSvg(lastTrace, data.from, data.to), from: data.from, to: data.to });
    } catch (error) {
      postMessage({ type: 'error', message: String(error && error.message || error) });
    }
  } else if (data.type === 'sim-state') {
    try {
      postMessage({ type: 'sim-state', state: lab.simState(data.scenario, data.schedule) });
    } catch (error) {
      postMessage({ type: 'sim-state', error: String(error && error.message || error), schedule: data.schedule });
    }
  } else if (data.type === 'sim-search') {
    try {
      postMessage({ type: 'sim-search', found: lab.simSearch(data.scenario, data.strategy, data.seed, data.runs, data.depth, data.bound) });
    } catch (error) {
      postMessage({ type: 'sim-search', error: String(error && error.message || error) });
    }
  } else if (data.type === 'compare') {
    try {
      postMessage({ type: 'comparison', table: lab.compareResults(data.here, data.there) });
    } catch (error) {
      postMessage({ type: 'comparison', error: String(error && error.message || error) });
    }
  } else if (data.type === 'run') {
    if (!(await waitForProcessWorkers())) return;
    try {
      deliver(lab.runExperiment(data.request, (progress) => postMessage({ type: 'progress', progress })), false);
    } catch (error) {
      postMessage({ type: 'error', message: String(error && error.message || error) });
    }
  }
};
