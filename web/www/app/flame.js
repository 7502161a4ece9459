// The run's profile as a flame graph (conlab-core's `profile::export::flame_svg`, through the
// worker): wall-clock or on-CPU, and zoomable — a click on a frame widens it to the whole width
// with everything it called, its callers above as full-width bars; Escape or "whole profile"
// goes back.

import { $, el } from './dom.js';

/** @typedef {import('./protocol.js').Flame} Flame */

/** The profile shown, and which view. @type {{ flame: Flame | null, view: 'wall' | 'cpu' }} */
const shown = { flame: null, view: 'wall' };

/** The flame graphs' width in SVG units (conlab-core's `export::WIDTH`). */
const WIDTH = 1200;
/** Pixels a character of the frames' labels takes, and the label's margin. */
const CHAR = 7;
const MARGIN = 6;

/**
 * Shows a run's profile, or hides the figure when it took none.
 * @param {Flame | null} flame
 */
export function showFlame(flame) {
  shown.flame = flame;
  $('flame').hidden = !flame;
  $('flame-lines').replaceChildren(...(flame?.lines ?? []).map((line) => el('li', { text: line })));
  draw('wall');
}

/** @param {'wall' | 'cpu'} view */
function draw(view) {
  shown.view = view;
  const chart = $('flame-chart');
  const flame = shown.flame;
  chart.innerHTML = flame ? (view === 'wall' ? flame.wall_svg : flame.cpu_svg) : ''; // built by conlab-core, text XML-escaped
  chart.dataset.view = view;
  chart.dataset.zoom = '';
  for (const button of document.querySelectorAll('#flame-controls [data-view]')) {
    button.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (button).dataset.view === view));
  }
  for (const frame of frames()) {
    const rect = frame.querySelector('rect');
    if (!rect) continue;
    rect.dataset.x = rect.getAttribute('x') ?? '0';
    rect.dataset.w = rect.getAttribute('width') ?? '0';
  }
}

/** @returns {SVGGElement[]} */
function frames() {
  return [.../** @type {NodeListOf<SVGGElement>} */ ($('flame-chart').querySelectorAll('g.frame'))];
}

/**
 * Widens `target` to the whole width: what it called scales with it, its callers span the width,
 * every other frame is hidden.
 * @param {SVGGElement} target
 */
function zoom(target) {
  const box = target.querySelector('rect');
  if (!box) return;
  const [x0, w0, d0] = [Number(box.dataset.x), Number(box.dataset.w), Number(target.dataset.depth)];
  const epsilon = 1e-6;
  for (const frame of frames()) {
    const rect = frame.querySelector('rect');
    if (!rect) continue;
    const [x, w, depth] = [Number(rect.dataset.x), Number(rect.dataset.w), Number(frame.dataset.depth)];
    const caller = depth < d0 && x <= x0 + epsilon && x + w >= x0 + w0 - epsilon;
    const inside = depth >= d0 && x >= x0 - epsilon && x + w <= x0 + w0 + epsilon;
    frame.style.display = caller || inside ? '' : 'none';
    if (caller) place(frame, rect, 0, WIDTH);
    else if (inside) place(frame, rect, ((x - x0) * WIDTH) / w0, (w * WIDTH) / w0);
  }
  $('flame-chart').dataset.zoom = target.dataset.name ?? '';
}

/**
 * Moves a frame's box and refits its label.
 * @param {SVGGElement} frame @param {SVGRectElement} rect @param {number} x @param {number} width
 */
function place(frame, rect, x, width) {
  rect.setAttribute('x', x.toFixed(2));
  rect.setAttribute('width', width.toFixed(2));
  const name = frame.dataset.name ?? '';
  const fits = Math.floor((width - MARGIN) / CHAR);
  let label = frame.querySelector('text');
  if (fits < 3) {
    label?.remove();
    return;
  }
  if (!label) {
    label = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    label.setAttribute('y', String(Number(rect.getAttribute('y')) + 12));
    frame.append(label);
  }
  label.setAttribute('x', (x + 3).toFixed(2));
  label.textContent = name.length > fits ? `${name.slice(0, Math.max(fits - 2, 1))}..` : name;
}

/** Wires the figure's controls once. */
export function setUpFlame() {
  const chart = $('flame-chart');
  chart.addEventListener('click', (event) => {
    const frame = /** @type {Element} */ (event.target).closest('g.frame');
    if (frame) zoom(/** @type {SVGGElement} */ (frame));
  });
  chart.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' || event.key === '0') draw(shown.view);
  });
  for (const button of document.querySelectorAll('#flame-controls button')) {
    const { view } = /** @type {HTMLElement} */ (button).dataset;
    /** @type {HTMLElement} */ (button).onclick = () => draw(view === 'cpu' ? 'cpu' : view === 'wall' ? 'wall' : shown.view);
  }
}
