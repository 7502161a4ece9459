// Starts process workers (process-worker.js) while a run blocks the experiment worker, which
// cannot start one itself then: a worker only starts while its creator's event loop runs, and
// this one's always does (core/src/platform/process_wasm.rs is the other side).
//   experiment worker → {type: 'spawn', id, module, port}   a new worker loads the module and
//                                                             serves the pool through `port`
//   experiment worker → {type: 'terminate', id}             that worker is killed
// A worker that fails to load never answers its claim: the pool's start times out and says so.

/** @type {Map<number, Worker>} */
const started = new Map();

self.onmessage = (/** @type {MessageEvent<{type: 'spawn', id: number, module: WebAssembly.Module, port: MessagePort} | {type: 'terminate', id: number}>} */ { data }) => {
  if (data.type === 'spawn') {
    const worker = new Worker(new URL('./process-worker.js', import.meta.url), { type: 'module' });
    worker.postMessage({ type: 'load', module: data.module, port: data.port }, [data.port]);
    started.set(data.id, worker);
  } else if (data.type === 'terminate') {
    started.get(data.id)?.terminate();
    started.delete(data.id);
  }
};
