// The debugging lab: the step mode over conlab-core's deterministic scheduler (sim). The
// worker answers each schedule with the state after it (web/src/debugger.rs); this module draws
// the listings, the shared state, the outcome and the wait-for graph, and replays a schedule
// a search found.

import { $, buttonById, el, selectById } from './dom.js';
import { send } from './protocol.js';

/**
 * @typedef {{ letter: string, name: string, lines: string[] }} ListingThread
 * @typedef {{ id: string, title: string, story: string, buggy: boolean, twin?: string | null, listing: { threads: ListingThread[] } }} Scenario
 * @typedef {{ line: number | null, state: string, enabled: boolean, registers: Record<string, number> }} ThreadNow
 * @typedef {object} SimState
 * @property {{ schedule: string, steps: { thread: string, line: number }[], failure?: { kind: string } | null }} run
 * @property {{ threads: ThreadNow[], vars: Record<string, number>, locks: Record<string, string | null>, semaphores: Record<string, number> }} snapshot
 * @property {string | null} failure
 * @property {string | null} wait_for_svg
 */

/** @type {{ scenarios: Scenario[], schedule: string, found: string | null, playing: number, notice: string | null }} */
const sim = { scenarios: [], schedule: '', found: null, playing: 0, notice: null };

function currentScenario() {
  const id = selectById('sim-scenario').value;
  const scenario = sim.scenarios.find((s) => s.id === id);
  if (!scenario) throw new Error(`no scenario ${id}`);
  return scenario;
}

/** @param {Scenario[]} scenarios */
export function setUpDebugger(scenarios) {
  sim.scenarios = scenarios;
  const select = selectById('sim-scenario');
  select.replaceChildren(...scenarios.map((s) => el('option', { value: s.id, text: `${s.id} — ${s.title}` })));
  select.onchange = () => openScenario(select.value, '');
  buttonById('sim-reset').onclick = () => go('');
  buttonById('sim-undo').onclick = () => go(sim.schedule.slice(0, -1));
  buttonById('sim-search').onclick = search;
  buttonById('sim-next').onclick = next;
  buttonById('sim-play').onclick = play;
  $('sim-threads').addEventListener('keydown', (event) => {
    const letter = event.key.toUpperCase();
    if (/^[A-Z]$/.test(letter) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      go(sim.schedule + letter);
    }
  });
  openScenario(scenarios[0].id, '');
}

/**
 * `?scenario=abba-deadlock&schedule=AB` opens the step mode there. True if the link did.
 * @param {string} search
 */
export function openDebuggerLink(search) {
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

/** @param {string} id @param {string} schedule */
function openScenario(id, schedule) {
  selectById('sim-scenario').value = id;
  const scenario = currentScenario();
  const twin = scenario.twin ? ` Its ${scenario.buggy ? 'fix' : 'buggy twin'}: ${scenario.twin}.` : '';
  $('sim-story').textContent = `${scenario.buggy ? 'Bug' : 'Fix'}: ${scenario.story}${twin}`;
  sim.found = null;
  $('sim-search-result').textContent = '';
  go(schedule);
}

/** @param {string} schedule */
function go(schedule) {
  send({ type: 'sim-state', scenario: selectById('sim-scenario').value, schedule });
}

/** The state after a schedule, or why there is none. @param {{ state?: string, error?: string }} answer */
export function showSimState({ state, error }) {
  if (!state) {
    $('sim-error').textContent = error ?? '';
    stopPlaying();
    return;
  }
  $('sim-error').textContent = sim.notice ?? '';
  sim.notice = null;
  const { run, snapshot, failure, wait_for_svg } = /** @type {SimState} */ (JSON.parse(state));
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
    const step = el('button', { type: 'button', 'data-step': thread.letter, disabled: !now.enabled || !!failure, text: `run ${thread.letter}` });
    step.onclick = () => go(sim.schedule + thread.letter);
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
  const canReplay = !!sim.found && sim.found.startsWith(sim.schedule) && sim.found.length > sim.schedule.length;
  buttonById('sim-next').disabled = !canReplay;
  buttonById('sim-play').disabled = !canReplay;
  if (!canReplay) stopPlaying();
  const query = new URLSearchParams({ scenario: scenario.id, schedule: sim.schedule });
  if (new URLSearchParams(location.search).has('scenario') || sim.schedule) history.replaceState(null, '', `${location.pathname}?${query}`);
}

function search() {
  $('sim-search-result').textContent = 'searching…';
  send({ type: 'sim-search', scenario: selectById('sim-scenario').value, strategy: selectById('sim-strategy').value,
    seed: Math.floor(Math.random() * 1e9), runs: 1000, depth: 3, bound: 2 });
}

/** A search's outcome, or why it could not run. @param {{ found?: string, error?: string }} answer */
export function showSimSearch({ found, error }) {
  if (!found) {
    $('sim-search-result').textContent = error ?? '';
    return;
  }
  const { summary, schedule } = /** @type {{ summary: string, schedule: string | null }} */ (JSON.parse(found));
  $('sim-search-result').textContent = summary + (schedule ? ` Schedule ${schedule}: replay it below.` : '');
  sim.found = schedule;
  if (schedule) go('');
}

function next() {
  if (sim.found && sim.found.length > sim.schedule.length) go(sim.found.slice(0, sim.schedule.length + 1));
}

function play() {
  stopPlaying();
  sim.playing = setInterval(next, 250);
}

function stopPlaying() {
  clearInterval(sim.playing);
  sim.playing = 0;
}
