// The catalogue: every experiment's schema (from conlab-lab, through the worker), the
// experiment picker grouped by topic, and the cards that say what each one teaches.

import { $, el, selectById } from './dom.js';

/**
 * @typedef {import('./protocol.js').ParamValue} ParamValue
 * @typedef {{ name: string, unit: string, help: string } & (
 *   { type: 'int' | 'float', min: number, max: number, default: number }
 *   | { type: 'choice', choices: string[], details?: string[], default: string }
 *   | { type: 'bool', default: boolean })} ParamSpec
 * @typedef {{ id: string, help: string, sweeps_threads: boolean, unchecked?: string }} VariantSpec
 * @typedef {object} Entry
 * @property {string} id
 * @property {string} title
 * @property {string} topic
 * @property {string} concept
 * @property {string} teaches
 * @property {ParamSpec[]} params
 * @property {VariantSpec[]} variants
 * @property {boolean} shows_timeline
 * @property {string[]} quick the quick preset as `name=value` text, to show
 * @property {Record<string, ParamValue>} quick_values the quick preset's values, checked
 * @typedef {object} Catalogue
 * @property {Entry[]} experiments
 * @property {number[]} default_threads
 * @property {number} default_repeat
 * @property {[number, number]} repeat_range
 * @property {[number, number]} warmup_range
 */

/** @type {Catalogue | null} */
let catalogue = null;

/** @returns {Catalogue} */
export function theCatalogue() {
  if (!catalogue) throw new Error('the catalogue is not loaded yet');
  return catalogue;
}

/** @param {string} id */
export const entry = (id) => theCatalogue().experiments.find((info) => info.id === id);

/** The experiment the picker shows. */
export function current() {
  const info = entry(selectById('experiment-select').value);
  if (!info) throw new Error('the picker shows no experiment');
  return info;
}

/**
 * Fills the picker and the cards from `loaded`; `pick(id)` sets an experiment up (the picker's
 * change, a card's click).
 * @param {Catalogue} loaded
 * @param {(id: string) => void} pick
 */
export function fillCatalogue(loaded, pick) {
  catalogue = loaded;
  const select = selectById('experiment-select');
  select.append(...byTopic((info) => el('option', { value: info.id, text: info.title }))
    .map(([topic, options]) => el('optgroup', { label: topic }, ...options)));
  $('catalogue-topics').replaceChildren(...byTopic((info) => card(info, pick)).map(([topic, cards]) =>
    el('section', { class: 'topic', 'data-topic': topic }, el('h3', { text: `${topic} (${cards.length})` }),
      el('div', { class: 'cards' }, ...cards))));
  select.disabled = false;
  select.onchange = () => pick(select.value);
}

/**
 * Every experiment made into a node by `make`, grouped by topic in catalogue order.
 * @template {Node} N
 * @param {(info: Entry) => N} make
 * @returns {[string, N[]][]}
 */
function byTopic(make) {
  /** @type {Map<string, N[]>} */
  const topics = new Map();
  for (const info of theCatalogue().experiments) {
    const nodes = topics.get(info.topic) ?? [];
    nodes.push(make(info));
    topics.set(info.topic, nodes);
  }
  return [...topics];
}

/**
 * A card: what the experiment teaches, one click (or Enter) from its form.
 * @param {Entry} info
 * @param {(id: string) => void} pick
 */
function card(info, pick) {
  const button = el('button', { type: 'button', class: 'card', 'data-experiment': info.id, title: info.teaches },
    el('strong', { text: info.title }), el('span', { class: 'card-concept', text: info.concept }),
    el('span', { class: 'card-teaches', text: info.teaches }));
  button.onclick = () => {
    if (selectById('experiment-select').disabled) return; // a run is going on
    selectById('experiment-select').value = info.id;
    pick(info.id);
    /** @type {HTMLDetailsElement} */ ($('catalogue')).open = false;
    $('experiment').scrollIntoView({ behavior: 'smooth' });
    selectById('experiment-select').focus({ preventScroll: true });
  };
  return button;
}
