// DOM helpers the page's modules share: typed lookups, element building, the status line.

/**
 * The element with `id` (index.html has every id the modules use; a missing one is a bug).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`index.html has no element #${id}`);
  return node;
}

/** @param {string} id */
export const inputById = (id) => /** @type {HTMLInputElement} */ ($(id));
/** @param {string} id */
export const selectById = (id) => /** @type {HTMLSelectElement} */ ($(id));
/** @param {string} id */
export const buttonById = (id) => /** @type {HTMLButtonElement} */ ($(id));

/**
 * A new element. `text` sets its text; any other attribute is set as given (`true`: present
 * and empty; `false`, `null` or `undefined`: absent).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number | boolean | null | undefined>} [attrs]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') node.textContent = String(value);
    else if (value !== false && value != null) node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children);
  return node;
}

/** @typedef {'loading' | 'ready' | 'running' | 'done' | 'cancelled' | 'error'} Status */

/**
 * The status line the environment panel shows (and the browser suite waits on).
 * @param {Status} kind
 * @param {string} text
 */
export function setStatus(kind, text) {
  const status = $('status');
  status.dataset.state = kind;
  status.textContent = text;
}
