// A Web Worker "process" for conlab's process pools: its own instance of the lab's wasm module
// with its own memory (share-nothing). worker.js starts it when the lab loads; conlab-core
// (core/src/platform/process_wasm.rs) claims it for a pool and talks to it:
//   worker.js → {type: 'load', module}        → worker.js {type: 'loaded', memory}
//   pool      → {type: 'claim', parentMemory, mailbox, data, capacity}   reply 'ready'
//   pool      → {type: 'message', message, payload}                      reply: the answer's bytes
//   pool      → {type: 'share', len}                                     reply: the region's address (u32 LE)
// The pool's thread is blocked in a run and cannot receive messages, so replies are written
// into its mailbox (in its shared memory): data, then length, then the state word, notified.
import init, * as lab from './conlab-web.js';

const EMPTY = 0, REPLY = 1, FAILED = 2;

/**
 * The pool that claimed this worker: its memory and the mailbox in it.
 * @typedef {{ parentMemory: WebAssembly.Memory, mailbox: number, data: number, capacity: number }} Parent
 * @typedef {{ type: 'load', module: WebAssembly.Module }
 *   | { type: 'claim' } & Parent
 *   | { type: 'message', message: Uint8Array, payload: Uint8Array }
 *   | { type: 'share', len: number }} Message
 */

/** @type {Parent | null} */
let parent = null;

/** An exception's message, as the pool reports it. @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/**
 * Writes `bytes` into the claiming pool's mailbox and wakes it.
 * @param {Uint8Array} bytes
 * @param {number} [state]
 */
function reply(bytes, state = REPLY) {
  if (!parent) throw new Error('a reply before any pool claimed this worker');
  const words = new Int32Array(parent.parentMemory.buffer, parent.mailbox, 2);
  // The pool may not have taken the previous reply yet.
  for (let seen; (seen = Atomics.load(words, 0)) !== EMPTY;) Atomics.wait(words, 0, seen);
  if (bytes.length > parent.capacity) {
    bytes = new TextEncoder().encode(`a reply of ${bytes.length} bytes does not fit the pool's mailbox of ${parent.capacity}`);
    state = FAILED;
  }
  new Uint8Array(parent.parentMemory.buffer, parent.data, bytes.length).set(bytes);
  Atomics.store(words, 1, bytes.length);
  Atomics.store(words, 0, state);
  Atomics.notify(words, 0);
}

/** @param {Message} data @returns {Uint8Array} */
function answer(data) {
  switch (data.type) {
    case 'claim':
      parent = data;
      lab.processShare(0);
      return new TextEncoder().encode('ready');
    case 'message':
      return lab.processAnswer(data.message, data.payload);
    case 'share':
      return new Uint8Array(new Uint32Array([lab.processShare(data.len)]).buffer);
    default:
      throw new Error(`unexpected message type ${data.type}`);
  }
}

self.onmessage = async (/** @type {MessageEvent<Message>} */ { data }) => {
  if (data.type === 'load') {
    try {
      const wasm = await init({ module_or_path: data.module });
      postMessage({ type: 'loaded', memory: wasm.memory });
    } catch (error) {
      postMessage({ type: 'failed', message: messageOf(error) });
    }
    return;
  }
  try {
    reply(answer(data));
  } catch (error) {
    reply(new TextEncoder().encode(messageOf(error)), FAILED);
  }
};
