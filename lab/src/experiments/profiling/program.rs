//! The profiled program, in the Python model's bytecode: a main loop calling named functions,
//! each doing a set amount of work per call, run on threads under the GIL with a profiler.
//!
//! ```python
//! def parse():     for _ in range(P): total += 1
//! def transform(): for _ in range(H): total += 1     # the planted hot path
//! def save():      for _ in range(S): total += 1
//! for _ in range(iterations): parse(); transform(); save()
//! ```

use conlab_core::platform::run_team;
use conlab_core::profile::board::StackBoard;
use conlab_core::profile::sampler::{self, Sampled};
use conlab_core::profile::tracer::CallTracer;
use conlab_core::profile::{NoProbe, Profile, View};
use conlab_core::pymodel::{Bytecode, Instruction, Interpreter};
use conlab_core::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Mutex};

use crate::experiment::{RunContext, RunError};

/// Instructions a call of a function with `work` loop iterations executes: `RESUME`, the
/// loop's set-up (2) and 5 per iteration.
pub fn ops_per_call(work: i64) -> i64 {
    3 + 5 * work
}

/// Instructions of the main loop's own per iteration: three calls, three pops, the back-edge.
pub const MAIN_OPS: i64 = 7;

/// The functions, by name and work per call.
#[derive(Clone, Debug)]
pub struct Program {
    pub functions: Vec<(&'static str, i64)>,
    pub iterations: i64,
}

/// Locals: 0 the main loop's counter, 1 the functions' loop counter, 2 the running total.
const TOTAL: usize = 2;

impl Program {
    /// The frames as profiles name them: 0 the thread's own code, then the functions.
    pub fn frame_names(&self) -> Vec<String> {
        std::iter::once("<module>").chain(self.functions.iter().map(|(name, _)| *name)).map(str::to_string).collect()
    }

    /// The bytecode; its result (shared variable 0) is the loop iterations all calls ran.
    pub fn bytecode(&self) -> Bytecode {
        let mut code = vec![Instruction::Const(self.iterations), Instruction::StoreLocal(0)];
        for function in 0..self.functions.len() {
            code.extend([Instruction::Call(function), Instruction::Pop]);
        }
        code.push(Instruction::LoopBack { counter: 0, to: 2 });
        code.extend([Instruction::LoadShared(0), Instruction::LoadLocal(TOTAL), Instruction::Add]);
        code.push(Instruction::StoreShared(0));
        let function = |work: i64| {
            vec![
                Instruction::Resume,
                Instruction::Const(work),
                Instruction::StoreLocal(1),
                Instruction::LoadLocal(TOTAL),
                Instruction::Const(1),
                Instruction::Add,
                Instruction::StoreLocal(TOTAL),
                Instruction::LoopBack { counter: 1, to: 3 },
            ]
        };
        Bytecode { code, functions: self.functions.iter().map(|&(_, work)| function(work)).collect(), locals: 3 }
    }

    /// What one thread's run adds to the result.
    pub fn per_thread(&self) -> i64 {
        self.iterations * self.functions.iter().map(|(_, work)| work).sum::<i64>()
    }

    /// Function `name`'s exact share of the instructions (its self time: every instruction
    /// costs the same).
    pub fn exact_share(&self, name: &str) -> f64 {
        let per_iteration: i64 = MAIN_OPS + self.functions.iter().map(|&(_, work)| ops_per_call(work)).sum::<i64>();
        let own = self.functions.iter().find(|(n, _)| *n == name).map_or(0, |&(_, work)| ops_per_call(work));
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

/// Runs `program` on `threads` threads under `interpreter`, profiled by `profiler`.
pub fn run(
    program: &Program,
    interpreter: &Interpreter,
    threads: usize,
    profiler: Profiler,
    context: &RunContext,
) -> Result<Profiled, RunError> {
    let bytecode = program.bytecode();
    let shared = [AtomicI64::new(0)];
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
                *lock(&sampled) = Some(sampler::sample(&boards, &names, program.frame_names(), rate, &still));
            }
            return;
        }
        let (index, recorder) = (member.index, context.trace());
        match profiler {
            Profiler::None => {
                interpreter.run_probed(&bytecode, &shared, index, recorder, &keep_going, &mut NoProbe);
            }
            Profiler::Sampling(_) => {
                interpreter.run_probed(&bytecode, &shared, index, recorder, &keep_going, &mut &boards[index]);
            }
            Profiler::Instrumenting => {
                let mut tracer = CallTracer::default();
                interpreter.run_probed(&bytecode, &shared, index, recorder, &keep_going, &mut tracer);
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

/// The binomial standard error of a share `p` read off `n` samples, in percentage points.
pub fn binomial_sigma(p: f64, n: u64) -> f64 {
    (p * (1.0 - p) / n.max(1) as f64).sqrt() * 100.0
}

/// The on-CPU samples' share of function `name`'s self time, in %, and the samples.
pub fn sampled_share(profile: &Profile, name: &str) -> (f64, u64) {
    (profile.self_share(name, View::OnCpu) * 100.0, profile.samples(View::OnCpu))
}
