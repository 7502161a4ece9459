//! A model of Python's concurrency on real threads: a tiny bytecode and its interpreter, run
//! under CPython's GIL ([`gil`]) or free-threaded (PEP 703, no GIL).
//!
//! The instruction set has what the books' examples need: shared and local variables, `Add`,
//! calls, and the interpreter's *eval-breaker* points where CPython 3.11 checks for a GIL drop
//! request — a function's `RESUME` and a loop's back-edge — blocking I/O and a native no-GIL
//! section (both release the GIL, like `time.sleep` or a C extension). Programs follow
//! CPython 3.11's bytecode instruction for instruction (a few of its instructions are one
//! here), so a drop request lands between two breakers where it would in CPython.
//!
//! Each instruction takes `op_ns` nanoseconds ([`Spinner`] busy work, which the interpreter's
//! own ~3 ns of dispatch runs alongside; below ~4 ns the dispatch sets the pace).
//! `conlab calibrate-python` fits `op_ns` so the model's loop runs at this machine's CPython's
//! pace. Free-threaded mode makes each whole instruction — dispatch and busy work — `1 +
//! overhead` times as costly (free-threaded CPython 3.13 ran single-threaded code ~10–40%
//! slower; 3.14 ~5–10%): [`calibrate_free_threading`] measures the instruction's real cost on this
//! platform, since a browser's wasm dispatches several times slower than native code and the
//! dispatch overlaps the busy work — a flat `op_ns × (1 + overhead)` read 3.7% in a browser and
//! 13% natively for 10%.
//!
//! Shared variables are `AtomicI64`s loaded and stored separately (relaxed), so `x = x + 1`
//! from two threads can lose updates exactly when the interpreter lets another thread in
//! between the load and the store: never under the GIL unless a breaker (a call's `RESUME`)
//! sits between them, always possible free-threaded. Locals are the thread's own, as a
//! CPython frame's are: a loop over locals shares nothing.

pub mod event_loop;
pub mod gil;
pub mod manager;
pub mod process;

/// The experiments' default `op_ns`: CPython 3.11's pace on a recent x86-64 core, where its
/// `for _ in range(n): total = total + 1` takes ~32 ns an iteration (5 instructions here).
pub const DEFAULT_OP_NS: f64 = 6.5;

/// Iterations of a loop of `ops_per_iteration` instructions that take `cpu_ns` at `op_ns` an
/// instruction. An instruction counts as at least 1 ns: below that the interpreter's own
/// dispatch is its pace. `op_ns=0` is allowed (and `calibrate-python` fits 0
/// where the model cannot run as fast as CPython, as in a debug build); dividing by it once made
/// a loop of 2^63 iterations that held a server's handler, and its run, for good.
pub fn loop_iterations(cpu_ns: f64, ops_per_iteration: f64, op_ns: f64) -> i64 {
    (cpu_ns / (ops_per_iteration * op_ns.max(1.0))) as i64
}

use std::time::Duration;

use crate::kernels::spin::Spinner;
use crate::platform::{self, Instant, PlatformError};
use crate::profile::{NoProbe, Probe, ThreadState};
use crate::stats::LogHistogram;
use crate::sync::atomic::{AtomicI64, Ordering};
use crate::sync::{lock, Arc, Mutex};
use crate::trace::{Recorder, SpanKind, GIL_LANE};
use gil::Gil;

/// One bytecode instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Push a constant.
    Const(i64),
    /// Push shared variable i (`LOAD_GLOBAL`).
    LoadShared(usize),
    /// Pop into shared variable i (`STORE_GLOBAL`).
    StoreShared(usize),
    LoadLocal(usize),
    StoreLocal(usize),
    /// Pop two, push their sum (`BINARY_OP +`).
    Add,
    /// Drop the top of the stack (`POP_TOP`; `RETURN_VALUE`, whose value nobody uses here).
    Pop,
    /// Call function i of the program (`LOAD_GLOBAL f; PRECALL; CALL`, as one instruction). Not
    /// itself an eval-breaker point: the callee's [`Instruction::Resume`] is.
    Call(usize),
    /// A function's first instruction (`RESUME`): an eval-breaker point, where CPython 3.11
    /// checks for a GIL drop request on entering a Python function.
    Resume,
    /// `local[counter] -= 1`; jump to `to` while it stays > 0 (and `keep_going` holds): a loop
    /// back-edge, an eval-breaker point (`JUMP_BACKWARD; FOR_ITER; STORE_FAST _`: a third of its
    /// work runs before the check, the rest, the next iteration's start, after it).
    LoopBack {
        counter: usize,
        to: usize,
    },
    /// Blocking I/O for this many µs: releases the GIL while it waits.
    Io(u32),
    /// Native code busy on the CPU for this many ns with the GIL held: a C function's own work
    /// before and after any release (parsing its arguments, building its result object).
    Native(u64),
    /// Native code busy on the CPU for this many ns, the GIL released around it (a C extension's
    /// `Py_BEGIN_ALLOW_THREADS … Py_END_ALLOW_THREADS`, NumPy's kernels, hashlib on a big buffer).
    Nogil(u64),
    /// `lock.acquire()` on the `threading.Lock` that shared variable i is (0 free, 1 held): a
    /// thread that finds it held releases the GIL and waits — polling every 10 µs, where
    /// CPython blocks on a semaphore — then takes the GIL back.
    Acquire(usize),
    /// `lock.release()` on shared variable i.
    Release(usize),
}

/// Code plus the functions it calls (each a straight-line body).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytecode {
    pub code: Vec<Instruction>,
    pub functions: Vec<Vec<Instruction>>,
    /// Locals a frame needs.
    pub locals: usize,
}

impl Bytecode {
    /// `for _ in range(n): shared[0] = shared[0] + 1` — `counter += 1` in a loop.
    pub fn increment_loop(n: i64) -> Self {
        Self::increment_var_loop(0, n)
    }

    /// `counter += 1` in a loop on shared variable `var`.
    pub fn increment_var_loop(var: usize, n: i64) -> Self {
        Self {
            code: vec![
                Instruction::Const(n),
                Instruction::StoreLocal(0),
                Instruction::LoadShared(var),
                Instruction::Const(1),
                Instruction::Add,
                Instruction::StoreShared(var),
                Instruction::LoopBack { counter: 0, to: 2 },
            ],
            functions: Vec::new(),
            locals: 1,
        }
    }

    /// The same loop with a function call between the load and the store:
    /// `x = counter; f(); counter = x + 1` with `def f(): pass`, instruction for instruction
    /// as CPython 3.11 compiles it (three of its instructions are one here: `LOAD_GLOBAL f;
    /// PRECALL; CALL` is [`Instruction::Call`], `JUMP_BACKWARD; FOR_ITER; STORE_FAST _` is
    /// [`Instruction::LoopBack`], whose check comes after `JUMP_BACKWARD`, a third of its work).
    /// Of the loop's 12 instructions' time, 4⅔ lie between the back-edge's check and `f`'s
    /// `RESUME`: a drop request that arrives at a random moment is honoured inside the window
    /// between the load and the store ~0.4 of the time. (With the check at the back-edge's end,
    /// a third of the time, the model lost ~0.08 fewer increments than CPython on 2 threads.)
    pub fn increment_loop_with_call(n: i64) -> Self {
        Self {
            code: vec![
                Instruction::Const(n),
                Instruction::StoreLocal(0),
                Instruction::LoadShared(0),
                Instruction::StoreLocal(1),
                Instruction::Call(0),
                Instruction::Pop,
                Instruction::LoadLocal(1),
                Instruction::Const(1),
                Instruction::Add,
                Instruction::StoreShared(0),
                Instruction::LoopBack { counter: 0, to: 2 },
            ],
            // RESUME; LOAD_CONST None; RETURN_VALUE
            functions: vec![vec![Instruction::Resume, Instruction::Const(0), Instruction::Pop]],
            locals: 2,
        }
    }

    /// `for _ in range(n): data = recv(); counter += 1` — an I/O-bound thread: blocking I/O of
    /// `io_us` µs, then a little bytecode, n times.
    pub fn io_loop(var: usize, n: i64, io_us: u32) -> Self {
        let mut program = Self::increment_var_loop(var, n);
        // At the loop's head, where the back-edge jumps.
        program.code.insert(2, Instruction::Io(io_us));
        program
    }

    /// The books' CPU-bound function, the way its Python is written:
    /// `total = 0; for _ in range(n): total = total + 1` on a *local*, then the result added to
    /// shared variable `var` once (`results[var] += total`). Threads running it share nothing
    /// while they loop, as CPython's frames do not: free-threaded, it scales.
    pub fn counting_loop(var: usize, n: i64) -> Self {
        let mut code = Vec::new();
        if n > 0 {
            code.extend([
                Instruction::Const(n),
                Instruction::StoreLocal(0),
                Instruction::LoadLocal(1),
                Instruction::Const(1),
                Instruction::Add,
                Instruction::StoreLocal(1),
                Instruction::LoopBack { counter: 0, to: 2 },
            ]);
        }
        code.extend(add_to_shared(var, Instruction::LoadLocal(1)));
        Self { code, functions: Vec::new(), locals: 2 }
    }

    /// One task of a workload: blocking I/O of `io_us` µs (none if 0), then the
    /// [`counting_loop`](Self::counting_loop) of `n` iterations into shared variable `var`.
    pub fn task(var: usize, n: i64, io_us: u32) -> Self {
        let mut program = Self::counting_loop(var, n);
        if io_us > 0 {
            program.code.insert(0, Instruction::Io(io_us));
            for op in &mut program.code {
                if let Instruction::LoopBack { to, .. } = op {
                    *to += 1;
                }
            }
        }
        program
    }

    /// A C extension doing `iterations` of work at `native_ns` each in one call that releases the
    /// GIL for all of it (`with nogil:` around the whole loop in Cython), after `call_ns` of its
    /// own work with the GIL held: the call, then its result (the iterations it counted) added
    /// to shared variable `var`.
    pub fn native_call(var: usize, iterations: i64, native_ns: f64, call_ns: u64) -> Self {
        let mut code = vec![Instruction::Native(call_ns)];
        if iterations > 0 {
            code.push(Instruction::Nogil((iterations as f64 * native_ns).round() as u64));
        }
        code.extend(add_to_shared(var, Instruction::Const(iterations)));
        Self { code, functions: Vec::new(), locals: 1 }
    }

    /// The same work as [`native_call`](Self::native_call), one native call per `element`
    /// iterations from a Python loop (`for block in blocks: total += f(block)`, `f` releasing the
    /// GIL inside): every element takes the GIL back to run the loop's bytecode and the call's
    /// `call_ns` of held work, and drops it again. A last, shorter call does what is left over.
    pub fn native_per_element(var: usize, iterations: i64, element: i64, native_ns: f64, call_ns: u64) -> Self {
        let element = element.max(1);
        let (calls, rest) = (iterations / element, iterations % element);
        let call = |n: i64| {
            [
                Instruction::Native(call_ns),
                Instruction::Nogil((n as f64 * native_ns).round() as u64),
                Instruction::LoadLocal(1),
                Instruction::Const(n),
                Instruction::Add,
                Instruction::StoreLocal(1),
            ]
        };
        let mut code = Vec::new();
        if calls > 0 {
            code.extend([Instruction::Const(calls), Instruction::StoreLocal(0)]);
            code.extend(call(element));
            code.push(Instruction::LoopBack { counter: 0, to: 2 });
        }
        if rest > 0 {
            code.extend(call(rest));
        }
        code.extend(add_to_shared(var, Instruction::LoadLocal(1)));
        Self { code, functions: Vec::new(), locals: 2 }
    }

    /// Instructions one iteration of [`Bytecode::cpu_loop`] executes.
    pub const CPU_LOOP_OPS: f64 = 5.0;

    /// `for _ in range(n): total = total + 1` on a local: pure CPU work.
    pub fn cpu_loop(n: i64) -> Self {
        Self {
            code: vec![
                Instruction::Const(n),
                Instruction::StoreLocal(0),
                Instruction::LoadLocal(1),
                Instruction::Const(1),
                Instruction::Add,
                Instruction::StoreLocal(1),
                Instruction::LoopBack { counter: 0, to: 2 },
            ],
            functions: Vec::new(),
            locals: 2,
        }
    }
}

/// `shared[var] += <value>` (`results[var] += total`): load, the value's instruction, add, store.
fn add_to_shared(var: usize, value: Instruction) -> [Instruction; 4] {
    [Instruction::LoadShared(var), value, Instruction::Add, Instruction::StoreShared(var)]
}

/// How threads share the interpreter.
#[derive(Clone, Debug)]
pub enum Mode {
    /// CPython with the GIL.
    Gil(Arc<Gil>),
    /// PEP 703 free-threading: no GIL, each instruction `1 + overhead` times as costly.
    FreeThreaded { overhead: f64 },
}

/// Busy work per instruction for free-threaded runs, by `(op_ns, overhead)`: a cache, not a
/// primitive under study, so std's lock even under loom (whose Mutex has no const constructor
/// for a static).
static FREE_THREADED_OP_NS: std::sync::Mutex<Vec<((u64, u64), f64)>> = std::sync::Mutex::new(Vec::new());

fn free_threaded_cache() -> std::sync::MutexGuard<'static, Vec<((u64, u64), f64)>> {
    FREE_THREADED_OP_NS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The busy work per instruction a free-threaded run at `op_ns` and `overhead` uses: what
/// [`calibrate_free_threading`] measured last, or measured now.
pub fn free_threaded_op_ns(op_ns: f64, overhead: f64, spinner: Spinner) -> f64 {
    let key = (op_ns.to_bits(), overhead.to_bits());
    let cached = free_threaded_cache().iter().find(|(k, _)| *k == key).map(|(_, busy)| *busy);
    cached.unwrap_or_else(|| calibrate_free_threading(op_ns, overhead, spinner))
}

/// Measures, on this platform and now, the busy work per instruction that makes a whole
/// free-threaded instruction `1 + overhead` times the cost of one at `op_ns`, and keeps it for
/// the runs that follow. An experiment calls it while it prepares (untimed), so a reading
/// disturbed by a busy moment lasts one run, not the process (one kept for a whole test
/// suite's process read +30% for 10% in every run after it).
///
/// The interpreter's time per instruction at `op_ns` and 4 ns above it gives its slope, and
/// the busy work grows by the overhead's share of the whole over that slope. The two are timed
/// in alternation, nine times each, and the fastest of each kept: a neighbour that slows both
/// alike leaves their ratio, and so the result, as it was.
pub fn calibrate_free_threading(op_ns: f64, overhead: f64, spinner: Spinner) -> f64 {
    const STEP_NS: f64 = 4.0;
    let per_instruction = |op_ns: f64| {
        let bare = Interpreter { mode: Mode::FreeThreaded { overhead: 0.0 }, op_ns, spinner };
        let start = Instant::now();
        let stats =
            bare.run(&Bytecode::counting_loop(0, 10_000), &[AtomicI64::new(0)], 0, &Recorder::new(false), &|| true);
        start.elapsed().as_nanos() as f64 / stats.instructions.max(1) as f64
    };
    let (mut at, mut above) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..9 {
        at = at.min(per_instruction(op_ns));
        above = above.min(per_instruction(op_ns + STEP_NS));
    }
    let slope = ((above - at) / STEP_NS).clamp(0.5, 2.0);
    let busy = op_ns + overhead * at / slope;
    let key = (op_ns.to_bits(), overhead.to_bits());
    let mut cache = free_threaded_cache();
    cache.retain(|(k, _)| *k != key);
    cache.push((key, busy));
    busy
}

/// The interpreter's configuration for one run.
#[derive(Clone, Debug)]
pub struct Interpreter {
    pub mode: Mode,
    /// Busy work per instruction, in ns (CPython's pace).
    pub op_ns: f64,
    pub spinner: Spinner,
}

/// What one thread's run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadStats {
    pub instructions: u64,
    /// Times this thread took the GIL.
    pub takes: u64,
    /// Nanoseconds spent waiting for the GIL.
    pub gil_wait_ns: u64,
    /// Each wait for the GIL after blocking I/O, in ns: how long a thread whose I/O is ready
    /// waits to run again (Beazley's convoy effect).
    pub io_response_ns: LogHistogram,
}

/// What [`Interpreter::run_team`] leaves behind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeamRun {
    /// The shared variables' final values.
    pub values: Vec<i64>,
    /// Per thread, in team order.
    pub stats: Vec<ThreadStats>,
}

struct Held<'a> {
    gil: Option<&'a Gil>,
    thread: usize,
    since: Instant,
}

impl Interpreter {
    /// Runs `program` as thread `thread` against `shared`; GIL tenures and waits are recorded
    /// on `recorder` (lane = thread). `keep_going` is polled at back-edges (cancellation).
    pub fn run(
        &self,
        program: &Bytecode,
        shared: &[AtomicI64],
        thread: usize,
        recorder: &Recorder,
        keep_going: &dyn Fn() -> bool,
    ) -> ThreadStats {
        self.run_from(program, shared, thread, recorder, keep_going, false, &mut NoProbe)
    }

    /// [`Interpreter::run`] telling `probe` every call, return and wait: frame 0 is the
    /// program's own code, function `f` frame `f + 1` (a profiler's view of the thread).
    pub fn run_probed(
        &self,
        program: &Bytecode,
        shared: &[AtomicI64],
        thread: usize,
        recorder: &Recorder,
        keep_going: &dyn Fn() -> bool,
        probe: &mut dyn Probe,
    ) -> ThreadStats {
        self.run_from(program, shared, thread, recorder, keep_going, false, probe)
    }

    /// What `program` leaves in its one shared variable — a Python function's return value —
    /// when Python thread `thread` runs it to the end, untraced.
    pub fn result(&self, program: &Bytecode, thread: usize) -> i64 {
        self.result_from(program, thread, false)
    }

    /// [`Interpreter::result`] for a thread that already holds the GIL and keeps it afterwards —
    /// an event loop's thread running a coroutine's bytecode ([`event_loop::GilClock`]). At
    /// breakers it still hands the GIL over when another thread asks.
    pub fn result_holding_gil(&self, program: &Bytecode, thread: usize) -> i64 {
        self.result_from(program, thread, true)
    }

    fn result_from(&self, program: &Bytecode, thread: usize, holding: bool) -> i64 {
        let result = [AtomicI64::new(0)];
        self.run_from(program, &result, thread, &Recorder::new(false), &|| true, holding, &mut NoProbe);
        result[0].load(Ordering::Relaxed)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_from(
        &self,
        program: &Bytecode,
        shared: &[AtomicI64],
        thread: usize,
        recorder: &Recorder,
        keep_going: &dyn Fn() -> bool,
        holding: bool,
        probe: &mut dyn Probe,
    ) -> ThreadStats {
        let mut stats = ThreadStats::default();
        let gil = match &self.mode {
            Mode::Gil(gil) => Some(&**gil),
            Mode::FreeThreaded { .. } => None,
        };
        let op_ns = match self.mode {
            Mode::Gil(_) => self.op_ns,
            Mode::FreeThreaded { overhead: 0.0 } => self.op_ns,
            Mode::FreeThreaded { overhead } => free_threaded_op_ns(self.op_ns, overhead, self.spinner),
        };
        let mut held = Held { gil, thread, since: Instant::now() };
        probe.enter(0, 0);
        if !holding {
            self.acquire(&mut held, &mut stats, recorder, probe);
        }
        let mut locals = vec![0i64; program.locals.max(1)];
        let mut stack: Vec<i64> = Vec::with_capacity(8);
        self.exec(
            &program.code,
            program,
            shared,
            &mut locals,
            &mut stack,
            op_ns,
            &mut held,
            &mut stats,
            recorder,
            keep_going,
            probe,
        );
        if !holding {
            self.release(&held, recorder);
        }
        probe.exit(stats.instructions);
        stats
    }

    /// Runs `program(i)` as thread i of a team of `threads`, against `vars` shared variables
    /// (all starting at 0); returns their final values and each thread's statistics.
    pub fn run_team(
        &self,
        threads: usize,
        vars: usize,
        program: impl Fn(usize) -> Bytecode + Sync,
        recorder: &Recorder,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<TeamRun, PlatformError> {
        let shared: Vec<AtomicI64> = (0..vars).map(|_| AtomicI64::new(0)).collect();
        let stats = Mutex::new(vec![ThreadStats::default(); threads]);
        platform::run_team(threads, |member| {
            let thread = self.run(&program(member.index), &shared, member.index, recorder, keep_going);
            lock(&stats)[member.index] = thread;
        })?;
        Ok(TeamRun {
            values: shared.iter().map(|v| v.load(Ordering::Relaxed)).collect(),
            stats: stats.into_inner().unwrap_or_else(|p| p.into_inner()),
        })
    }

    /// Takes the GIL (if any); returns how long that waited, in ns.
    fn acquire(&self, held: &mut Held<'_>, stats: &mut ThreadStats, recorder: &Recorder, probe: &mut dyn Probe) -> u64 {
        let mut waited = 0;
        if let Some(gil) = held.gil {
            probe.state(ThreadState::Gil);
            let taken = gil.take(held.thread);
            probe.state(ThreadState::Running);
            let now = Instant::now();
            stats.takes += 1;
            waited = now.duration_since(taken.waited_from).as_nanos() as u64;
            stats.gil_wait_ns += waited;
            if now.duration_since(taken.waited_from) > Duration::from_micros(1) {
                let label =
                    if taken.requests > 0 { "waiting for the GIL (asked for a drop)" } else { "waiting for the GIL" };
                recorder.record_at(held.thread, SpanKind::Wait, label, taken.waited_from, now);
            }
            if let (Some(asked), true) = (taken.first_request, recorder.is_enabled()) {
                recorder.record_at(
                    GIL_LANE,
                    SpanKind::Mark,
                    format!("thread {} asks for a drop", held.thread),
                    asked,
                    asked,
                );
            }
            held.since = now;
        }
        waited
    }

    fn release(&self, held: &Held<'_>, recorder: &Recorder) {
        if let Some(gil) = held.gil {
            let now = Instant::now();
            recorder.record_at(held.thread, SpanKind::Run, "holding the GIL", held.since, now);
            if recorder.is_enabled() {
                recorder.record_at(GIL_LANE, SpanKind::Run, format!("held by thread {}", held.thread), held.since, now);
            }
            gil.drop_gil(held.thread);
        }
    }

    /// At an eval-breaker point: hand the GIL over if a waiter asked.
    fn breaker(&self, held: &mut Held<'_>, stats: &mut ThreadStats, recorder: &Recorder, probe: &mut dyn Probe) {
        if held.gil.is_some_and(Gil::drop_requested) {
            self.release(held, recorder);
            self.acquire(held, stats, recorder, probe);
        }
    }

    /// Takes the lock `word` (0 → 1); while another thread holds it, waits with the GIL
    /// released. `false` if the run was cancelled while it waited.
    fn take_lock(
        &self,
        word: &AtomicI64,
        held: &mut Held<'_>,
        stats: &mut ThreadStats,
        recorder: &Recorder,
        keep_going: &dyn Fn() -> bool,
        probe: &mut dyn Probe,
    ) -> bool {
        let take = || word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if take() {
            return true;
        }
        self.release(held, recorder);
        probe.state(ThreadState::Lock);
        let start = Instant::now();
        while !take() {
            if !keep_going() {
                // Cancelled: hold the GIL again, as every way out of the interpreter does.
                probe.state(ThreadState::Running);
                self.acquire(held, stats, recorder, probe);
                return false;
            }
            platform::sleep(Duration::from_micros(10));
        }
        recorder.record_at(held.thread, SpanKind::Wait, "waiting for a lock (GIL released)", start, Instant::now());
        probe.state(ThreadState::Running);
        self.acquire(held, stats, recorder, probe);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        code: &[Instruction],
        program: &Bytecode,
        shared: &[AtomicI64],
        locals: &mut [i64],
        stack: &mut Vec<i64>,
        op_ns: f64,
        held: &mut Held<'_>,
        stats: &mut ThreadStats,
        recorder: &Recorder,
        keep_going: &dyn Fn() -> bool,
        probe: &mut dyn Probe,
    ) {
        let mut pc = 0;
        while let Some(&op) = code.get(pc) {
            stats.instructions += 1;
            // The back-edge's work runs around its check (below); every other instruction's
            // before it acts.
            if !matches!(op, Instruction::LoopBack { .. }) {
                self.spinner.spin(op_ns);
            }
            pc += 1;
            match op {
                Instruction::Const(value) => stack.push(value),
                Instruction::LoadShared(i) => stack.push(shared[i].load(Ordering::Relaxed)),
                Instruction::StoreShared(i) => shared[i].store(stack.pop().unwrap_or(0), Ordering::Relaxed),
                Instruction::LoadLocal(i) => stack.push(locals[i]),
                Instruction::StoreLocal(i) => locals[i] = stack.pop().unwrap_or(0),
                Instruction::Add => {
                    let (b, a) = (stack.pop().unwrap_or(0), stack.pop().unwrap_or(0));
                    stack.push(a.wrapping_add(b));
                }
                Instruction::Pop => {
                    stack.pop();
                }
                Instruction::Call(f) => {
                    let body = &program.functions[f];
                    probe.enter(f as u32 + 1, stats.instructions);
                    self.exec(body, program, shared, locals, stack, op_ns, held, stats, recorder, keep_going, probe);
                    probe.exit(stats.instructions);
                    // The callee's RETURN_VALUE pushes its result.
                    stack.push(0);
                }
                Instruction::Resume => {
                    self.breaker(held, stats, recorder, probe);
                }
                Instruction::LoopBack { counter, to } => {
                    // `JUMP_BACKWARD` runs, then checks; `FOR_ITER; STORE_FAST _` run after
                    // the check, so a drop request that lands in them waits for the next breaker.
                    self.spinner.spin(op_ns / 3.0);
                    locals[counter] -= 1;
                    if locals[counter] > 0 {
                        if !keep_going() {
                            return;
                        }
                        pc = to;
                    }
                    self.breaker(held, stats, recorder, probe);
                    self.spinner.spin(op_ns * 2.0 / 3.0);
                }
                Instruction::Io(micros) => {
                    self.release(held, recorder);
                    probe.state(ThreadState::Io);
                    let start = Instant::now();
                    platform::sleep(Duration::from_micros(u64::from(micros)));
                    probe.state(ThreadState::Running);
                    recorder.record_at(
                        held.thread,
                        SpanKind::Wait,
                        "blocking I/O (GIL released)",
                        start,
                        Instant::now(),
                    );
                    let waited = self.acquire(held, stats, recorder, probe);
                    stats.io_response_ns.record(waited);
                }
                Instruction::Acquire(lock) => {
                    if !self.take_lock(&shared[lock], held, stats, recorder, keep_going, probe) {
                        return;
                    }
                }
                Instruction::Release(lock) => shared[lock].store(0, Ordering::Release),
                Instruction::Native(nanos) => self.spinner.spin(nanos as f64),
                Instruction::Nogil(nanos) => {
                    self.release(held, recorder);
                    let start = Instant::now();
                    self.spinner.spin(nanos as f64);
                    recorder.record_at(held.thread, SpanKind::Run, "native code (GIL released)", start, Instant::now());
                    self.acquire(held, stats, recorder, probe);
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;

    fn interpreter(mode: Mode) -> Interpreter {
        Interpreter { mode, op_ns: 0.0, spinner: Spinner::calibrate() }
    }

    fn gil() -> Mode {
        Mode::Gil(Arc::new(Gil::new(Duration::from_micros(200))))
    }

    /// Runs `program` on `threads` threads; returns the shared counter.
    fn run(interpreter: &Interpreter, program: &Bytecode, threads: usize) -> i64 {
        interpreter.run_team(threads, 1, |_| program.clone(), &Recorder::new(false), &|| true).unwrap().values[0]
    }

    #[test]
    fn a_task_does_its_io_then_its_loop() {
        let interpreter = interpreter(gil());
        assert_eq!(run(&interpreter, &Bytecode::task(0, 50, 100), 1), 50);
        assert_eq!(run(&interpreter, &Bytecode::task(0, 0, 100), 1), 0);
        assert_eq!(run(&interpreter, &Bytecode::task(0, 50, 0), 1), 50);
    }

    #[test]
    fn one_thread_counts_exactly_in_every_mode() {
        for mode in [gil(), Mode::FreeThreaded { overhead: 0.0 }] {
            assert_eq!(run(&interpreter(mode.clone()), &Bytecode::increment_loop(1000), 1), 1000);
            assert_eq!(run(&interpreter(mode), &Bytecode::increment_loop_with_call(1000), 1), 1000);
        }
    }

    #[test]
    fn native_calls_count_their_iterations_and_per_element_retakes_the_gil_per_call() {
        let interpreter = interpreter(gil());
        let recorder = Recorder::new(false);
        for (iterations, element, calls) in [(1000, 64, 16), (1024, 64, 16), (10, 64, 1), (0, 64, 0)] {
            let shared = [AtomicI64::new(0)];
            let whole =
                interpreter.run(&Bytecode::native_call(0, iterations, 1.0, 10), &shared, 0, &recorder, &|| true);
            assert_eq!(shared[0].load(Ordering::Relaxed), iterations);
            assert_eq!(whole.takes, 1 + u64::from(iterations > 0), "one take, and one after the call");
            let shared = [AtomicI64::new(0)];
            let program = Bytecode::native_per_element(0, iterations, element, 1.0, 10);
            let each = interpreter.run(&program, &shared, 0, &recorder, &|| true);
            assert_eq!(shared[0].load(Ordering::Relaxed), iterations, "{iterations} by {element}");
            assert_eq!(each.takes, 1 + calls, "{iterations} by {element}: a take after every call");
        }
    }

    /// An interpreter at ~CPython pace (20 ns per instruction), so 300 000 iterations last
    /// ~50 ms per thread: long enough for both threads to overlap and the GIL to switch often.
    fn paced_gil() -> (Arc<Gil>, Interpreter) {
        let gil = Arc::new(Gil::new(Duration::from_micros(200)));
        (Arc::clone(&gil), Interpreter { op_ns: 20.0, ..interpreter(Mode::Gil(gil)) })
    }

    #[test]
    fn under_the_gil_counter_plus_equals_one_loses_nothing() {
        // No breaker between the load and the store: the GIL changes hands only at the back-edge.
        let (gil, interpreter) = paced_gil();
        assert_eq!(run(&interpreter, &Bytecode::increment_loop(300_000), 2), 600_000);
        assert!(gil.drop_requests() > 0, "the threads did take turns");
    }

    #[test]
    fn a_call_between_load_and_store_lets_the_gil_switch_and_lose_updates() {
        // Forced switches at the call land between the load and the store: the other thread's
        // increments in between are overwritten.
        let (_, interpreter) = paced_gil();
        let counted = run(&interpreter, &Bytecode::increment_loop_with_call(300_000), 2);
        assert!(counted < 600_000, "no update lost in {counted}");
    }

    #[test]
    fn the_gil_lets_only_one_thread_run_and_waiters_force_switches() {
        let gil = Arc::new(Gil::new(Duration::from_micros(500)));
        let interpreter = interpreter(Mode::Gil(Arc::clone(&gil)));
        let recorder = Recorder::new(true);
        let shared = [AtomicI64::new(0)];
        // Long enough (~20 ms) that the second thread is waiting before the first is done,
        // however late a busy machine starts it.
        run_team(2, |member| {
            interpreter.run(&Bytecode::cpu_loop(4_000_000), &shared, member.index, &recorder, &|| true);
        })
        .unwrap();
        assert!(gil.drop_requests() >= 1, "the waiter had to ask");
        let spans = recorder.take();
        let mut held: Vec<_> = spans.iter().filter(|s| s.label == "holding the GIL").collect();
        held.sort_by_key(|s| s.start_ns);
        assert!(held.windows(2).all(|w| w[0].end_ns <= w[1].start_ns + 1_000), "two holders at once");
        assert!(held.len() >= 3, "the GIL changed hands: {}", held.len());
        let gil_lane: Vec<_> = spans.iter().filter(|s| s.thread == GIL_LANE).collect();
        assert!(gil_lane.iter().any(|s| s.kind == SpanKind::Run && s.label.starts_with("held by thread")));
        assert!(gil_lane.iter().any(|s| s.kind == SpanKind::Mark && s.label.ends_with("asks for a drop")));
    }

    #[test]
    fn a_lock_around_the_window_loses_nothing_and_its_waiters_release_the_gil() {
        // `with lock: x = counter; f(); counter = x + 1` on two threads: the call's RESUME lets
        // the GIL switch inside the window, but the other thread then waits for the lock (the
        // GIL released), so no increment is lost. Shared variable 1 is the lock.
        let (gil, interpreter) = paced_gil();
        let mut program = Bytecode::increment_loop_with_call(100_000);
        program.code.insert(2, Instruction::Acquire(1));
        let store = program.code.iter().position(|op| *op == Instruction::StoreShared(0)).unwrap();
        program.code.insert(store + 1, Instruction::Release(1));
        if let Some(Instruction::LoopBack { to, .. }) = program.code.last_mut() {
            *to = 2;
        }
        let run = interpreter.run_team(2, 2, |_| program.clone(), &Recorder::new(false), &|| true).unwrap();
        assert_eq!(run.values, [200_000, 0], "every increment counted, the lock free at the end");
        assert!(gil.drop_requests() > 0, "the threads did take turns");
    }

    #[test]
    fn io_and_native_sections_release_the_gil() {
        for op in [Instruction::Io(20_000), Instruction::Nogil(20_000_000)] {
            let interpreter = interpreter(gil());
            let recorder = Recorder::new(true);
            let program = Bytecode { code: vec![op], functions: vec![], locals: 0 };
            run_team(2, |member| {
                interpreter.run(&program, &[], member.index, &recorder, &|| true);
            })
            .unwrap();
            // The two threads' I/O (or native) spans overlap: impossible if either held the GIL.
            let spans: Vec<_> = recorder.take().into_iter().filter(|s| s.label.contains("GIL released")).collect();
            assert_eq!(spans.len(), 2, "{op:?}");
            let (a, b) = (&spans[0], &spans[1]);
            assert!(a.start_ns < b.end_ns && b.start_ns < a.end_ns, "{op:?}: the sections did not overlap");
        }
    }
}
