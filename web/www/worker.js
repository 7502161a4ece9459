// The experiment worker: owns the wasm instance and the rayon pool; runs experiments so the
// page's main thread never blocks. Protocol (all payloads JSON strings from conlab-core):
//   page → worker  {type: 'init', threads}            worker → page {type: 'ready', …} | {type: 'fatal', message}
//   page → worker  {type: 'run', request}              worker → page {type: 'progress', progress}…, then
//                                                                    {type: 'result', finished} | {type: 'error', message}
import init, * as lab from './conlab-web.js';

let wasm;

async function start(threads) {
  wasm = await init({ module_or_path: new URL('./conlab-web_bg.wasm', import.meta.url) });
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
    catalogue: lab.catalogue(),
    environment: lab.environment(),
    poolThreads,
    poolError,
    // The shared memory lets the page set the cancel flag while a run blocks this worker.
    memory: self.crossOriginIsolated ? wasm.memory : null,
    cancelAddress: lab.cancelFlagAddress(),
  });
}

self.onmessage = async ({ data }) => {
  if (data.type === 'init') {
    try {
      await start(data.threads);
    } catch (error) {
      postMessage({ type: 'fatal', message: String(error && error.message || error) });
    }
  } else if (data.type === 'run') {
    try {
      const finished = lab.runExperiment(data.request, (progress) => postMessage({ type: 'progress', progress }));
      postMessage({ type: 'result', finished });
    } catch (error) {
      postMessage({ type: 'error', message: String(error && error.message || error) });
    }
  }
};
