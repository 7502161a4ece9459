//! The profiled program, in the Python model's bytecode: a main loop calling named functions,
//! each doing a set amount of work per call, run on threads under the GIL with a profiler.
//!
//! ```python
//! def parse():     for _ in range(P): total += 1      # each function: optional blocking I/O,
//! def transform(): for _ in range(H): total += 1      # then its loop
//! for _ in range(iterations):
//!     parse(); transform()                             # a function may be called r times a round
//! ```

use std::time::Duration;

use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::run_team;
use conlab_core::profile::board::StackBoard;
use conlab_core::profile::sampler::{self, Sampled};
use conlab_core::profile::tracer::CallTracer;
use conlab_core::profile::{NoProbe, Probe, Profile, ThreadState, View};
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::{Bytecode, Instruction, Interpreter, Mode};
use conlab_core::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Arc, Mutex};

use crate::experiment::{not_testable, Facts, ParamSpec, RunContext, RunError, Verdict};

/// A function of the profiled program: `def name(): [with lock:] [io(io_us)]; for _ in
/// range(work): total += 1`, called `repeat` times per iteration of the main loop.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub name: &'static str,
    pub work: i64,
    pub repeat: i64,
    /// Blocking I/O at the call's start, in µs (0: none).
    pub io_us: u32,
    /// The whole body under the program's one `threading.Lock`.
    pub locked: bool,
}

/// The shared variable that is the program's lock (0 holds the result).
pub const LOCK: usize = 1;

impl Function {
    /// Called once per iteration, computing only.
    pub fn once(name: &'static str, work: i64) -> Self {
        Self { name, work, repeat: 1, io_us: 0, locked: false }
    }

    /// Instructions one call executes: `RESUME`, the lock's acquire and release, the I/O, the
    /// loop's set-up and 5 per iteration.
    pub fn ops_per_call(&self) -> i64 {
        1 + 2 * i64::from(self.locked) + i64::from(self.io_us > 0) + if self.work > 0 { 2 + 5 * self.work } else { 0 }
    }

    /// Instructions the main loop spends calling it per iteration: a call and a pop, and for
    /// repeated calls an inner loop's set-up and back-edge.
    fn calling_ops(&self) -> i64 {
        match self.repeat {
            1 => 2,
            repeat => 2 + 3 * repeat,
        }
    }

    fn body(&self) -> Vec<Instruction> {
        let mut body = vec![Instruction::Resume];
        if self.locked {
            body.push(Instruction::Acquire(LOCK));
        }
        if self.io_us > 0 {
            body.push(Instruction::Io(self.io_us));
        }
        if self.work > 0 {
            let top = body.len() + 2;
            body.extend([
                Instruction::Const(self.work),
                Instruction::StoreLocal(FUNCTION_COUNTER),
                Instruction::LoadLocal(TOTAL),
                Instruction::Const(1),
                Instruction::Add,
                Instruction::StoreLocal(TOTAL),
                Instruction::LoopBack { counter: FUNCTION_COUNTER, to: top },
            ]);
        }
        if self.locked {
            body.push(Instruction::Release(LOCK));
        }
        body
    }
}

/// The functions and how many times the main loop runs.
#[derive(Clone, Debug)]
pub struct Program {
    /// What profiles call the thread's own code: `<module>`, or a thread's target function.
    pub root: &'static str,
    pub functions: Vec<Function>,
    pub iterations: i64,
}

/// Locals: the main loop's counter, the functions' loop counter, the running total, the
/// counter of a repeated call's inner loop.
const MAIN_COUNTER: usize = 0;
const FUNCTION_COUNTER: usize = 1;
const TOTAL: usize = 2;
const REPEAT_COUNTER: usize = 3;

impl Program {
    /// The frames as profiles name them: 0 the thread's own code, then the functions.
    pub fn frame_names(&self) -> Vec<String> {
        std::iter::once(self.root).chain(self.functions.iter().map(|f| f.name)).map(str::to_string).collect()
    }

    /// The bytecode; its result (shared variable 0) is the loop iterations all calls ran.
    pub fn bytecode(&self) -> Bytecode {
        let mut code = vec![Instruction::Const(self.iterations), Instruction::StoreLocal(MAIN_COUNTER)];
        for (index, function) in self.functions.iter().enumerate() {
            if function.repeat == 1 {
                code.extend([Instruction::Call(index), Instruction::Pop]);
                continue;
            }
            code.extend([Instruction::Const(function.repeat), Instruction::StoreLocal(REPEAT_COUNTER)]);
            let top = code.len();
            code.extend([Instruction::Call(index), Instruction::Pop]);
            code.push(Instruction::LoopBack { counter: REPEAT_COUNTER, to: top });
        }
        code.push(Instruction::LoopBack { counter: MAIN_COUNTER, to: 2 });
        code.extend([Instruction::LoadShared(0), Instruction::LoadLocal(TOTAL), Instruction::Add]);
        code.push(Instruction::StoreShared(0));
        Bytecode { code, functions: self.functions.iter().map(Function::body).collect(), locals: 4 }
    }

    /// What one thread's run adds to the result.
    pub fn per_thread(&self) -> i64 {
        self.iterations * self.functions.iter().map(|f| f.work * f.repeat).sum::<i64>()
    }

    /// Calls one thread makes, its `<module>` included.
    pub fn calls_per_thread(&self) -> i64 {
        1 + self.iterations * self.functions.iter().map(|f| f.repeat).sum::<i64>()
    }

    /// Frame `name`'s exact share of the instructions — a function's, or `<module>`'s own (the
    /// main loop's calls and back-edges): its self time when every instruction costs the same,
    /// and there is no I/O.
    pub fn exact_share(&self, name: &str) -> f64 {
        let calling: i64 = 1 + self.functions.iter().map(Function::calling_ops).sum::<i64>();
        let per_iteration: i64 = calling + self.functions.iter().map(|f| f.repeat * f.ops_per_call()).sum::<i64>();
        let own = match self.functions.iter().find(|f| f.name == name) {
            Some(function) => function.repeat * function.ops_per_call(),
            None if name == self.root => calling,
            None => 0,
        };
        own as f64 / per_iteration as f64
    }
}

/// How a run is profiled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Profiler {
    None,
    /// Every call and return timed (cProfile).
    Instrumenting,
    /// A sampler thread at this rate (py-spy).
    Sampling(f64),
}

/// What a profiled run leaves.
pub struct Profiled {
    /// The program's result, summed over the threads.
    pub result: i64,
    pub sampled: Option<Sampled>,
    pub traced: Option<CallTracer>,
}

/// The share of cProfile's cost per call spent after the entry hook's clock read (charged to
/// the callee); the rest follows the return hook's read (charged to the caller). Measured with
/// CPython 3.11: ~150 of 372 ns per call landed in the called function's `tottime`.
const ENTRY_SHARE: f64 = 0.44;

/// The parameter both experiments give cProfile's cost with.
pub fn hook_param() -> ParamSpec {
    ParamSpec::float(
        "hook_ns",
        270.0,
        0.0,
        100_000.0,
        "ns per call",
        "the instrumenting profiler's hooks' cost beyond its clock reads (CPython 3.11's cProfile: 306–372 ns a \
         call in all here, as `conlab calibrate-python` measures it)",
    )
}

/// Python threads as CPython 3.11 runs them: under the GIL, at its default 5 ms switch interval,
/// `op_ns` an instruction.
pub fn under_the_gil(op_ns: f64, spinner: Spinner) -> Interpreter {
    Interpreter { mode: Mode::Gil(Arc::new(Gil::new(Duration::from_millis(5)))), op_ns, spinner }
}

/// cProfile's model for one thread: `hook_ns` a call, split between entry and return as CPython's.
pub fn cprofile(interpreter: &Interpreter, hook_ns: f64) -> CallTracer {
    CallTracer::with_hook(interpreter.spinner, hook_ns * ENTRY_SHARE, hook_ns * (1.0 - ENTRY_SHARE))
}

/// Runs `program` on `threads` threads under `interpreter`, profiled by `profiler`; an
/// instrumenting profiler's hooks spend `hook_ns` per call.
pub fn run(
    program: &Program,
    interpreter: &Interpreter,
    threads: usize,
    profiler: Profiler,
    hook_ns: f64,
    context: &RunContext,
) -> Result<Profiled, RunError> {
    run_each(&vec![program; threads], interpreter, profiler, hook_ns, context)
}

/// Thread `i` runs `team[i]`. Programs share one frame table (each distinct program's frames
/// after the ones before it), so a profile of several programs names every frame right.
pub fn run_each(
    team: &[&Program],
    interpreter: &Interpreter,
    profiler: Profiler,
    hook_ns: f64,
    context: &RunContext,
) -> Result<Profiled, RunError> {
    let threads = team.len();
    let (frames, bases) = frame_table(team);
    let bytecodes: Vec<_> = team.iter().map(|program| program.bytecode()).collect();
    let shared = [AtomicI64::new(0), AtomicI64::new(0)];
    let boards: Vec<StackBoard> = (0..threads).map(|_| StackBoard::default()).collect();
    let names: Vec<String> = (0..threads).map(|i| format!("thread {i}")).collect();
    let working = AtomicUsize::new(threads);
    let sampled = Mutex::new(None);
    let traced = Mutex::new(None::<CallTracer>);
    let keep_going = || context.check_cancel().is_ok();
    let sampler = matches!(profiler, Profiler::Sampling(_));
    run_team(threads + usize::from(sampler), |member| {
        if member.index == threads {
            if let Profiler::Sampling(rate) = profiler {
                let still = || working.load(Ordering::Acquire) > 0;
                *lock(&sampled) = Some(sampler::sample(&boards, &names, frames.clone(), rate, &still));
            }
            return;
        }
        let (index, recorder) = (member.index, context.trace());
        let run = |probe: &mut dyn Probe| {
            let mut probe = Offset { probe, base: bases[index] };
            interpreter.run_probed(&bytecodes[index], &shared, index, recorder, &keep_going, &mut probe);
        };
        match profiler {
            Profiler::None => run(&mut NoProbe),
            Profiler::Sampling(_) => run(&mut &boards[index]),
            Profiler::Instrumenting => {
                let mut tracer = cprofile(interpreter, hook_ns);
                run(&mut tracer);
                lock(&traced).get_or_insert_with(CallTracer::default).merge(&tracer);
            }
        }
        working.fetch_sub(1, Ordering::Release);
    })?;
    context.check_cancel()?;
    Ok(Profiled {
        result: shared[0].load(Ordering::Relaxed),
        sampled: sampled.into_inner().unwrap_or_else(|p| p.into_inner()),
        traced: traced.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

/// One frame table for `team`'s programs, and where each thread's program's frames start.
fn frame_table(team: &[&Program]) -> (Vec<String>, Vec<u32>) {
    let mut frames: Vec<String> = Vec::new();
    let mut placed: Vec<(*const Program, u32)> = Vec::new();
    let bases = team
        .iter()
        .map(|&program| match placed.iter().find(|(seen, _)| std::ptr::eq(*seen, program)) {
            Some(&(_, base)) => base,
            None => {
                let base = frames.len() as u32;
                frames.extend(program.frame_names());
                placed.push((program, base));
                base
            }
        })
        .collect();
    (frames, bases)
}

/// A probe whose frame ids start at `base` in a shared frame table.
struct Offset<'a> {
    probe: &'a mut dyn Probe,
    base: u32,
}

impl Probe for Offset<'_> {
    fn enter(&mut self, frame: u32, ops: u64) {
        self.probe.enter(self.base + frame, ops);
    }
    fn exit(&mut self, ops: u64) {
        self.probe.exit(ops);
    }
    fn state(&mut self, state: ThreadState) {
        self.probe.state(state);
    }
}

/// `read` at every thread count `variant` ran, folded by `fold` (the worst case: `f64::max` for an
/// error, `f64::min` for a flag that must hold everywhere), with those thread counts.
pub fn across_threads(
    facts: &Facts<'_>,
    variant: &str,
    read: impl Fn(usize) -> Result<f64, Verdict>,
    fold: fn(f64, f64) -> f64,
) -> Result<(Vec<usize>, f64), Verdict> {
    let threads = facts.threads_of(variant);
    let mut folded: Option<f64> = None;
    for &count in &threads {
        let value = read(count)?;
        folded = Some(folded.map_or(value, |seen| fold(seen, value)));
    }
    match folded {
        Some(value) => Ok((threads, value)),
        None => Err(not_testable(format!("{variant} did not run"))),
    }
}

/// The binomial standard error of a share `p` read off `n` samples, in percentage points.
pub fn binomial_sigma(p: f64, n: u64) -> f64 {
    (p * (1.0 - p) / n.max(1) as f64).sqrt() * 100.0
}

/// The on-CPU samples' share of function `name`'s self time, in %, and the samples.
pub fn sampled_share(profile: &Profile, name: &str) -> (f64, u64) {
    (profile.self_share(name, View::OnCpu) * 100.0, profile.samples(View::OnCpu))
}
