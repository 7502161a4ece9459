// The page's memory: the last results, kept in localStorage, and a native result imported to
// compare with. conlab-lab checks whatever comes back from storage or a file (in the worker)
// before the page shows it.

import { $, el } from './dom.js';
import { fillForm, isRunning } from './form.js';
import { send } from './protocol.js';
import { lastResult } from './results.js';

/**
 * @typedef {import('./protocol.js').RunResult} RunResult
 * @typedef {{ experiment: string, title?: string, when: string, result: string }} Entry
 */

const HISTORY_KEY = 'conlab.history';
/** Where a stored history that no longer reads is set aside (nothing a user kept is deleted). */
const UNREADABLE_KEY = 'conlab.history.unreadable';
const HISTORY_SIZE = 10;

/** The imported result's JSON, to compare the next runs with. @type {string | null} */
let imported = null;

/** What was wrong with the stored history when it was set aside, to say where it is shown. */
let setAside = '';

/**
 * The stored entries that are entries at all (what is in them is checked when one is opened).
 * A history that is not a JSON list is set aside under UNREADABLE_KEY and the history starts
 * afresh; storage the browser refuses (a privacy mode) reads as empty.
 * @returns {Entry[]}
 */
export function storedHistory() {
  let text = null;
  try {
    text = localStorage.getItem(HISTORY_KEY);
  } catch (error) {
    setAside = `This browser keeps no history here (${error}).`;
    return [];
  }
  if (text === null) return [];
  try {
    const entries = JSON.parse(text);
    if (!Array.isArray(entries)) throw new Error('it is not a list of results');
    return entries.filter((entry) => entry && typeof entry === 'object');
  } catch (error) {
    try {
      localStorage.setItem(UNREADABLE_KEY, text);
    } catch {
      // Over the quota even for that: the unreadable text goes.
    }
    localStorage.removeItem(HISTORY_KEY);
    setAside = `The stored history could not be read (${error}), so it starts afresh; what was there is kept in localStorage as ${UNREADABLE_KEY}.`;
    return [];
  }
}

/**
 * Keeps a finished run's result (never its trace, so entries stay small), newest first.
 * @param {RunResult} result
 */
export function remember(result) {
  const entry = { experiment: result.experiment, title: result.title, when: new Date().toISOString(), result: JSON.stringify(result) };
  let entries = [entry, ...storedHistory()].slice(0, HISTORY_SIZE);
  while (entries.length) {
    try {
      localStorage.setItem(HISTORY_KEY, JSON.stringify(entries));
      break;
    } catch {
      entries = entries.slice(0, -1); // over the storage quota: drop the oldest
    }
  }
  showHistory();
}

export function showHistory() {
  const items = storedHistory().map((entry, index) => {
    const button = el('button', { type: 'button', 'data-history': index, text: `${entry.experiment}` });
    button.onclick = () => openStored(storedHistory()[index]);
    const when = new Date(entry.when);
    const whenText = Number.isNaN(when.getTime()) ? 'at an unknown time' : when.toLocaleString();
    return el('li', {}, button, ` ${whenText} — ${entry.title ?? ''}`);
  });
  $('history-list').replaceChildren(...items);
  if (setAside) $('history-status').textContent = setAside;
  $('history-section').hidden = !items.length && !setAside;
}

/** @param {Entry | undefined} entry */
function openStored(entry) {
  if (!entry || isRunning()) return;
  $('history-status').textContent = '';
  send({ type: 'render', result: String(entry.result) });
}

/** Opens the newest stored result, if there is one. */
export function openLatest() {
  openStored(storedHistory()[0]);
}

/** A stored result that no longer reads: said where the history is; the page goes on. @param {string} message */
export function showStoredError(message) {
  $('history-status').textContent = `A stored result could not be opened: ${message}`;
}

/** @param {Event} event */
async function importFile(event) {
  const file = /** @type {HTMLInputElement} */ (event.target).files?.[0];
  if (!file) return;
  $('import-status').textContent = `reading ${file.name}…`;
  send({ type: 'import', name: file.name, text: await file.text() });
}

/**
 * The worker's verdict on an imported file: its settings fill the form, and the result on the
 * page is compared with it — or, for a cluster's result (`opens`), which a page cannot run,
 * shown as measured.
 * @param {{ name: string, text?: string, experiment?: string, form?: import('./protocol.js').Filled, platform?: string, opens?: boolean, error?: string }} answer
 */
export function showImported({ name, text, experiment, form, platform, opens, error }) {
  if (error || !text || !form) {
    $('import-status').textContent = `${name} cannot be imported: ${error}`;
    return;
  }
  if (opens) {
    imported = null;
    send({ type: 'render', result: text });
    $('import-status').textContent = `Imported ${experiment} measured on ${platform}: a cluster of processes ran it, which a browser cannot start, so the page shows it as measured.`;
    return;
  }
  imported = text;
  fillForm(form, 'The imported result');
  $('import-status').textContent = `Imported ${experiment} measured on ${platform}; the form now holds its settings — run it here to compare.`;
  compareWithImported();
}

/** Compares the result on the page with the imported one, when there are both. */
export function compareWithImported() {
  const last = lastResult();
  if (!imported || !last) return;
  send({ type: 'compare', here: JSON.stringify(last.result), there: imported });
}

export function setUpImport() {
  $('import-file').addEventListener('change', importFile);
}
