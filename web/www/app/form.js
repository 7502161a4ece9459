// The run form: an experiment's parameters, variants and run settings, its presets, Run and
// Cancel. Every field holds text; conlab-lab checks it (the worker's `check` and `run`, a
// link's `fill`) by the CLI's rules, and this module only shows what comes back.

import { current, entry, theCatalogue } from './catalogue.js';
import { $, buttonById, el, inputById, selectById, setStatus } from './dom.js';
import { cancelRun, send } from './protocol.js';

/**
 * @typedef {import('./catalogue.js').Entry} Entry
 * @typedef {import('./catalogue.js').ParamSpec} ParamSpec
 * @typedef {import('./protocol.js').Filled} Filled
 * @typedef {import('./protocol.js').ParamValue} ParamValue
 */

const run = { running: false, threadsReady: false, poolThreads: 0 };

export const isRunning = () => run.running;

/** The link to a run's settings (pairs from conlab-lab's `settings::query_of`). @param {[string, string][]} query */
export const linkFor = (query) => `${location.pathname}?${new URLSearchParams(query)}`;

/** Sets the form up for experiment `id` at its defaults. @param {string} id */
export function showExperiment(id) {
  const info = entry(id);
  if (!info) return;
  selectById('experiment-select').value = id;
  $('experiment-card').replaceChildren(
    el('p', { class: 'concept', text: `Book concept: ${info.concept}` }),
    el('p', { class: 'teaches', text: info.teaches }),
  );
  $('param-fields').replaceChildren(el('legend', { text: 'Parameters' }), presetButtons(info), ...info.params.map(paramField));
  $('variant-fields').replaceChildren(el('legend', { text: 'Variants' }), ...info.variants.map((variant) =>
    el('label', { title: variant.help },
      el('input', { type: 'checkbox', name: 'variant', value: variant.id, checked: true }), ` ${variant.id}`,
      el('small', { text: ` — ${variant.help}` }))));
  const maxThreads = Math.max(run.poolThreads, 1);
  inputById('threads').value = theCatalogue().default_threads.filter((t) => t <= maxThreads).join(',') || '1';
  inputById('trace').checked = info.shows_timeline;
  $('form-error').textContent = '';
}

/** @param {ParamSpec} spec */
function paramField(spec) {
  const id = `param-${spec.name}`;
  /** @type {HTMLInputElement | HTMLSelectElement} */
  let input;
  if (spec.type === 'choice') {
    input = el('select', { id, name: spec.name }, ...spec.choices.map((choice, i) =>
      el('option', { value: choice, text: choice, title: spec.details?.[i] ?? '', selected: choice === spec.default })));
  } else if (spec.type === 'bool') {
    input = el('input', { id, name: spec.name, type: 'checkbox', checked: spec.default });
  } else {
    input = el('input', { id, name: spec.name, type: 'number', min: spec.min, max: spec.max, step: spec.type === 'int' ? 1 : 'any',
      value: spec.default });
  }
  input.dataset.param = spec.name;
  input.oninput = () => send({ type: 'check', form: JSON.stringify(formSettings()) });
  return el('label', { for: id, title: spec.help }, `${spec.name} `, input, spec.unit ? ` ${spec.unit}` : '',
    el('small', { text: ` — ${spec.help}` }));
}

/** The field of parameter `name`, if the form has one. @param {string} name */
function paramInput(name) {
  return /** @type {HTMLInputElement | HTMLSelectElement | null} */ (document.querySelector(`[data-param="${CSS.escape(name)}"]`));
}

/**
 * Shows `value` (checked by conlab-lab) in parameter `name`'s field.
 * @param {string} name
 * @param {ParamValue} value
 */
function showParam(name, value) {
  const input = paramInput(name);
  if (input instanceof HTMLInputElement && input.type === 'checkbox') input.checked = value === true;
  else if (input) input.value = String(value);
}

/**
 * The presets above the parameters: every default, or the experiment's quick settings (small
 * sizes, well under a second; the CLI's --quick), both checked by conlab-lab.
 * @param {Entry} info
 */
function presetButtons(info) {
  const defaults = el('button', { type: 'button', 'data-preset': 'defaults', text: 'defaults' });
  const toDefaults = () => info.params.forEach((spec) => showParam(spec.name, spec.default));
  defaults.onclick = toDefaults;
  const quick = el('button', { type: 'button', 'data-preset': 'quick', text: 'quick', title: info.quick.join(' ') });
  quick.onclick = () => {
    toDefaults();
    Object.entries(info.quick_values).forEach(([name, value]) => showParam(name, value));
  };
  return el('p', { class: 'presets' }, 'Presets: ', defaults, ' ', quick, el('small', { text: ` — quick: ${info.quick.join(' ')}` }));
}

/**
 * The form as text, named as a permalink names its settings.
 * @returns {Record<string, string>}
 */
export function formSettings() {
  const info = current();
  /** @type {Record<string, string>} */
  const settings = { experiment: info.id };
  for (const spec of info.params) {
    const input = paramInput(spec.name);
    if (!input) continue;
    settings[spec.name] = input instanceof HTMLInputElement && input.type === 'checkbox' ? String(input.checked) : input.value;
  }
  const boxes = /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll('input[name="variant"]:checked'));
  settings.variants = [...boxes].map((box) => box.value).join(',');
  settings.threads = inputById('threads').value;
  settings.repeat = inputById('repeat').value;
  settings.warmup = inputById('warmup').value;
  // A profile samples the traced runs: it records them too.
  const profile = inputById('profile').checked;
  settings.trace = inputById('trace').checked || profile ? '1' : '0';
  settings.profile = profile ? '1' : '0';
  return settings;
}

/**
 * Fills the form with settings conlab-lab checked (a link's, a stored or an imported result's):
 * what did not fit keeps its default and is listed above the form, naming `source`.
 * @param {Filled} filled
 * @param {string} source
 */
export function fillForm(filled, source) {
  if (filled.experiment) {
    showExperiment(filled.experiment);
    Object.entries(filled.params).forEach(([name, value]) => showParam(name, value));
    const variants = filled.variants;
    if (variants) {
      const boxes = /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll('input[name="variant"]'));
      boxes.forEach((box) => { box.checked = variants.includes(box.value); });
    }
    if (filled.threads != null) inputById('threads').value = filled.threads;
    if (filled.repeat != null) inputById('repeat').value = String(filled.repeat);
    if (filled.warmup != null) inputById('warmup').value = String(filled.warmup);
    if (filled.trace != null) inputById('trace').checked = filled.trace;
    if (filled.profile != null) inputById('profile').checked = filled.profile;
  }
  $('link-error').textContent = filled.problems.length
    ? `${source} did not fit, so defaults are used for: ${filled.problems.join('; ')}.`
    : '';
}

/** The answer to a `check`: the first setting that does not fit, or nothing. @param {string} problem */
export function showProblem(problem) {
  if (!run.running) $('form-error').textContent = problem;
}

/**
 * The form as the catalogue's first load leaves it: run ranges and the default repeat set.
 * @param {number} poolThreads the pool the worker is starting
 */
export function setUpForm(poolThreads) {
  const catalogue = theCatalogue();
  run.poolThreads = poolThreads;
  inputById('repeat').value = String(catalogue.default_repeat);
  // The run ranges are the runner's (through the catalogue), not typed here.
  for (const [id, [min, max]] of /** @type {const} */ ([['repeat', catalogue.repeat_range], ['warmup', catalogue.warmup_range]])) {
    Object.assign(inputById(id), { min: String(min), max: String(max) });
  }
  $('run-form').addEventListener('submit', submit);
  $('cancel-button').addEventListener('click', cancel);
}

/**
 * The thread pool is up with `poolThreads` workers (0: it could not start, runs are
 * single-threaded): Run is enabled, and a thread list the pool cannot run falls back to 1.
 * @param {number} poolThreads
 */
export function poolReady(poolThreads) {
  if (!poolThreads && run.poolThreads) inputById('threads').value = '1';
  run.poolThreads = poolThreads;
  run.threadsReady = true;
}

export const threadsReady = () => run.threadsReady;
export const poolThreads = () => run.poolThreads;

/** @param {boolean} running */
export function setRunning(running) {
  run.running = running;
  buttonById('run-button').disabled = running || !run.threadsReady;
  buttonById('cancel-button').disabled = !running;
  selectById('experiment-select').disabled = running;
  if (!running) $('progress-text').textContent = '';
}

/** @param {SubmitEvent} event */
function submit(event) {
  event.preventDefault();
  if (run.running || !run.threadsReady) return;
  $('form-error').textContent = '';
  const settings = formSettings();
  // The address holds what is run (a reload or a shared link opens it; conlab-lab checks it
  // then). Here, not with the result: Chromium takes ~20 ms over it.
  history.replaceState(null, '', linkFor(Object.entries(settings)));
  setRunning(true);
  setStatus('running', `running ${settings.experiment}…`);
  /** @type {HTMLProgressElement} */ ($('progress')).value = 0;
  send({ type: 'run', form: JSON.stringify(settings) });
}

function cancel() {
  if (!run.running) return;
  if (cancelRun(run.poolThreads)) {
    setStatus('running', 'cancelling…');
  } else {
    setRunning(false);
    setStatus('cancelled', 'cancelled — restarting the worker');
  }
}
