// A Web Worker "process" for conlab's process pools: its own instance of the lab's wasm module
// with its own memory (share-nothing). worker.js starts a set when the lab loads, and spawner.js
// starts more during a run when a pool needs them; conlab-core
// (core/src/platform/process_wasm.rs) claims one for a pool and talks to it:
//   worker.js  → {type: 'load', module}          → worker.js {type: 'loaded'}
//   spawner.js → {type: 'load', module, port}      (requests then come through `port`)
//   pool       → {type: 'claim', parentMemory, mailbox, data, capacity}   reply 'ready'
//   pool       → {type: 'message', message, payload}                      reply: the answer's bytes
//   pool       → {type: 'share', bytes}                                   reply: empty (kept in this memory)
// The pool's thread is blocked in a run and cannot receive messages, so replies are written
// into its mailbox (in its shared memory): data, then length, then the state word, notified.
//
// While it runs a job, this worker's wasm reaches the pool's memory — shared words (a Value, a
// raw array) and a manager's mailboxes — through `self.conlabParent` below
// (core/src/platform/ipc_wasm.rs is the other side).
import init, * as lab from './conlab-web.js';

const EMPTY = 0, REPLY = 1, FAILED = 2, CLOSED = 3;
/** A manager mailbox's states (ipc_wasm.rs). */
const IDLE = 0, REQUEST = 1, ANSWERED = 2;

/**
 * The pool that claimed this worker: its memory and the mailbox in it.
 * @typedef {{ parentMemory: WebAssembly.Memory, mailbox: number, data: number, capacity: number }} Parent
 * @typedef {{ type: 'load', module: WebAssembly.Module, port?: MessagePort }
 *   | { type: 'claim' } & Parent
 *   | { type: 'message', message: Uint8Array, payload: Uint8Array }
 *   | { type: 'share', bytes: Uint8Array }} Message
 */

/** @type {Parent | null} */
let parent = null;

/** @type {Int32Array | null} The pool's memory as words; remade when that memory grows. */
let parentWords = null;

/** The pool's memory as 32-bit words, covering byte `offset`. @param {number} offset */
function wordsOf(offset) {
  if (!parent) throw new Error('no pool has claimed this worker');
  if (!parentWords || offset >= parentWords.byteLength) parentWords = new Int32Array(parent.parentMemory.buffer);
  return parentWords;
}

/** @type {any} */ (self).conlabParent = {
  /**
   * One Atomics operation on the word at byte `offset` of the pool's memory (ops as in
   * ipc_wasm.rs); the old or loaded value as an unsigned 32-bit number.
   * @param {number} op @param {number} offset @param {number} a @param {number} b
   */
  words(op, offset, a, b) {
    const words = wordsOf(offset);
    const i = offset >>> 2;
    switch (op) {
      case 0: return Atomics.load(words, i) >>> 0;
      case 1: Atomics.store(words, i, a); return 0;
      case 2: return Atomics.add(words, i, a) >>> 0;
      case 3: return Atomics.exchange(words, i, a) >>> 0;
      case 4: return Atomics.compareExchange(words, i, a, b) >>> 0;
      // At most 100 ms: the caller looks again (a lost wake-up costs time, never a hang).
      case 5: Atomics.wait(words, i, a | 0, 100); return 0;
      case 6: return Atomics.notify(words, i, a);
      default: throw new Error(`unknown Atomics operation ${op}`);
    }
  },

  /**
   * One round trip through a manager mailbox: the request in, the doorbell rung, the reply out.
   * @param {number} mailbox @param {number} data @param {number} capacity @param {number} doorbell
   * @param {Uint8Array} request @returns {Uint8Array}
   */
  call(mailbox, data, capacity, doorbell, request) {
    if (request.length > capacity) throw new Error(`a request of ${request.length} bytes does not fit a mailbox of ${capacity}`);
    const words = wordsOf(data + capacity);
    const state = mailbox >>> 2;
    new Uint8Array(words.buffer, data, request.length).set(request);
    Atomics.store(words, state + 1, request.length);
    Atomics.store(words, state, REQUEST);
    Atomics.add(words, doorbell >>> 2, 1);
    Atomics.notify(words, doorbell >>> 2);
    while (Atomics.load(words, state) === REQUEST) Atomics.wait(words, state, REQUEST, 1000);
    if (Atomics.load(words, state) !== ANSWERED) throw new Error('the manager left the mailbox without an answer');
    const reply = new Uint8Array(words.buffer, data, Atomics.load(words, state + 1)).slice();
    Atomics.store(words, state, IDLE);
    return reply;
  },
};

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
  // The pool may not have taken the previous reply yet; or it killed this worker, which then
  // writes nothing (a terminated worker blocked in Atomics.wait may wake and run on).
  for (let seen; (seen = Atomics.load(words, 0)) !== EMPTY;) {
    if (seen === CLOSED) return;
    Atomics.wait(words, 0, seen);
  }
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
      lab.processShare(new Uint8Array(0));
      return new TextEncoder().encode('ready');
    case 'message':
      return lab.processAnswer(data.message, data.payload);
    case 'share':
      lab.processShare(data.bytes);
      return new Uint8Array(0);
    default:
      throw new Error(`unexpected message type ${data.type}`);
  }
}

/** A request from the pool: answered into its mailbox. @param {Message} data */
function serve(data) {
  try {
    reply(answer(data));
  } catch (error) {
    reply(new TextEncoder().encode(messageOf(error)), FAILED);
  }
}

self.onmessage = async (/** @type {MessageEvent<Message>} */ { data }) => {
  if (data.type !== 'load') {
    serve(data);
    return;
  }
  try {
    await init({ module_or_path: data.module });
    if (data.port) {
      // Started by spawner.js: the pool talks through this port, and nobody waits for 'loaded'.
      data.port.onmessage = (/** @type {MessageEvent<Message>} */ { data: request }) => serve(request);
    } else {
      postMessage({ type: 'loaded' });
    }
  } catch (error) {
    postMessage({ type: 'failed', message: messageOf(error) });
  }
};
