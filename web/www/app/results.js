// A finished run on the page: the summary, chart, fits, table, notes, findings, timeline,
// latency and depth plots, and the exports. Every text and drawing comes from conlab-lab's
// `report` (through the worker); this module places them.

import { $, el } from './dom.js';
import { linkFor } from './form.js';
import { showFlame } from './flame.js';
import { showTimeline } from './timeline.js';

/**
 * @typedef {import('./protocol.js').Finished} Finished
 * @typedef {import('./protocol.js').Exports} Exports
 * @typedef {import('./protocol.js').Table} Table
 */

/** @type {Finished | null} */
let last = null;

/** The result on the page, if any. */
export const lastResult = () => last;

/**
 * The CLI's table (conlab-lab's `report::table_data`): its columns and formatting.
 * @param {Table} table
 */
export function resultTable({ headers, rows }) {
  const body = rows.map((row) => el('tr', { 'data-variant': row.variant, 'data-threads': row.threads, 'data-check': row.check },
    ...row.cells.map((text) => el('td', { text }))));
  return el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { text: h })))), el('tbody', {}, ...body));
}

/**
 * @param {Finished} finished
 * @param {Exports} exports
 */
export function showResult(finished, exports) {
  last = finished;
  const { result, traced, summary, table, chart_svg, fits, notes, findings, csv, timeline_svg, depth_svg, latency_svgs, curve_svgs } = finished;
  $('results').hidden = false;
  $('result-summary').textContent = summary;
  // What the experiment teaches, as this run checked it (conlab-lab's report::lesson_lines).
  $('lessons').replaceChildren(...finished.lessons.map(({ verdict, text }) => el('li', { 'data-verdict': verdict, text })));
  $('chart').innerHTML = chart_svg; // built by conlab-lab's report::chart_svg, text XML-escaped
  $('fits').replaceChildren(...fits.map((line) => el('li', { text: line })));
  $('table').replaceChildren(resultTable(table));
  $('notes').replaceChildren(...notes.map((line) => el('li', { text: line })));
  $('findings').hidden = findings.length === 0;
  $('findings-list').replaceChildren(...findings.map((line) => el('li', { text: line })));
  showTimeline(timeline_svg, traced);
  showFlame(finished.flame);
  $('latency').hidden = latency_svgs.length === 0;
  $('latency-chart').innerHTML = latency_svgs.join(''); // built by conlab-lab's report::latency_svgs, text XML-escaped
  $('curves').hidden = curve_svgs.length === 0;
  $('curves-chart').innerHTML = curve_svgs.join(''); // built by conlab-lab's report::curve_svgs, text XML-escaped
  $('depth').hidden = !depth_svg;
  $('depth-chart').innerHTML = depth_svg ?? ''; // built by conlab-lab's report::depth_svg, text XML-escaped
  /** @type {(name: string, blob: Blob) => HTMLAnchorElement} */
  const blobLink = (name, blob) => el('a', { href: URL.createObjectURL(blob), download: name, text: name });
  /** @type {(name: string, type: string, text: string) => HTMLAnchorElement} */
  const download = (name, type, text) => blobLink(name, new Blob([text], { type }));
  const stem = `conlab-${result.experiment}`;
  const links = [blobLink(`${stem}.json`, exports.json), download(`${stem}.csv`, 'text/csv', csv),
    download(`${stem}.svg`, 'image/svg+xml', chart_svg), pngLink(`${stem}.png`, chart_svg)];
  if (exports.chromeTrace) links.push(blobLink(`${stem}.trace.json`, exports.chromeTrace));
  if (timeline_svg) links.push(download(`${stem}.timeline.svg`, 'image/svg+xml', timeline_svg), pngLink(`${stem}.timeline.png`, timeline_svg));
  latency_svgs.forEach((svg, i) => links.push(download(`${stem}.latency${i ? i + 1 : ''}.svg`, 'image/svg+xml', svg)));
  curve_svgs.forEach((svg, i) => links.push(download(`${stem}.curve${i ? i + 1 : ''}.svg`, 'image/svg+xml', svg)));
  if (depth_svg) links.push(download(`${stem}.depth.svg`, 'image/svg+xml', depth_svg));
  if (finished.flame) {
    links.push(download(`${stem}.flame.svg`, 'image/svg+xml', finished.flame.wall_svg),
      download(`${stem}.collapsed.txt`, 'text/plain', finished.flame.collapsed),
      download(`${stem}.speedscope.json`, 'application/json', finished.flame.speedscope));
  }
  $('exports').replaceChildren('Export: ', ...links.flatMap((link, i) => (i ? [' · ', link] : [link])),
    ' · ', el('a', { href: linkFor(finished.link), text: 'link to these settings' }));
}

/**
 * The comparison with an imported run (conlab-lab's `report::comparison`), or why there is none.
 * @param {{ table?: string, error?: string }} comparison
 */
export function showComparison({ table, error }) {
  $('comparison').hidden = false;
  $('comparison-table').replaceChildren(table ? resultTable(JSON.parse(table)) : el('p', { class: 'error', text: error ?? '' }));
}

/**
 * A download link for an SVG as PNG, drawn on a canvas (at twice its size) when first clicked.
 * @param {string} name
 * @param {string} svgText
 */
function pngLink(name, svgText) {
  const link = el('a', { href: '#', download: name, text: name });
  link.onclick = async (event) => {
    if (link.dataset.ready) return;
    event.preventDefault();
    link.href = await svgToPng(svgText);
    link.dataset.ready = 'true';
    link.click();
  };
  return link;
}

/** @param {string} svgText @returns {Promise<string>} an object URL of the PNG */
async function svgToPng(svgText) {
  const source = URL.createObjectURL(new Blob([svgText], { type: 'image/svg+xml' }));
  const image = new Image();
  await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = reject; image.src = source; });
  const scale = 2;
  const canvas = el('canvas', { width: image.naturalWidth * scale, height: image.naturalHeight * scale });
  const context = canvas.getContext('2d');
  if (!context) throw new Error('this browser draws no 2D canvas');
  context.fillStyle = '#fff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.scale(scale, scale);
  context.drawImage(image, 0, 0);
  URL.revokeObjectURL(source);
  const png = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  return URL.createObjectURL(/** @type {Blob} */ (png));
}
