// The lab page (main thread): renders the catalogue, forms and results; all work happens in
// worker.js. Nothing here blocks: the worker answers by message.

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') node.textContent = value;
    else if (value !== false && value != null) node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children);
  return node;
};

const state = { worker: null, catalogue: null, environment: null, poolThreads: 0, memory: null, cancelAddress: 0, running: false, last: null };

function setStatus(kind, text) {
  $('status').dataset.state = kind;
  $('status').textContent = text;
}

function startWorker() {
  const isolated = self.crossOriginIsolated === true;
  // The pool is sized for the widest experiment (thread-per-task) as well as the cores; surplus
  // workers sleep, and a run uses exactly the threads it asks for.
  // One more worker than cores: a FIFO pool of k workers also occupies its caller's thread.
  const threads = isolated ? Math.max((navigator.hardwareConcurrency || 1) + 1, 8) : 0;
  state.worker = new Worker('./worker.js', { type: 'module' });
  state.worker.onmessage = ({ data }) => handlers[data.type](data);
  state.worker.onerror = (event) => setStatus('error', `the worker failed: ${event.message || 'could not load worker.js'}`);
  state.worker.postMessage({ type: 'init', threads });
}

const handlers = {
  ready(data) {
    state.catalogue = JSON.parse(data.catalogue);
    state.environment = JSON.parse(data.environment);
    state.poolThreads = data.poolThreads;
    state.memory = data.memory;
    state.cancelAddress = data.cancelAddress;
    showEnvironment(data.poolError);
    if (!$('experiment-select').options.length) fillCatalogue();
    setStatus('ready', state.poolThreads ? `ready — ${state.poolThreads} worker threads` : 'ready — single thread (see the banner)');
    setRunning(false);
  },
  processes(data) {
    // Process pools (ipc-cost, process-overhead, the `process` variants) run on these.
    document.body.dataset.processWorkers = String(data.count);
    const value = data.error
      ? `unavailable: ${data.error}`
      : `${data.count} Web Workers, each its own wasm instance (loaded in ${Math.round(data.startMs)} ms)`;
    $('env-list').append(el('dt', { text: 'process workers' }), el('dd', { text: value }));
  },
  fatal(data) {
    setStatus('error', `the lab could not start: ${data.message}`);
  },
  progress(data) {
    const progress = JSON.parse(data.progress);
    $('progress').max = Math.max(progress.total, 1);
    $('progress').value = progress.done;
    $('progress-text').textContent = progress.variant
      ? `${progress.variant} · ${progress.threads} thread${progress.threads === 1 ? '' : 's'}${progress.warmup ? ' (warm-up)' : ''} — run ${progress.done + 1} of ${progress.total}`
      : 'summarising…';
  },
  result(data) {
    setRunning(false);
    const finished = JSON.parse(data.finished);
    state.last = finished;
    showResult(finished);
    setStatus('done', finished.result.all_checks_passed ? 'done — all correctness checks passed' : 'done — a correctness check FAILED');
  },
  error(data) {
    setRunning(false);
    $('form-error').textContent = data.message;
    setStatus(data.message === 'cancelled' ? 'cancelled' : 'error', data.message === 'cancelled' ? 'cancelled' : 'the run failed');
  },
};

function showEnvironment(poolError) {
  const env = state.environment;
  const rows = [
    ['cores (hardwareConcurrency)', String(navigator.hardwareConcurrency || 'unknown')],
    ['cross-origin isolated', self.crossOriginIsolated ? 'yes' : 'no'],
    ['wasm threads', state.poolThreads ? `on — pool of ${state.poolThreads} workers` : 'off'],
    ['timer resolution', `${(env.timer_resolution_ns / 1000).toFixed(1)} µs`],
    ['build', `conlab ${env.version} (${env.profile})`],
  ];
  const list = $('env-list');
  for (const [term, value] of rows) list.append(el('dt', { text: term }), el('dd', { text: value }));
  if (poolError) {
    const banner = $('isolation-banner');
    banner.hidden = false;
    banner.replaceChildren(
      el('strong', { text: 'Running on a single thread. ' }),
      `Wasm threads need SharedArrayBuffer, which browsers grant only to cross-origin isolated pages (${poolError}). ` +
        'Serve the lab with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp — ' +
        '`conlab serve` and `cargo xtask lab` do. Sequential variants still run here.',
    );
  }
}

function fillCatalogue() {
  const select = $('experiment-select');
  const topics = new Map();
  for (const info of state.catalogue.experiments) {
    if (!topics.has(info.topic)) topics.set(info.topic, el('optgroup', { label: info.topic }));
    topics.get(info.topic).append(el('option', { value: info.id, text: info.title }));
  }
  select.append(...topics.values());
  select.disabled = false;
  select.onchange = () => showExperiment(select.value);
  showExperiment(select.value);
}

const current = () => state.catalogue.experiments.find((info) => info.id === $('experiment-select').value);

function showExperiment(id) {
  const info = state.catalogue.experiments.find((i) => i.id === id);
  $('experiment-card').replaceChildren(
    el('p', { class: 'concept', text: `Book concept: ${info.concept}` }),
    el('p', { class: 'teaches', text: info.teaches }),
  );
  const params = $('param-fields');
  params.replaceChildren(el('legend', { text: 'Parameters' }));
  for (const spec of info.params) params.append(paramField(spec));
  const variants = $('variant-fields');
  variants.replaceChildren(el('legend', { text: 'Variants' }));
  for (const variant of info.variants) {
    variants.append(el('label', { title: variant.help },
      el('input', { type: 'checkbox', name: 'variant', value: variant.id, checked: true }), ` ${variant.id}`,
      el('small', { text: ` — ${variant.help}` })));
  }
  const maxThreads = Math.max(state.poolThreads, 1);
  $('threads').value = state.catalogue.default_threads.filter((t) => t <= maxThreads).join(',') || '1';
  $('trace').checked = info.shows_timeline;
  $('form-error').textContent = '';
}

function describeKind(spec) {
  if (spec.type === 'int') return `an integer from ${spec.min} to ${spec.max}`;
  if (spec.type === 'float') return `a number from ${spec.min} to ${spec.max}`;
  if (spec.type === 'choice') return `one of ${spec.choices.join(', ')}`;
  return 'true or false';
}

function paramField(spec) {
  const id = `param-${spec.name}`;
  let input;
  if (spec.type === 'choice') {
    input = el('select', { id, name: spec.name }, ...spec.choices.map((c, i) => el('option', { value: c, text: c, title: spec.details?.[i] ?? '', selected: c === spec.default })));
  } else if (spec.type === 'bool') {
    input = el('input', { id, name: spec.name, type: 'checkbox', checked: spec.default === true });
  } else {
    input = el('input', { id, name: spec.name, type: 'number', min: spec.min, max: spec.max, step: spec.type === 'int' ? 1 : 'any', value: spec.default });
  }
  input.dataset.param = spec.name;
  input.oninput = () => { $('form-error').textContent = validateParam(spec, input) || ''; };
  return el('label', { for: id, title: spec.help }, `${spec.name} `, input, spec.unit ? ` ${spec.unit}` : '', el('small', { text: ` — ${spec.help}` }));
}

// The same rule and wording as conlab-core's ParamSpec::parse, so the page and CLI agree.
function validateParam(spec, input) {
  if (spec.type === 'bool' || spec.type === 'choice') return null;
  const text = input.value.trim();
  const value = Number(text);
  const ok = text !== '' && Number.isFinite(value) && value >= spec.min && value <= spec.max && (spec.type !== 'int' || Number.isInteger(value));
  return ok ? null : `parameter \`${spec.name}\`: expected ${describeKind(spec)}, got \`${text}\``;
}

function buildRequest() {
  const info = current();
  const params = {};
  for (const spec of info.params) {
    const input = document.querySelector(`[data-param="${spec.name}"]`);
    const problem = validateParam(spec, input);
    if (problem) throw new Error(problem);
    params[spec.name] = spec.type === 'bool' ? input.checked : input.value.trim();
  }
  const variants = [...document.querySelectorAll('input[name="variant"]:checked')].map((box) => box.value);
  if (!variants.length) throw new Error('variant: choose at least one variant');
  const maxThreads = Math.max(state.poolThreads, 1);
  const threads = $('threads').value.split(',').map((t) => t.trim()).filter(Boolean).map(Number);
  if (!threads.length || threads.some((t) => !Number.isInteger(t) || t < 1 || t > maxThreads)) {
    throw new Error(`parameter \`threads\`: expected integers from 1 to ${maxThreads}, got \`${$('threads').value}\``);
  }
  return {
    experiment: info.id, params, variants, threads,
    repeat: Number($('repeat').value), warmup: Number($('warmup').value), trace: $('trace').checked,
  };
}

function setRunning(running) {
  state.running = running;
  $('run-button').disabled = running || !state.catalogue;
  $('cancel-button').disabled = !running;
  $('experiment-select').disabled = running || !state.catalogue;
  if (!running) $('progress-text').textContent = '';
}

function run(event) {
  event.preventDefault();
  $('form-error').textContent = '';
  let request;
  try {
    request = buildRequest();
  } catch (error) {
    $('form-error').textContent = error.message;
    return;
  }
  setRunning(true);
  setStatus('running', `running ${request.experiment}…`);
  $('progress').value = 0;
  state.worker.postMessage({ type: 'run', request: JSON.stringify(request) });
}

function cancel() {
  if (!state.running) return;
  if (state.memory) {
    // The worker is inside the run; the flag is a byte of the shared wasm memory.
    Atomics.store(new Uint8Array(state.memory.buffer), state.cancelAddress, 1);
    setStatus('running', 'cancelling…');
  } else {
    state.worker.terminate();
    setRunning(false);
    setStatus('cancelled', 'cancelled — restarting the worker');
    startWorker();
  }
}

const times = (x) => (x == null ? '–' : `${x.toFixed(2)}×`);

// The table comes from conlab-core's report::table_data: the CLI's columns and formatting.
function resultTable({ headers, rows }) {
  const body = rows.map((row) => el('tr', { 'data-variant': row.variant, 'data-threads': row.threads, 'data-check': row.check },
    ...row.cells.map((text) => el('td', { text }))));
  return el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { text: h })))), el('tbody', {}, ...body));
}

function showResult({ result, table, chart_svg, fits, csv, chrome_trace, timeline_svg }) {
  $('results').hidden = false;
  const baseline = result.baseline;
  const best = result.cells.filter((c) => c.speedup_vs_baseline != null).sort((a, b) => b.speedup_vs_baseline - a.speedup_vs_baseline)[0];
  $('result-summary').textContent = `${result.title}. ${best ? `Best: ${best.variant} on ${best.threads} thread${best.threads === 1 ? '' : 's'}, ${times(best.speedup_vs_baseline)} vs ${baseline}. ` : ''}` +
    `${result.repeat} runs per cell after ${result.warmup} warm-up; whole run ${result.wall_seconds.toFixed(2)} s.`;
  $('chart').innerHTML = chart_svg; // built by conlab-core's report::chart_svg, text XML-escaped
  $('fits').replaceChildren(...fits.map((line) => el('li', { text: line })));
  $('table').replaceChildren(resultTable(table));
  $('timeline').hidden = !timeline_svg;
  $('timeline-chart').innerHTML = timeline_svg ?? ''; // built by conlab-core's report::timeline_svg, text XML-escaped
  const download = (name, type, text) => el('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name, text: name });
  const stem = `conlab-${result.experiment}`;
  const links = [download(`${stem}.json`, 'application/json', JSON.stringify(result, null, 2)), download(`${stem}.csv`, 'text/csv', csv),
    download(`${stem}.svg`, 'image/svg+xml', chart_svg)];
  if (chrome_trace) links.push(download(`${stem}.trace.json`, 'application/json', JSON.stringify(chrome_trace)));
  if (timeline_svg) links.push(download(`${stem}.timeline.svg`, 'image/svg+xml', timeline_svg));
  $('exports').replaceChildren('Export: ', ...links.flatMap((link, i) => (i ? [' · ', link] : [link])));
}

$('run-form').addEventListener('submit', run);
$('cancel-button').addEventListener('click', cancel);
startWorker();
