// The event loop stepper: a scenario of conlab-core's aio step mode (web/src/debugger.rs), run
// to its end once by the worker; this module steps through the recorded states — the listing
// with each task at its line, the ready queue, the timer heap, every task's state — and, at the
// end, what asyncio would have warned about.

import { $, buttonById, el, selectById } from './dom.js';
import { send } from './protocol.js';

/**
 * @typedef {{ id: string, title: string, story: string, listing: string[] }} LoopScenario
 * @typedef {{ name: string, state: string, line: number | null }} TaskView
 * @typedef {{ index: number, iteration: number, time: number, event: string, ready: string[],
 *             timers: { due: number, what: string }[], tasks: TaskView[] }} LoopStep
 * @typedef {{ steps: LoopStep[], findings: string[], outcome: string, generator_steps: LoopStep[] }} LoopTrace
 */

/** @type {{ scenarios: LoopScenario[], trace: LoopTrace | null, at: number }} */
const stepper = { scenarios: [], trace: null, at: 0 };

/** @param {LoopScenario[]} scenarios */
export function setUpLoopStepper(scenarios) {
  stepper.scenarios = scenarios;
  const select = selectById('loop-scenario');
  select.replaceChildren(...scenarios.map((s) => el('option', { value: s.id, text: `${s.id} — ${s.title}` })));
  select.onchange = () => open(select.value);
  buttonById('loop-restart').onclick = () => show(0);
  buttonById('loop-back').onclick = () => show(stepper.at - 1);
  buttonById('loop-next').onclick = () => show(stepper.at + 1);
  buttonById('loop-iteration').onclick = () => show(endOfNextIteration());
  buttonById('loop-end').onclick = () => show(stepper.trace?.steps.length ?? 0);
  $('loop-view').addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    /** @type {Record<string, () => number>} */
    const keys = { n: () => stepper.at + 1, i: endOfNextIteration, b: () => stepper.at - 1, r: () => 0 };
    const target = keys[event.key.toLowerCase()];
    if (!target) return;
    event.preventDefault();
    show(target());
  });
  open(scenarios[0].id);
}

/** @param {string} id */
function open(id) {
  selectById('loop-scenario').value = id;
  const scenario = current();
  $('loop-story').textContent = scenario.story;
  stepper.trace = null;
  send({ type: 'loop-trace', scenario: id });
}

function current() {
  const id = selectById('loop-scenario').value;
  const scenario = stepper.scenarios.find((s) => s.id === id);
  if (!scenario) throw new Error(`no loop scenario ${id}`);
  return scenario;
}

/** The recorded steps, or why there are none. @param {{ trace?: string, error?: string }} answer */
export function showLoopTrace({ trace, error }) {
  $('loop-error').textContent = error ?? '';
  if (!trace) return;
  stepper.trace = /** @type {LoopTrace} */ (JSON.parse(trace));
  show(0);
}

/** The position after the whole of the next loop iteration (or what is left of the current one). */
function endOfNextIteration() {
  const steps = stepper.trace?.steps ?? [];
  const next = steps[stepper.at];
  if (!next) return stepper.at;
  let end = stepper.at;
  while (end < steps.length && steps[end].iteration === next.iteration) end += 1;
  return end;
}

/** Shows the state after `at` steps (0: before the first). @param {number} at */
function show(at) {
  const trace = stepper.trace;
  if (!trace) return;
  stepper.at = Math.max(0, Math.min(at, trace.steps.length));
  const step = stepper.at ? trace.steps[stepper.at - 1] : null;
  const atEnd = stepper.at === trace.steps.length;
  $('loop-view').dataset.at = String(stepper.at);
  $('loop-event').textContent = step
    ? `step ${step.index} of ${trace.steps.length} · iteration ${step.iteration} · ${step.time.toFixed(3)} s — ${step.event}`
    : `before the first step: asyncio.run(main()) is about to run main (${trace.steps.length} steps in all)`;
  const tasks = step?.tasks ?? [];
  $('loop-listing').replaceChildren(...current().listing.map((text, index) => {
    const here = tasks.filter((task) => task.line === index + 1).map((task) => task.name);
    return el('li', { class: here.length ? 'current' : '', 'data-tasks': here.join(',') || null, text },
      ...(here.length ? [el('span', { class: 'loop-here', text: `  ← ${here.join(', ')}` })] : []));
  }));
  const ready = step?.ready ?? ['main'];
  const timers = step?.timers ?? [];
  $('loop-state').replaceChildren(
    el('div', { class: 'loop-ready' }, el('h3', { text: 'ready queue' }),
      ready.length ? el('ol', {}, ...ready.map((name) => el('li', { text: name }))) : el('p', { text: 'empty' })),
    el('div', { class: 'loop-timers' }, el('h3', { text: 'timer heap' }),
      timers.length
        ? el('table', {}, el('tbody', {}, ...timers.map((t) => el('tr', {}, el('td', { text: `${t.due.toFixed(3)} s` }), el('td', { text: t.what })))))
        : el('p', { text: 'empty' })),
    el('div', { class: 'loop-tasks' }, el('h3', { text: 'tasks' }),
      el('table', {}, el('tbody', {}, ...tasks.map((t) => el('tr', { 'data-task': t.name },
        el('th', { text: t.name }), el('td', { text: t.state }), el('td', { text: t.line ? `line ${t.line}` : '' })))))),
  );
  const generator = trace.generator_steps;
  $('loop-generator').replaceChildren(...(generator.length ? [
    el('h3', { text: "the books' generator scheduler on the same work (its deque is the ready queue)" }),
    el('ol', {}, ...generator.map((g) => el('li', { text: `${g.event} — deque: ${g.ready.join(', ') || 'empty'}` }))),
  ] : []));
  $('loop-findings').replaceChildren(...(atEnd ? [trace.outcome, ...trace.findings.map((f) => `finding: ${f}`)] : [])
    .map((text) => el('li', { text })));
  buttonById('loop-back').disabled = stepper.at === 0;
  buttonById('loop-restart').disabled = stepper.at === 0;
  for (const id of ['loop-next', 'loop-iteration', 'loop-end']) buttonById(id).disabled = atEnd;
}
