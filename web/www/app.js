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

const state = { worker: null, catalogue: null, environment: null, poolThreads: 0, threadsReady: false, memory: null, cancelAddress: 0, running: false, last: null, imported: null };

// Long tasks (> 50 ms) on this, the main thread: the lab promises none while a run goes on
// (the browser e2e suite reads this list).
const longTasks = [];
window.conlabLongTasks = longTasks;
try {
  new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => ({ start: e.startTime, duration: e.duration }))))
    .observe({ type: 'longtask', buffered: true });
} catch {
  // Not every browser reports long tasks (Firefox does not); the lab works without.
}

const HISTORY_KEY = 'conlab.history';
const HISTORY_SIZE = 10;

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
  state.threadsReady = false;
  state.worker = new Worker('./worker.js', { type: 'module' });
  state.worker.onmessage = ({ data }) => {
    if (data.type === 'ready' || data.type === 'fatal') clearTimeout(state.startWatchdog);
    handlers[data.type](data);
  };
  state.worker.onerror = (event) => setStatus('error', `the worker failed: ${event.message || 'could not load worker.js'}`);
  state.worker.postMessage({ type: 'init', threads });
  // Now and then a browser never finishes starting a worker pool (seen in Firefox right after a
  // navigation): the page does not hang on it — it starts the worker again, twice at most.
  clearTimeout(state.startWatchdog);
  state.startWatchdog = setTimeout(() => {
    state.worker.terminate();
    state.startAttempts = (state.startAttempts || 0) + 1;
    if (state.startAttempts > 2) {
      setStatus('error', 'the worker did not start in three tries of 15 s; reload the page');
      return;
    }
    setStatus('loading', `the worker did not start in 15 s; starting it again (try ${state.startAttempts + 1} of 3)…`);
    startWorker();
  }, 15000);
}

const handlers = {
  // wasm runs: the catalogue, forms, stored results and the debugging lab work; Run waits for
  // the thread pool ('ready'). The forms assume the pool the worker is starting.
  loaded(data) {
    state.catalogue = JSON.parse(data.catalogue);
    state.environment = JSON.parse(data.environment);
    if (!$('experiment-select').options.length) {
      state.interactiveMs = Math.round(performance.now());
      state.poolThreads = data.threads;
      $('repeat').value = String(state.catalogue.default_repeat);
      // The run ranges are the runner's (through the catalogue), not typed here.
      for (const id of ['repeat', 'warmup']) {
        const [min, max] = state.catalogue[`${id}_range`];
        Object.assign($(id), { min: String(min), max: String(max) });
      }
      fillCatalogue();
      setUpDebugger(JSON.parse(data.scenarios));
      const fromLink = applyLink(location.search) || openDebuggerLink(location.search);
      showHistory();
      // Newcomers see the catalogue; a link or a returning visit goes straight to the lab.
      $('catalogue').open = !fromLink && !storedHistory().length;
      if (!fromLink) openLatest();
    }
    if (data.threads) setStatus('loading', `starting ${data.threads} worker threads…`);
    setRunning(false);
  },
  ready(data) {
    state.environment = JSON.parse(data.environment);
    state.poolThreads = data.poolThreads;
    state.memory = data.memory;
    state.cancelAddress = data.cancelAddress;
    if (state.readyMs === undefined) {
      state.readyMs = Math.round(performance.now());
      state.startup = data.startup;
      showEnvironment(data.poolError);
    }
    fitThreadsToPool();
    state.threadsReady = true;
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
  waiting(data) {
    $('progress-text').textContent = `waiting for ${data.what}…`;
  },
  imported(data) {
    if (data.error) {
      $('import-status').textContent = `${data.name} cannot be imported: ${data.error}`;
      return;
    }
    state.imported = data.text;
    applySettings(requestToSettings(data), 'The imported result');
    $('import-status').textContent = `Imported ${data.experiment} measured on ${data.platform}; ` +
      'the form now holds its settings — run it here to compare.';
    compareWithImported();
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
    const finished = data.finished;
    state.last = finished;
    // A stored result was checked by conlab-lab before it got here: its settings fill the form.
    if (data.stored) applySettings(requestToSettings(requestOf(finished.result)), 'The stored result');
    showResult(finished, data.exports);
    if (data.stored) {
      const shown = `showing a stored result of ${finished.result.experiment}`;
      if (state.threadsReady) setStatus('ready', `ready — ${shown}`);
      else setStatus('loading', state.poolThreads ? `${shown}; starting ${state.poolThreads} worker threads…` : shown);
    } else {
      remember(finished.result);
      setStatus('done', finished.result.all_checks_passed ? 'done — all correctness checks passed' : 'done — a correctness check FAILED');
    }
    compareWithImported();
  },
  timeline(data) {
    state.zoom = { from: data.from, to: data.to };
    $('timeline-chart').innerHTML = data.svg; // built by conlab-lab's report::timeline_window_svg, text XML-escaped
    $('timeline-window').textContent = data.from === 0 && data.to === 1 ? '' : `showing ${(data.from * 100).toFixed(1)}% – ${(data.to * 100).toFixed(1)}% of each run`;
  },
  'sim-state'(data) {
    showSimState(data);
  },
  'sim-search'(data) {
    showSimSearch(data);
  },
  comparison(data) {
    $('comparison').hidden = false;
    if (data.error) {
      $('comparison-table').replaceChildren(el('p', { class: 'error', text: data.error }));
    } else {
      $('comparison-table').replaceChildren(resultTable(JSON.parse(data.table)));
    }
  },
  error(data) {
    if (data.stored) {
      // A stored result that no longer reads: said where the history is; the page goes on.
      $('history-status').textContent = `A stored result could not be opened: ${data.message}`;
      if (state.threadsReady) setStatus('ready', 'ready');
      return;
    }
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
    ['browser', navigator.userAgent],
    ['page ready in', `${state.interactiveMs} ms (the worker started and its wasm in ${Math.round(state.startup.wasmMs)} ms: catalogue, forms, debugging lab)`],
    ['threads ready in', `${state.readyMs} ms (the pool of worker threads in ${Math.round(state.startup.poolMs)} ms: Run)`],
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
  fillCards();
  select.disabled = false;
  select.onchange = () => showExperiment(select.value);
  showExperiment(select.value);
}

// The catalogue as cards, a section per topic: what each experiment teaches, one click (or
// Enter) from its form.
function fillCards() {
  const topics = new Map();
  for (const info of state.catalogue.experiments) {
    if (!topics.has(info.topic)) topics.set(info.topic, []);
    const card = el('button', { type: 'button', class: 'card', 'data-experiment': info.id, title: info.teaches },
      el('strong', { text: info.title }), el('span', { class: 'card-concept', text: info.concept }), el('span', { class: 'card-teaches', text: info.teaches }));
    card.onclick = () => {
      if (state.running) return;
      $('experiment-select').value = info.id;
      showExperiment(info.id);
      $('catalogue').open = false;
      $('experiment').scrollIntoView({ behavior: 'smooth' });
      $('experiment-select').focus({ preventScroll: true });
    };
    topics.get(info.topic).push(card);
  }
  $('catalogue-topics').replaceChildren(...[...topics].map(([topic, cards]) =>
    el('section', { class: 'topic', 'data-topic': topic }, el('h3', { text: `${topic} (${cards.length})` }), el('div', { class: 'cards' }, ...cards))));
}

const current = () => state.catalogue.experiments.find((info) => info.id === $('experiment-select').value);

function showExperiment(id) {
  const info = state.catalogue.experiments.find((i) => i.id === id);
  $('experiment-card').replaceChildren(
    el('p', { class: 'concept', text: `Book concept: ${info.concept}` }),
    el('p', { class: 'teaches', text: info.teaches }),
  );
  const params = $('param-fields');
  params.replaceChildren(el('legend', { text: 'Parameters' }), presetButtons(info));
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

// The same rule and wording as conlab-lab's ParamSpec::parse, so the page and CLI agree.
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

// A pool smaller than the forms assumed (it failed to start): thread counts it cannot run go.
function fitThreadsToPool() {
  const maxThreads = Math.max(state.poolThreads, 1);
  const asked = $('threads').value.split(',').map((t) => Number(t.trim()));
  const runnable = asked.filter((t) => t <= maxThreads);
  if (runnable.length < asked.length) $('threads').value = (runnable.length ? runnable : [1]).join(',');
}

function setRunning(running) {
  state.running = running;
  $('run-button').disabled = running || !state.threadsReady;
  $('cancel-button').disabled = !running;
  $('experiment-select').disabled = running || !state.catalogue;
  if (!running) $('progress-text').textContent = '';
}

function run(event) {
  event.preventDefault();
  if (state.running || !state.threadsReady) return;
  $('form-error').textContent = '';
  let request;
  try {
    request = buildRequest();
  } catch (error) {
    $('form-error').textContent = error.message;
    return;
  }
  history.replaceState(null, '', linkFor(request));
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

// The table comes from conlab-lab's report::table_data: the CLI's columns and formatting.
function resultTable({ headers, rows }) {
  const body = rows.map((row) => el('tr', { 'data-variant': row.variant, 'data-threads': row.threads, 'data-check': row.check },
    ...row.cells.map((text) => el('td', { text }))));
  return el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { text: h })))), el('tbody', {}, ...body));
}

function showResult({ result, traced, table, chart_svg, fits, notes, findings, csv, timeline_svg, depth_svg, latency_svgs }, exports) {
  $('results').hidden = false;
  const baseline = result.baseline;
  const best = result.cells.filter((c) => c.speedup_vs_baseline != null && c.unchecked == null).sort((a, b) => b.speedup_vs_baseline - a.speedup_vs_baseline)[0];
  $('result-summary').textContent = `${result.title}. ${best ? `Best: ${best.variant} on ${best.threads} thread${best.threads === 1 ? '' : 's'}, ${times(best.speedup_vs_baseline)} vs ${baseline}. ` : ''}` +
    `${result.repeat} runs per cell after ${result.warmup} warm-up; whole run ${result.wall_seconds.toFixed(2)} s.`;
  $('chart').innerHTML = chart_svg; // built by conlab-lab's report::chart_svg, text XML-escaped
  $('fits').replaceChildren(...fits.map((line) => el('li', { text: line })));
  $('table').replaceChildren(resultTable(table));
  $('notes').replaceChildren(...notes.map((line) => el('li', { text: line })));
  $('findings').hidden = findings.length === 0;
  $('findings-list').replaceChildren(...findings.map((line) => el('li', { text: line })));
  $('timeline').hidden = !timeline_svg;
  $('timeline-chart').innerHTML = timeline_svg ?? ''; // built by conlab-lab's report::timeline_svg, text XML-escaped
  state.zoom = { from: 0, to: 1 };
  $('timeline-window').textContent = '';
  $('latency').hidden = latency_svgs.length === 0;
  $('latency-chart').innerHTML = latency_svgs.join(''); // built by conlab-lab's report::latency_svgs, text XML-escaped
  $('depth').hidden = !depth_svg;
  $('depth-chart').innerHTML = depth_svg ?? ''; // built by conlab-lab's report::depth_svg, text XML-escaped
  const blobLink = (name, blob) => el('a', { href: URL.createObjectURL(blob), download: name, text: name });
  const download = (name, type, text) => blobLink(name, new Blob([text], { type }));
  const stem = `conlab-${result.experiment}`;
  const links = [blobLink(`${stem}.json`, exports.json), download(`${stem}.csv`, 'text/csv', csv),
    download(`${stem}.svg`, 'image/svg+xml', chart_svg)];
  links.push(pngLink(`${stem}.png`, chart_svg));
  if (exports.chromeTrace) links.push(blobLink(`${stem}.trace.json`, exports.chromeTrace));
  if (timeline_svg) links.push(download(`${stem}.timeline.svg`, 'image/svg+xml', timeline_svg), pngLink(`${stem}.timeline.png`, timeline_svg));
  latency_svgs.forEach((svg, i) => links.push(download(`${stem}.latency${i ? i + 1 : ''}.svg`, 'image/svg+xml', svg)));
  if (depth_svg) links.push(download(`${stem}.depth.svg`, 'image/svg+xml', depth_svg));
  $('exports').replaceChildren('Export: ', ...links.flatMap((link, i) => (i ? [' · ', link] : [link])),
    ' · ', el('a', { href: linkFor({ ...requestOf(result), trace: traced }), text: 'link to these settings' }));
}

// ---- Timeline zoom: the worker redraws a window of each cell's run, so merged spans come apart

function zoomTo(from, to) {
  if (!state.last?.traced || state.running) return;
  const width = Math.max(to - from, 1e-6);
  const start = Math.min(Math.max(from, 0), 1 - width);
  state.worker.postMessage({ type: 'timeline', from: start, to: Math.min(start + width, 1) });
}

// Zooms in (half the width) or out (twice) keeping the point at `at` (a fraction of the shown
// window) where it is, or pans by a quarter of the window.
function zoom(action, at = 0.5) {
  const { from, to } = state.zoom ?? { from: 0, to: 1 };
  const width = to - from;
  const point = from + width * at;
  const around = (newWidth) => zoomTo(point - newWidth * at, point - newWidth * at + newWidth);
  if (action === 'in') around(width / 2);
  else if (action === 'out') around(Math.min(width * 2, 1));
  else if (action === 'left') zoomTo(from - width / 4, to - width / 4);
  else if (action === 'right') zoomTo(from + width / 4, to + width / 4);
  else zoomTo(0, 1);
}

function setUpTimelineZoom() {
  $('timeline-controls').querySelectorAll('button').forEach((button) => { button.onclick = () => zoom(button.dataset.zoom); });
  $('timeline-chart').addEventListener('keydown', (event) => {
    const action = { '+': 'in', '=': 'in', '-': 'out', ArrowLeft: 'left', ArrowRight: 'right', 0: 'reset' }[event.key];
    if (action) {
      event.preventDefault();
      zoom(action);
    }
  });
  $('timeline-chart').addEventListener('wheel', (event) => {
    const svg = $('timeline-chart').querySelector('svg');
    if (!svg) return;
    event.preventDefault();
    // The plot spans x = 110 … 884 of the SVG's 900 units (report/timeline.rs).
    const box = svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * 900;
    zoom(event.deltaY < 0 ? 'in' : 'out', Math.min(Math.max((x - 110) / 774, 0), 1));
  }, { passive: false });
}

// A download link for an SVG as PNG, drawn on a canvas (at twice its size) when first clicked.
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

async function svgToPng(svgText) {
  const source = URL.createObjectURL(new Blob([svgText], { type: 'image/svg+xml' }));
  const image = new Image();
  await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = reject; image.src = source; });
  const scale = 2;
  const canvas = el('canvas', { width: image.naturalWidth * scale, height: image.naturalHeight * scale });
  const context = canvas.getContext('2d');
  context.fillStyle = '#fff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.scale(scale, scale);
  context.drawImage(image, 0, 0);
  URL.revokeObjectURL(source);
  const png = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  return URL.createObjectURL(png);
}

// ---- Permalinks: the URL holds the experiment and its settings -------------------------------

function linkFor(request) {
  const query = new URLSearchParams({ experiment: request.experiment });
  for (const [name, value] of Object.entries(request.params)) query.set(name, String(value));
  query.set('variants', request.variants.join(','));
  query.set('threads', request.threads.join(','));
  query.set('repeat', String(request.repeat));
  query.set('warmup', String(request.warmup));
  if (request.trace) query.set('trace', '1');
  return `${location.pathname}?${query}`;
}

// The settings a result was run with, as a request.
function requestOf(result) {
  return { experiment: result.experiment, params: result.params, variants: result.variants, threads: result.threads,
    repeat: result.repeat, warmup: result.warmup, trace: !!result.trace };
}

// Fills the form from a link's query (or an imported result's settings). Whatever does not fit
// the experiment's schema is left at its default and listed above the form. True if the query
// named an experiment.
function applyLink(search) {
  const query = new URLSearchParams(search);
  if (!query.has('experiment')) return false;
  applySettings(Object.fromEntries(query), 'This link');
  return true;
}

function applySettings(settings, source) {
  const problems = [];
  const { experiment, variants, threads, repeat, warmup, trace, ...params } = settings;
  const info = state.catalogue.experiments.find((i) => i.id === experiment);
  if (!info) {
    problems.push(`unknown experiment \`${experiment}\`; showing ${current().id}`);
  } else {
    $('experiment-select').value = info.id;
    showExperiment(info.id);
    for (const [name, raw] of Object.entries(params)) {
      const problem = setParam(info, name, String(raw));
      if (problem) problems.push(problem);
    }
    if (variants != null) {
      const wanted = String(variants).split(',').filter(Boolean);
      const known = info.variants.map((v) => v.id);
      const unknown = wanted.filter((v) => !known.includes(v));
      if (unknown.length || !wanted.length) problems.push(`variant: ${info.id} has ${known.join(', ')}, got \`${variants}\``);
      else document.querySelectorAll('input[name="variant"]').forEach((box) => { box.checked = wanted.includes(box.value); });
    }
    if (threads != null) $('threads').value = String(threads);
    for (const [id, raw] of [['repeat', repeat], ['warmup', warmup]]) {
      if (raw == null) continue;
      const [min, max] = state.catalogue[`${id}_range`];
      const value = Number(raw);
      if (Number.isInteger(value) && value >= min && value <= max) $(id).value = String(value);
      else problems.push(`parameter \`${id}\`: expected an integer from ${min} to ${max}, got \`${raw}\``);
    }
    if (trace != null) $('trace').checked = trace === '1' || trace === 'true' || trace === true;
  }
  $('link-error').textContent = problems.length ? `${source} did not fit, so defaults are used for: ${problems.join('; ')}.` : '';
}

// Sets a parameter's field from text (a link, a preset); the field keeps its default and the
// problem is returned when the text does not fit the schema.
function setParam(info, name, text) {
  const spec = info.params.find((p) => p.name === name);
  const input = document.querySelector(`[data-param="${CSS.escape(name)}"]`);
  if (!spec || !input) return `parameter \`${name}\`: ${info.id} has no such parameter`;
  if (spec.type === 'bool') {
    if (!['true', '1', 'false', '0'].includes(text)) return `parameter \`${name}\`: expected true or false, got \`${text}\``;
    input.checked = text === 'true' || text === '1';
  } else if (spec.type === 'choice') {
    if (!spec.choices.includes(text)) return `parameter \`${name}\`: expected ${describeKind(spec)}, got \`${text}\``;
    input.value = text;
  } else {
    input.value = text;
    const problem = validateParam(spec, input);
    if (problem) {
      input.value = spec.default;
      return problem;
    }
  }
  return null;
}

// The presets above the parameters: every default, or the experiment's quick settings (small
// sizes, well under a second; the CLI's --quick).
function presetButtons(info) {
  const defaults = el('button', { type: 'button', 'data-preset': 'defaults', text: 'defaults' });
  defaults.onclick = () => info.params.forEach((spec) => setParam(info, spec.name, String(spec.default)));
  const quick = el('button', { type: 'button', 'data-preset': 'quick', text: 'quick', title: info.quick.join(' ') });
  quick.onclick = () => {
    info.params.forEach((spec) => setParam(info, spec.name, String(spec.default)));
    for (const assignment of info.quick) {
      const at = assignment.indexOf('=');
      setParam(info, assignment.slice(0, at), assignment.slice(at + 1));
    }
  };
  return el('p', { class: 'presets' }, 'Presets: ', defaults, ' ', quick, el('small', { text: ` — quick: ${info.quick.join(' ')}` }));
}

// ---- History: the last results, kept in localStorage -----------------------------------------

// The stored entries that are entries at all (what is in them is checked when one is opened).
function storedHistory() {
  try {
    const entries = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(entries) ? entries.filter((entry) => entry && typeof entry === 'object') : [];
  } catch {
    return [];
  }
}

function remember(result) {
  // The page's result never holds the trace (the worker keeps it), so entries stay small.
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

function showHistory() {
  const items = storedHistory().map((entry, index) => el('li', {},
    el('button', { type: 'button', 'data-history': index, text: `${entry.experiment}` }),
    ` ${new Date(entry.when).toLocaleString()} — ${entry.title ?? ''}`));
  $('history-list').replaceChildren(...items);
  $('history-list').querySelectorAll('button').forEach((button) => {
    button.onclick = () => openStored(storedHistory()[Number(button.dataset.history)]);
  });
  $('history-section').hidden = !items.length;
}

function openStored(entry) {
  if (!entry || state.running) return;
  $('history-status').textContent = '';
  state.worker.postMessage({ type: 'render', result: String(entry.result) });
}

function openLatest() {
  const [latest] = storedHistory();
  if (latest) openStored(latest);
}

function requestToSettings(request) {
  return { experiment: request.experiment, ...request.params, variants: request.variants.join(','), threads: request.threads.join(','),
    repeat: request.repeat, warmup: request.warmup, trace: request.trace ? '1' : '0' };
}

// ---- Import a native result and compare ------------------------------------------------------

// conlab-lab checks the file (in the worker) and answers with its settings or what is wrong.
async function importFile(event) {
  const [file] = event.target.files;
  if (!file) return;
  $('import-status').textContent = `reading ${file.name}…`;
  state.worker.postMessage({ type: 'import', name: file.name, text: await file.text() });
}

function compareWithImported() {
  if (!state.imported || !state.last) return;
  state.worker.postMessage({ type: 'compare', here: JSON.stringify(state.last.result), there: state.imported });
}

// ---- Debugging lab: the step mode over conlab-core's deterministic scheduler (sim) ------------

const sim = { scenarios: [], schedule: '', found: null, playing: null, notice: null };

const currentScenario = () => sim.scenarios.find((s) => s.id === $('sim-scenario').value);

function setUpDebugger(scenarios) {
  sim.scenarios = scenarios;
  const select = $('sim-scenario');
  select.replaceChildren(...scenarios.map((s) => el('option', { value: s.id, text: `${s.id} — ${s.title}` })));
  select.onchange = () => openScenario(select.value, '');
  $('sim-reset').onclick = () => simGo('');
  $('sim-undo').onclick = () => simGo(sim.schedule.slice(0, -1));
  $('sim-search').onclick = simSearch;
  $('sim-next').onclick = simNext;
  $('sim-play').onclick = simPlay;
  $('sim-threads').addEventListener('keydown', (event) => {
    const letter = event.key.toUpperCase();
    if (/^[A-Z]$/.test(letter) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      simGo(sim.schedule + letter);
    }
  });
  openScenario(scenarios[0].id, '');
}

// `?scenario=abba-deadlock&schedule=AB` opens the step mode there.
function openDebuggerLink(search) {
  const query = new URLSearchParams(search);
  const id = query.get('scenario');
  if (!id) return false;
  if (!sim.scenarios.some((s) => s.id === id)) {
    // Shown with the state that is on its way (the first scenario's).
    sim.notice = `unknown scenario \`${id}\`; showing ${sim.scenarios[0].id}`;
    return false;
  }
  openScenario(id, (query.get('schedule') || '').toUpperCase());
  $('debugger').scrollIntoView();
  return true;
}

function openScenario(id, schedule) {
  $('sim-scenario').value = id;
  const scenario = currentScenario();
  const twin = scenario.twin ? ` Its ${scenario.buggy ? 'fix' : 'buggy twin'}: ${scenario.twin}.` : '';
  $('sim-story').textContent = `${scenario.buggy ? 'Bug' : 'Fix'}: ${scenario.story}${twin}`;
  sim.found = null;
  $('sim-search-result').textContent = '';
  simGo(schedule);
}

function simGo(schedule) {
  state.worker.postMessage({ type: 'sim-state', scenario: $('sim-scenario').value, schedule });
}

function showSimState(data) {
  if (data.error) {
    $('sim-error').textContent = data.error;
    stopPlaying();
    return;
  }
  $('sim-error').textContent = sim.notice ?? '';
  sim.notice = null;
  const { run, snapshot, failure, wait_for_svg } = JSON.parse(data.state);
  sim.schedule = run.schedule;
  $('sim-schedule').textContent = run.schedule || '(no steps yet)';
  const scenario = currentScenario();
  const last = run.steps[run.steps.length - 1];
  $('sim-threads').replaceChildren(...scenario.listing.threads.map((thread, index) => {
    const now = snapshot.threads[index];
    const lines = thread.lines.map((text, line) => el('li', {
      class: [line === now.line ? 'current' : '', last && last.thread === thread.letter && last.line === line ? 'last' : ''].join(' ').trim(),
      text,
    }));
    const registers = Object.entries(now.registers).map(([name, value]) => `${name} = ${value}`).join(', ');
    const step = el('button', { type: 'button', 'data-step': thread.letter, disabled: !now.enabled || !!failure,
      text: `run ${thread.letter}` });
    step.onclick = () => simGo(sim.schedule + thread.letter);
    return el('div', { class: 'sim-thread', 'data-thread': thread.letter, 'data-state': now.state },
      el('h3', { text: thread.name === String(thread.letter) ? thread.name : `${thread.letter} — ${thread.name}` }),
      el('p', { class: 'sim-state', text: now.state + (registers ? ` · ${registers}` : '') }),
      el('ol', { start: 1 }, ...lines), step);
  }));
  const rows = [
    ...Object.entries(snapshot.vars).map(([name, value]) => [name, String(value)]),
    ...Object.entries(snapshot.locks).map(([name, holder]) => [name, holder ? `held by ${holder}` : 'free']),
    ...Object.entries(snapshot.semaphores).map(([name, permits]) => [name, `${permits} permits`]),
  ];
  $('sim-shared').replaceChildren(el('table', {}, el('caption', { text: 'shared state' }),
    el('tbody', {}, ...rows.map(([name, value]) => el('tr', { 'data-name': name }, el('th', { text: name }), el('td', { text: value }))))));
  const finished = snapshot.threads.every((t) => t.line == null);
  const outcome = $('sim-outcome');
  outcome.className = failure ? 'goal' : finished ? 'finished' : '';
  outcome.dataset.kind = run.failure?.kind ?? (finished ? 'finished' : '');
  outcome.textContent = failure ? `Goal reached — ${failure}` : finished ? 'Every thread finished and every check holds.' : '';
  $('sim-graph').innerHTML = wait_for_svg ?? ''; // built by conlab-lab's report::wait_for_svg, text XML-escaped
  const canReplay = sim.found && sim.found.startsWith(sim.schedule) && sim.found.length > sim.schedule.length;
  $('sim-next').disabled = !canReplay;
  $('sim-play').disabled = !canReplay;
  if (!canReplay) stopPlaying();
  const query = new URLSearchParams({ scenario: scenario.id, schedule: sim.schedule });
  if (new URLSearchParams(location.search).has('scenario') || sim.schedule) history.replaceState(null, '', `${location.pathname}?${query}`);
}

function simSearch() {
  $('sim-search-result').textContent = 'searching…';
  state.worker.postMessage({ type: 'sim-search', scenario: $('sim-scenario').value, strategy: $('sim-strategy').value,
    seed: Math.floor(Math.random() * 1e9), runs: 1000, depth: 3, bound: 2 });
}

function showSimSearch(data) {
  if (data.error) {
    $('sim-search-result').textContent = data.error;
    return;
  }
  const found = JSON.parse(data.found);
  $('sim-search-result').textContent = found.summary + (found.schedule ? ` Schedule ${found.schedule}: replay it below.` : '');
  sim.found = found.schedule;
  if (found.schedule) simGo('');
}

function simNext() {
  if (sim.found && sim.found.length > sim.schedule.length) simGo(sim.found.slice(0, sim.schedule.length + 1));
}

function simPlay() {
  stopPlaying();
  sim.playing = setInterval(simNext, 250);
}

function stopPlaying() {
  if (sim.playing) clearInterval(sim.playing);
  sim.playing = null;
}

$('run-form').addEventListener('submit', run);
$('import-file').addEventListener('change', importFile);
setUpTimelineZoom();
$('cancel-button').addEventListener('click', cancel);
startWorker();
