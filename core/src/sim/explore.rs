//! Choosing who runs next: the strategies, one run under a strategy, and the searches that
//! repeat runs until one fails.
//!
//! - **round-robin** switches at every step: one deterministic schedule.
//! - **random** picks uniformly among the runnable threads, seeded: run i of seed s is always
//!   the same schedule.
//! - **PCT**, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi & Nagarakatte,
//!   ASPLOS 2010): random distinct priorities, the highest runnable thread runs, and at d − 1
//!   random steps the running thread drops to the lowest priority. A bug that needs d ordering
//!   constraints is found with probability at least 1 / (n·k^(d−1)) per run (n threads, k steps).
//!   A thread that yields also drops to the lowest priority, so polite back-offs alternate.
//! - **DFS**, exhaustive depth-first search with a preemption bound (CHESS: Musuvathi & Qadeer,
//!   PLDI 2007): every schedule with at most b *deviations* from the default of letting the
//!   running thread go on — a preemption (switching away from a thread that could have gone
//!   on) or carrying a thread on past its own yield while another could run (a yield asks for
//!   a switch; ignoring it is the scheduler's choice, and costs one). A switch after a yield, a
//!   block or an end is free. When every such schedule ran to its end without a failure — none
//!   cut at the step cap — no schedule within the bound has the bug ([`Search::proves`]).
//!   On a cooperative program (asyncio tasks, which switch only at an await) nothing is a
//!   deviation: DFS runs every order of the tasks at every await, and a pass is a proof over
//!   all schedules, bound or not.
//!
//! Liveness follows Coyote's recipe (Deligiannis et al.): after `fair_after` steps every
//! strategy but DFS turns round-robin, so a livelock shows as a state that comes back with every
//! unfinished thread having moved.
//!
//! Every run yields its schedule — a letter per step, `A` for the first thread — and
//! [`replay`] runs exactly that schedule again.

use std::collections::BTreeMap;

use serde::Serialize;

use super::machine::{Failure, Machine, Snapshot, Step};
use super::program::{letter, Op, Program};

/// How the next thread is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    Random { seed: u64 },
    Pct { seed: u64, depth: usize },
    Dfs { preemption_bound: usize },
}

/// The allowed ranges of a search's settings (the CLI and the page check them alike).
pub const RUNS_RANGE: (usize, usize) = (1, 1_000_000);
pub const DEPTH_RANGE: (usize, usize) = (1, 10);
pub const BOUND_RANGE: (usize, usize) = (0, 10);

/// `Err` naming `name` and its range unless `value` is inside.
pub fn check_range(name: &str, value: usize, (min, max): (usize, usize)) -> Result<usize, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("parameter `{name}`: expected an integer from {min} to {max}, got `{value}`"))
    }
}

impl Strategy {
    /// The strategy called `name` (`pct`, `random`, `dfs`, `round-robin`) with its settings,
    /// checked: an error names the parameter and what it allows.
    pub fn named(name: &str, seed: u64, depth: usize, bound: usize) -> Result<Strategy, String> {
        match name {
            "pct" => Ok(Strategy::Pct { seed, depth: check_range("depth", depth, DEPTH_RANGE)? }),
            "random" => Ok(Strategy::Random { seed }),
            "dfs" => Ok(Strategy::Dfs { preemption_bound: check_range("bound", bound, BOUND_RANGE)? }),
            "round-robin" => Ok(Strategy::RoundRobin),
            other => Err(format!("parameter `strategy`: expected one of pct, random, dfs, round-robin, got `{other}`")),
        }
    }

    /// [`Strategy::describe`] for a search of `program`: on asyncio tasks DFS's bound does not
    /// apply (no task is ever preempted), and it runs every order of the tasks at their awaits.
    pub fn describe_for(&self, program: &Program) -> String {
        match self {
            Strategy::Dfs { .. } if program.cooperative => {
                "DFS over every order of the tasks at their awaits (asyncio tasks switch nowhere else)".into()
            }
            _ => self.describe(),
        }
    }

    /// A few words for reports: `PCT (depth 3, seed 1)`.
    pub fn describe(&self) -> String {
        match self {
            Strategy::Pct { seed, depth } => format!("PCT (depth {depth}, seed {seed})"),
            Strategy::Random { seed } => format!("random (seed {seed})"),
            Strategy::Dfs { preemption_bound } => {
                format!("DFS (at most {preemption_bound} preemptions; carrying on past a yield counts as one)")
            }
            Strategy::RoundRobin => "round-robin".into(),
        }
    }
}

/// Bounds on a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Runs (schedules, for DFS) at most.
    pub runs: usize,
    /// A run stops here (and counts as cut, not failed) unless a failure came first.
    pub max_steps: usize,
    /// Steps before round-robin takes over (not for DFS).
    pub fair_after: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self { runs: 1000, max_steps: 400, fair_after: 150 }
    }
}

/// One run: every step, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    pub schedule: String,
    pub steps: Vec<Step>,
    pub failure: Option<Failure>,
    /// It hit `max_steps` without finishing or failing.
    pub cut: bool,
}

/// What a search found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Search {
    /// The first failing run, if any.
    pub found: Option<Run>,
    /// Runs made (the failing one included).
    pub runs: usize,
    /// Runs stopped at the step bound.
    pub cut: usize,
    /// DFS only: every schedule within the preemption bound was run (to its end, or to the
    /// step cap: see `cut`).
    pub exhausted: bool,
    /// DFS of a cooperative program: no bound applied, so `exhausted` means every schedule.
    pub unbounded: bool,
}

impl Search {
    /// Whether the search is a proof: DFS ran every schedule within its bound, each to its end,
    /// and none failed. A run cut at the step cap might have failed later, so any cut run
    /// leaves it a search, not a proof.
    pub fn proves(&self) -> bool {
        self.exhausted && self.cut == 0 && self.found.is_none()
    }

    /// What the search showed, in one sentence (`described`: the strategy, [`Strategy::describe`];
    /// `max_steps`: the step cap it ran under) — the CLI's and the page's words.
    pub fn verdict(&self, described: &str, max_steps: usize) -> String {
        let cut = |what: &str| format!("{} of them {what} at the {max_steps}-step cap before finishing", self.cut);
        match &self.found {
            Some(run) => {
                let failure = run.failure.as_ref().map_or_else(String::new, ToString::to_string);
                format!("{described}: found in run {}: {failure}", self.runs)
            }
            None if self.proves() && self.unbounded => {
                format!(
                    "{described}: every one of the {} schedules ran to its end and passes — correct on every schedule",
                    self.runs
                )
            }
            None if self.proves() => {
                format!(
                    "{described}: every one of the {} schedules within the bound ran to its end and passes — correct within that bound",
                    self.runs
                )
            }
            None if self.exhausted => format!(
                "{described}: no failure in the {} schedules{}, but {} — not a proof: a cut run might fail later",
                self.runs,
                if self.unbounded { "" } else { " within the bound" },
                cut("stopped")
            ),
            None if self.cut > 0 => format!("{described}: no failure in {} runs ({})", self.runs, cut("stopped")),
            None => format!("{described}: no failure in {} runs", self.runs),
        }
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, seedable, good enough to pick threads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The thread after `last` in cyclic order among `enabled` (the first when none ran yet).
fn round_robin(enabled: &[usize], last: Option<usize>) -> usize {
    last.and_then(|last| enabled.iter().copied().find(|&t| t > last)).unwrap_or(enabled[0])
}

/// Runs `program`, asking `choose(machine, enabled, last)` for each step's thread.
fn run_with(
    program: &Program,
    max_steps: usize,
    choose: impl FnMut(&Machine<'_>, &[usize], Option<usize>) -> usize,
) -> Run {
    run_seeded(Machine::new(program), max_steps, choose)
}

/// [`run_with`] from a given machine (its `random.randrange` seed chosen).
fn run_seeded(
    mut machine: Machine<'_>,
    max_steps: usize,
    mut choose: impl FnMut(&Machine<'_>, &[usize], Option<usize>) -> usize,
) -> Run {
    let mut schedule = String::new();
    let mut steps = Vec::new();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last = None;
    let end = |schedule, steps, failure, cut| Run { schedule, steps, failure, cut };
    loop {
        if machine.all_done() {
            return end(schedule, steps, machine.check_finally().err(), false);
        }
        let enabled = machine.enabled();
        if enabled.is_empty() {
            return end(schedule, steps, Some(machine.deadlock()), false);
        }
        if let Some(cycle) = fair_cycle(&machine, &mut seen, &schedule) {
            return end(schedule, steps, Some(Failure::Livelock { cycle }), false);
        }
        if steps.len() >= max_steps {
            return end(schedule, steps, None, true);
        }
        let thread = choose(&machine, &enabled, last);
        schedule.push(letter(thread));
        last = Some(thread);
        let (step, outcome) = machine.step(thread);
        steps.push(step);
        if let Err(failure) = outcome {
            return end(schedule, steps, Some(failure), false);
        }
    }
}

/// The schedule since this state was last seen, if it came back with every unfinished thread
/// having taken a step in between (a cycle the scheduler could repeat forever, fairly).
fn fair_cycle(machine: &Machine<'_>, seen: &mut BTreeMap<u64, usize>, schedule: &str) -> Option<String> {
    let now = schedule.len();
    let before = seen.insert(machine.state_key(), now)?;
    let cycle = &schedule[before..now];
    let fair = (0..machine.threads()).filter(|&t| !machine.is_done(t)).all(|t| cycle.contains(letter(t)));
    fair.then(|| cycle.to_string())
}

/// One run under `strategy` (DFS runs its first schedule); `run` numbers runs of a search.
fn run_once(program: &Program, strategy: Strategy, run: usize, budget: &Budget, estimated_steps: usize) -> Run {
    let fair_after = budget.fair_after;
    match strategy {
        Strategy::RoundRobin | Strategy::Dfs { .. } => {
            run_with(program, budget.max_steps, |_, enabled, last| round_robin(enabled, last))
        }
        Strategy::Random { seed } => {
            let mut rng = Rng(seed ^ (run as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let mut step = 0;
            run_with(program, budget.max_steps, |_, enabled, last| {
                step += 1;
                if step > fair_after {
                    round_robin(enabled, last)
                } else {
                    enabled[rng.below(enabled.len())]
                }
            })
        }
        Strategy::Pct { seed, depth } => {
            let mut rng = Rng(seed ^ (run as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let threads = program.threads.len();
            // Priorities above `depth`, shuffled; change point i lowers to depth - 1 - i; a yield
            // goes below everything so far.
            let mut priorities: Vec<i64> = (0..threads).map(|t| (depth + 1 + t) as i64).collect();
            for i in (1..threads).rev() {
                priorities.swap(i, rng.below(i + 1));
            }
            let changes: Vec<usize> = (1..depth).map(|_| 1 + rng.below(estimated_steps.max(1))).collect();
            let mut lowest = 0;
            let mut step = 0;
            run_with(program, budget.max_steps, |machine, enabled, last| {
                step += 1;
                if let Some(last) = last {
                    if let Some(i) = changes.iter().position(|&at| at == step - 1) {
                        priorities[last] = (depth - 1 - i) as i64;
                    }
                }
                if step > fair_after {
                    return round_robin(enabled, last);
                }
                let chosen = *enabled.iter().max_by_key(|&&t| priorities[t]).expect("something is enabled");
                if machine.is_yielding(chosen) {
                    // A polite back-off: below every other thread, the latest lowest.
                    lowest -= 1;
                    priorities[chosen] = lowest;
                }
                chosen
            })
        }
    }
}

/// Seeds a program that draws random numbers is run from, to report [`OverSeeds`].
pub const SEEDS: u64 = 1000;

/// How many back-offs randomised back-off took to break two threads' lock-step, over seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverSeeds {
    pub seeds: u64,
    pub threads: usize,
    /// Runs in which a thread got both locks (the others livelocked or hit the step cap).
    pub broke: u64,
    /// Try-locks that found their lock busy before the first that got it, per run that broke.
    pub mean: f64,
    pub p50: usize,
    pub p99: usize,
    pub max: usize,
}

impl OverSeeds {
    pub fn describe(&self) -> String {
        format!(
            "Round-robin (the threads in lock-step) from {} seeds of random.randrange: {} of them broke the symmetry, \
             after {:.1} failed try-locks on average — {:.1} rounds of all {} threads backing off — (p50 {}, p99 {}, \
             max {}).",
            self.seeds,
            self.broke,
            self.mean,
            self.mean / self.threads.max(1) as f64,
            self.threads,
            self.p50,
            self.p99,
            self.max
        )
    }
}

/// For a program that draws random numbers: round-robin runs from seeds `1..=seeds`, counting
/// the try-locks that found their lock busy before the first one that got it — the back-offs
/// it took to break the symmetry. `None` for a program that draws none (one schedule, one run).
pub fn backoffs_over_seeds(program: &Program, seeds: u64, budget: &Budget) -> Option<OverSeeds> {
    let draws = program.threads.iter().flat_map(|thread| &thread.ops).any(|op| matches!(op, Op::Random(..)));
    if !draws {
        return None;
    }
    let mut counts: Vec<usize> = (1..=seeds)
        .filter_map(|seed| {
            let run = run_seeded(Machine::seeded(program, seed), budget.max_steps, |_, enabled, last| {
                round_robin(enabled, last)
            });
            let is_try_lock = |step: &&Step| {
                let thread = &program.threads[usize::from(step.thread as u8 - b'A')];
                matches!(thread.ops.get(step.line), Some(Op::TryLock(..)))
            };
            run.steps.iter().filter(is_try_lock).position(|step| step.effect.starts_with("holds"))
        })
        .collect();
    counts.sort_unstable();
    let quantile =
        |q: f64| counts.get(((counts.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
    Some(OverSeeds {
        seeds,
        threads: program.threads.len(),
        broke: counts.len() as u64,
        mean: counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64,
        p50: quantile(0.5),
        p99: quantile(0.99),
        max: counts.last().copied().unwrap_or(0),
    })
}

/// Runs under `strategy` until one fails or the budget is spent.
pub fn search(program: &Program, strategy: Strategy, budget: &Budget) -> Search {
    if let Strategy::Dfs { preemption_bound } = strategy {
        return Search { unbounded: program.cooperative, ..dfs(program, preemption_bound, budget) };
    }
    let runs = if strategy == Strategy::RoundRobin { 1 } else { budget.runs };
    let estimated_steps = run_once(program, Strategy::RoundRobin, 0, budget, 0).steps.len();
    let mut cut = 0;
    for run in 0..runs {
        let outcome = run_once(program, strategy, run, budget, estimated_steps);
        cut += usize::from(outcome.cut);
        if outcome.failure.is_some() {
            return Search { found: Some(outcome), runs: run + 1, cut, exhausted: false, unbounded: false };
        }
    }
    Search { found: None, runs, cut, exhausted: false, unbounded: false }
}

/// A choice point of the DFS: the threads it may pick, in order, and which one this run takes.
struct Choice {
    options: Vec<usize>,
    taken: usize,
}

/// Every schedule with at most `bound` preemptions, depth first, each run replaying the
/// choices before the deepest open one.
///
/// Iterative context bounding (Musuvathi & Qadeer 2007): bound 0 first, then 1, … — a bug
/// that needs few preemptions is found before the many schedules that spend their preemptions
/// deep in a long run. `runs` counts every run; a proof reports the last pass's schedules.
fn dfs(program: &Program, bound: usize, budget: &Budget) -> Search {
    let mut runs = 0;
    let mut cut = 0;
    for pass_bound in 0..=bound {
        let pass = dfs_pass(program, pass_bound, budget.runs - runs, budget.max_steps);
        runs += pass.runs;
        cut += pass.cut;
        if pass.found.is_some() || !pass.exhausted || pass_bound == bound {
            let runs = if pass.exhausted && pass.found.is_none() { pass.runs } else { runs };
            return Search {
                found: pass.found,
                runs,
                cut: if pass.exhausted { pass.cut } else { cut },
                exhausted: pass.exhausted,
                unbounded: false,
            };
        }
        if runs >= budget.runs {
            break;
        }
    }
    Search { found: None, runs, cut, exhausted: false, unbounded: false }
}

/// One depth-first pass over the schedules with at most `bound` preemptions.
fn dfs_pass(program: &Program, bound: usize, max_runs: usize, max_steps: usize) -> Search {
    let mut stack: Vec<Choice> = Vec::new();
    let mut runs = 0;
    let mut cut = 0;
    loop {
        let mut depth = 0;
        let mut preemptions = 0;
        let outcome = run_with(program, max_steps, |machine, enabled, last| {
            let options = options(machine, enabled, last, bound - preemptions);
            if depth == stack.len() {
                stack.push(Choice { options, taken: 0 });
            }
            let thread = stack[depth].options[stack[depth].taken];
            if deviates(machine, enabled, last, thread) {
                preemptions += 1;
            }
            depth += 1;
            thread
        });
        runs += 1;
        cut += usize::from(outcome.cut);
        if outcome.failure.is_some() {
            return Search { found: Some(outcome), runs, cut, exhausted: false, unbounded: false };
        }
        // Backtrack: the deepest choice with an untried option takes its next one.
        stack.truncate(depth);
        while stack.last().is_some_and(|choice| choice.taken + 1 >= choice.options.len()) {
            stack.pop();
        }
        match stack.last_mut() {
            Some(choice) => choice.taken += 1,
            None => return Search { found: None, runs, cut, exhausted: true, unbounded: false },
        }
        if runs >= max_runs {
            return Search { found: None, runs, cut, exhausted: false, unbounded: false };
        }
    }
}

/// Whether running `thread` after `last` deviates from the default — letting the running
/// thread go on, or switching when it yields: a preemption (`last` could have gone on, did not
/// just yield, and another runs) or a yield ignored (`last` just yielded, another could run,
/// and `last` goes on). Each costs one unit of the DFS's bound.
fn deviates(machine: &Machine<'_>, enabled: &[usize], last: Option<usize>, thread: usize) -> bool {
    let Some(last) = last else { return false };
    if machine.is_cooperative() {
        // Tasks cannot be preempted, and after an await any ready task may be the next: the
        // awaited I/O can finish in any order. Every choice is free, so DFS runs them all.
        return false;
    }
    if last == thread {
        machine.just_yielded(last) && enabled.iter().any(|&other| other != last)
    } else {
        machine.is_enabled(last) && !machine.just_yielded(last)
    }
}

/// The DFS's options at a step: the free ones first — carrying on, or after a yield the others
/// — then, while the budget lasts, the deviations ([`deviates`]).
fn options(machine: &Machine<'_>, enabled: &[usize], last: Option<usize>, budget_left: usize) -> Vec<usize> {
    let carry_on = last.filter(|last| enabled.contains(last));
    let order = carry_on.into_iter().chain(enabled.iter().copied().filter(|&thread| Some(thread) != carry_on));
    let (deviations, mut options): (Vec<usize>, Vec<usize>) =
        order.partition(|&thread| deviates(machine, enabled, last, thread));
    if budget_left > 0 {
        options.extend(deviations);
    }
    options
}

/// Runs exactly `schedule` (letters, whitespace ignored) and stops at its end, at a failure, or
/// with an error naming the first step that cannot run.
pub fn replay(program: &Program, schedule: &str) -> Result<Run, String> {
    replay_to(program, schedule).map(|(run, _)| run)
}

/// The state after running `schedule` (a prefix is fine), for the step view.
pub fn state_after(program: &Program, schedule: &str) -> Result<(Run, Snapshot), String> {
    replay_to(program, schedule).map(|(run, machine)| (run, machine.snapshot()))
}

/// [`replay`], also handing back the machine where the run stopped.
fn replay_to<'p>(program: &'p Program, schedule: &str) -> Result<(Run, Machine<'p>), String> {
    let letters: Vec<char> = schedule.chars().filter(|c| !c.is_whitespace()).collect();
    let threads = program.threads.len();
    let mut machine = Machine::new(program);
    let mut steps = Vec::new();
    let mut seen = BTreeMap::new();
    let mut done = String::new();
    for (index, &name) in letters.iter().enumerate() {
        let thread = (name as usize).wrapping_sub('A' as usize);
        if thread >= threads {
            return Err(format!(
                "schedule: step {} is `{name}`; this scenario's threads are {}",
                index + 1,
                (0..threads).map(|t| letter(t).to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !machine.is_enabled(thread) {
            let state = &machine.snapshot().threads[thread].state;
            return Err(format!("schedule: step {} is `{name}`, but {name} cannot run there ({state})", index + 1));
        }
        if let Some(cycle) = fair_cycle(&machine, &mut seen, &done) {
            return Ok((
                Run { schedule: done, steps, failure: Some(Failure::Livelock { cycle }), cut: false },
                machine,
            ));
        }
        done.push(name);
        let (step, outcome) = machine.step(thread);
        steps.push(step);
        if let Err(failure) = outcome {
            return Ok((Run { schedule: done, steps, failure: Some(failure), cut: false }, machine));
        }
    }
    let failure = if machine.all_done() {
        machine.check_finally().err()
    } else if machine.enabled().is_empty() {
        Some(machine.deadlock())
    } else {
        fair_cycle(&machine, &mut seen, &done).map(|cycle| Failure::Livelock { cycle })
    };
    Ok((Run { schedule: done, steps, failure, cut: false }, machine))
}
