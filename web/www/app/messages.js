// The messages between the page and its worker (web/www/worker.js), and the JSON of
// conlab-lab's types they carry — types only, checked on both sides by tsc (web/tsconfig*.json).
// No DOM here: the worker's check reads this file too.

/** @typedef {boolean | number | string} ParamValue */

/**
 * A link's or a form's settings as conlab-lab's `settings::fill` checked them.
 * @typedef {object} Filled
 * @property {string | null} experiment
 * @property {Record<string, ParamValue>} params
 * @property {string[] | null} variants
 * @property {string | null} threads
 * @property {number | null} repeat
 * @property {number | null} warmup
 * @property {boolean | null} trace
 * @property {boolean | null} profile
 * @property {string[]} problems
 */

/**
 * The run's table, as the CLI prints it (conlab-lab's `report::Table`).
 * @typedef {{ headers: string[], rows: { variant: string, threads: number, check: string, cells: string[] }[] }} Table
 */

/**
 * The parts of a `RunResult` the page reads itself (the rest it only stores and exports).
 * @typedef {object} RunResult
 * @property {string} experiment
 * @property {string} title
 * @property {boolean} all_checks_passed
 */

/**
 * A finished run as the worker hands it over (web/src/messages.rs `Finished`, without the trace).
 * @typedef {object} Finished
 * @property {RunResult} result
 * @property {boolean} traced
 * @property {string} summary
 * @property {{ verdict: 'shown' | 'not-shown' | 'not-testable', text: string }[]} lessons
 * @property {Table} table
 * @property {string} chart_svg
 * @property {string[]} fits
 * @property {string[]} notes
 * @property {string[]} findings
 * @property {string} csv
 * @property {string | null} timeline_svg
 * @property {string | null} depth_svg
 * @property {string[]} latency_svgs
 * @property {string[]} curve_svgs
 * @property {Flame | null} flame
 * @property {[string, string][]} link
 * @property {Filled} [form]
 */

/**
 * A run's profile (web/src/messages.rs `Flame`).
 * @typedef {{ wall_svg: string, cpu_svg: string, lines: string[], collapsed: string, speedscope: string }} Flame
 */

/** @typedef {{ json: Blob, chromeTrace: Blob | null }} Exports */

/**
 * @typedef {{ wasmMs: number, poolMs: number }} Startup
 * @typedef {{ type: 'loaded', catalogue: string, scenarios: string, loopScenarios: string, environment: string, threads: number, link: string }
 *   | { type: 'ready', environment: string, poolThreads: number, poolError: string | null,
 *       memory: WebAssembly.Memory | null, cancelAddress: number, startup: Startup }
 *   | { type: 'processes', count: number, startMs: number, error: string | null }
 *   | { type: 'fatal', message: string }
 *   | { type: 'waiting', what: string }
 *   | { type: 'imported', name: string, text?: string, experiment?: string, form?: Filled, platform?: string, opens?: boolean, error?: string }
 *   | { type: 'progress', progress: string }
 *   | { type: 'result', finished: Finished, exports: Exports, stored: boolean }
 *   | { type: 'checked', problem: string }
 *   | { type: 'timeline', svg: string, from: number, to: number }
 *   | { type: 'sim-state', state?: string, error?: string }
 *   | { type: 'sim-search', found?: string, error?: string }
 *   | { type: 'loop-trace', trace?: string, error?: string }
 *   | { type: 'comparison', table?: string, error?: string }
 *   | { type: 'health', wasmBytes: number, workersStarted: number, workersEnded: number, workersKilled: number }
 *   | { type: 'error', message: string, stored?: boolean, invalid?: boolean }} FromWorker
 */

/**
 * @typedef {{ type: 'init', threads: number, link: Record<string, string> }
 *   | { type: 'run', form: string }
 *   | { type: 'check', form: string }
 *   | { type: 'render', result: string }
 *   | { type: 'import', name: string, text: string }
 *   | { type: 'compare', here: string, there: string }
 *   | { type: 'timeline', from: number, to: number }
 *   | { type: 'sim-state', scenario: string, schedule: string }
 *   | { type: 'sim-search', scenario: string, strategy: string, seed: number, runs: number, depth: number, bound: number }
 *   | { type: 'loop-trace', scenario: string }
 *   | { type: 'health' }} ToWorker
 */

export {};
