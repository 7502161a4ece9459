// Timeline zoom: the worker keeps the run's trace and redraws a window of each cell's run
// (conlab-lab's `report::timeline_window_svg`), so spans merged at full width come apart.

import { $ } from './dom.js';
import { isRunning } from './form.js';
import { send } from './protocol.js';

/** The window shown, as fractions of each cell's run; whether the worker holds a trace to zoom. */
const view = { from: 0, to: 1, zoomable: false };

/**
 * Shows a result's whole timeline, or hides the figure when the run recorded none.
 * @param {string | null} svg
 * @param {boolean} zoomable whether the worker holds its trace (a stored result's is not kept)
 */
export function showTimeline(svg, zoomable) {
  $('timeline').hidden = !svg;
  $('timeline-chart').innerHTML = svg ?? ''; // built by conlab-lab's report::timeline_svg, text XML-escaped
  Object.assign(view, { from: 0, to: 1, zoomable });
  $('timeline-window').textContent = '';
}

/**
 * A window the worker drew.
 * @param {{ svg: string, from: number, to: number }} window
 */
export function showWindow({ svg, from, to }) {
  Object.assign(view, { from, to });
  $('timeline-chart').innerHTML = svg; // built by conlab-lab's report::timeline_window_svg, text XML-escaped
  $('timeline-window').textContent = from === 0 && to === 1 ? '' : `showing ${(from * 100).toFixed(1)}% – ${(to * 100).toFixed(1)}% of each run`;
}

/** @param {number} from @param {number} to */
function zoomTo(from, to) {
  if (!view.zoomable || isRunning()) return;
  const width = Math.max(to - from, 1e-6);
  const start = Math.min(Math.max(from, 0), 1 - width);
  send({ type: 'timeline', from: start, to: Math.min(start + width, 1) });
}

/** @typedef {'in' | 'out' | 'left' | 'right' | 'reset'} Zoom */

/**
 * Zooms in (half the width) or out (twice) keeping the point at `at` (a fraction of the shown
 * window) where it is, pans by a quarter of the window, or shows the whole run.
 * @param {Zoom} action
 * @param {number} [at]
 */
function zoom(action, at = 0.5) {
  const { from, to } = view;
  const width = to - from;
  const point = from + width * at;
  /** @param {number} newWidth */
  const around = (newWidth) => zoomTo(point - newWidth * at, point - newWidth * at + newWidth);
  if (action === 'in') around(width / 2);
  else if (action === 'out') around(Math.min(width * 2, 1));
  else if (action === 'left') zoomTo(from - width / 4, to - width / 4);
  else if (action === 'right') zoomTo(from + width / 4, to + width / 4);
  else zoomTo(0, 1);
}

/** @type {Record<string, Zoom>} */
const KEYS = { '+': 'in', '=': 'in', '-': 'out', ArrowLeft: 'left', ArrowRight: 'right', 0: 'reset' };

/** The zoom buttons, keys (+ − ← → 0) and mouse wheel. */
export function setUpTimelineZoom() {
  $('timeline-controls').querySelectorAll('button').forEach((button) => {
    button.onclick = () => zoom(/** @type {Zoom} */ (button.dataset.zoom));
  });
  const chart = $('timeline-chart');
  chart.addEventListener('keydown', (event) => {
    const action = KEYS[event.key];
    if (action) {
      event.preventDefault();
      zoom(action);
    }
  });
  chart.addEventListener('wheel', (event) => {
    const svg = chart.querySelector('svg');
    if (!svg) return;
    event.preventDefault();
    // The plot spans x = 110 … 884 of the SVG's 900 units (lab/src/report/timeline.rs).
    const box = svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * 900;
    zoom(event.deltaY < 0 ? 'in' : 'out', Math.min(Math.max((x - 110) / 774, 0), 1));
  }, { passive: false });
}
