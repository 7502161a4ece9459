// The page's side of the worker protocol (messages.js types each message, worker.js is the
// other side). The page never runs wasm: it starts one dedicated worker, sends it messages,
// and hands each answer to the handler of its type.

import { setStatus } from './dom.js';

/**
 * @typedef {import('./messages.js').FromWorker} FromWorker
 * @typedef {import('./messages.js').ToWorker} ToWorker
 * @typedef {import('./messages.js').Filled} Filled
 * @typedef {import('./messages.js').Finished} Finished
 * @typedef {import('./messages.js').Flame} Flame
 * @typedef {import('./messages.js').Exports} Exports
 * @typedef {import('./messages.js').Table} Table
 * @typedef {import('./messages.js').RunResult} RunResult
 * @typedef {import('./messages.js').ParamValue} ParamValue
 * @typedef {import('./messages.js').Startup} Startup
 */

/** @typedef {{ [K in FromWorker['type']]: (data: Extract<FromWorker, { type: K }>) => void }} Handlers */

/** How long the worker may take to load its wasm before it is started again. */
const START_TIMEOUT_MS = 15000;
const START_TRIES = 3;

/** @type {{ worker: Worker | null, handlers: Handlers | null, memory: WebAssembly.Memory | null, cancelAddress: number,
 *            watchdog: number, attempts: number }} */
const connection = { worker: null, handlers: null, memory: null, cancelAddress: 0, watchdog: 0, attempts: 0 };

/**
 * Starts the worker with a pool of `threads` wasm threads (0: none) and the page's link, and
 * hands every answer to `handlers`. Now and then a browser never finishes starting a worker
 * pool (seen in Firefox right after a navigation): the page does not hang on it — it starts the
 * worker again, twice at most.
 * @param {Handlers} handlers
 * @param {number} threads
 */
export function startWorker(handlers, threads) {
  connection.handlers = handlers;
  const worker = new Worker('./worker.js', { type: 'module' });
  connection.worker = worker;
  worker.onmessage = ({ data }) => {
    const message = /** @type {FromWorker} */ (data);
    if (message.type === 'ready') {
      connection.memory = message.memory;
      connection.cancelAddress = message.cancelAddress;
    }
    if (message.type === 'ready' || message.type === 'fatal') clearTimeout(connection.watchdog);
    const handler = /** @type {(data: FromWorker) => void} */ (handlers[message.type]);
    handler(message);
  };
  worker.onerror = (event) => setStatus('error', `the worker failed: ${event.message || 'could not load worker.js'}`);
  send({ type: 'init', threads, link: Object.fromEntries(new URLSearchParams(location.search)) });
  clearTimeout(connection.watchdog);
  connection.watchdog = setTimeout(() => {
    worker.terminate();
    connection.attempts += 1;
    if (connection.attempts >= START_TRIES) {
      setStatus('error', `the worker did not start in ${START_TRIES} tries of ${START_TIMEOUT_MS / 1000} s; reload the page`);
      return;
    }
    setStatus('loading', `the worker did not start in ${START_TIMEOUT_MS / 1000} s; starting it again ` +
      `(try ${connection.attempts + 1} of ${START_TRIES})…`);
    startWorker(handlers, threads);
  }, START_TIMEOUT_MS);
}

/** @param {ToWorker} message */
export function send(message) {
  connection.worker?.postMessage(message);
}

/**
 * Asks the running experiment to stop. With shared memory the worker is inside the run and the
 * flag is a byte of its wasm memory; without, the worker is ended and started again.
 * @param {number} threads the pool the new worker starts, if it must be restarted
 * @returns {boolean} whether the run was asked to stop (false: the worker was restarted)
 */
export function cancelRun(threads) {
  if (connection.memory) {
    Atomics.store(new Uint8Array(connection.memory.buffer), connection.cancelAddress, 1);
    return true;
  }
  connection.worker?.terminate();
  if (connection.handlers) startWorker(connection.handlers, threads);
  return false;
}
