//! Profilers of the lab's own workloads, the two kinds the books compare:
//!
//! - **instrumenting** ([`tracer`]): every call's entry and exit recorded with a clock read —
//!   the `sys.setprofile` / cProfile model. Exact call counts and inclusive / exclusive times,
//!   at a cost on every call that inflates whatever calls most (the probe effect).
//! - **sampling** ([`sampler`]): another thread reads each worker's published stack
//!   ([`board`]) at a set rate without stopping it — the py-spy model. The worker's only cost
//!   is publishing its frames; the shares it reports carry a binomial error that shrinks with
//!   the samples.
//!
//! Every sample is tagged with what the thread was doing ([`ThreadState`]): the same profile
//! read **on-CPU** keeps only the running samples (what perf and cProfile's CPU clock see),
//! read **wall-clock** keeps them all, with each wait as a frame of its own (py-spy `--idle`).
//! [`timeline`] samples a recorded trace the same way, so any experiment can be profiled by the
//! spans its workers were in; [`export`] writes the ecosystem's formats (collapsed stacks,
//! speedscope JSON) and a flame graph.

pub mod board;
pub mod export;
pub mod sampler;
pub mod timeline;
pub mod tracer;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What a thread was doing when it was sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadState {
    /// On a CPU, running its innermost frame.
    Running = 0,
    /// Waiting to take the GIL back.
    Gil = 1,
    /// Blocked on a lock.
    Lock = 2,
    /// Blocked in I/O (or sleeping).
    Io = 3,
    /// Waiting in its innermost frame, which names what for (a recorded span of kind wait or
    /// idle, a `join`): no frame is added for it.
    Waiting = 4,
}

impl ThreadState {
    pub(crate) fn from_u32(value: u32) -> Self {
        match value {
            1 => Self::Gil,
            2 => Self::Lock,
            3 => Self::Io,
            4 => Self::Waiting,
            _ => Self::Running,
        }
    }

    /// The frame a wall-clock view puts on top of a waiting thread's stack, when its innermost
    /// frame does not already say what it waits for.
    pub fn wait_frame(self) -> Option<&'static str> {
        match self {
            Self::Running | Self::Waiting => None,
            Self::Gil => Some("(waiting for the GIL)"),
            Self::Lock => Some("(waiting for a lock)"),
            Self::Io => Some("(waiting for I/O)"),
        }
    }
}

/// What a running program tells a profiler: calls, returns and waits. The Python model's
/// interpreter calls it at each call and return (frame 0 is the thread's own code; function
/// `f` of its program is frame `f + 1`) and around each wait for the GIL or I/O.
pub trait Probe {
    /// Frame `frame` is entered, `ops` instructions into the run.
    fn enter(&mut self, frame: u32, ops: u64);
    /// The innermost frame returns.
    fn exit(&mut self, ops: u64);
    /// The thread starts waiting, or runs again ([`ThreadState::Running`]).
    fn state(&mut self, state: ThreadState);
}

/// No profiler.
pub struct NoProbe;

impl Probe for NoProbe {
    #[inline]
    fn enter(&mut self, _: u32, _: u64) {}
    #[inline]
    fn exit(&mut self, _: u64) {}
    #[inline]
    fn state(&mut self, _: ThreadState) {}
}

/// The sampling profiler's side on the worker: publish every change.
impl Probe for &board::StackBoard {
    fn enter(&mut self, frame: u32, _: u64) {
        self.push(frame);
    }
    fn exit(&mut self, _: u64) {
        self.pop();
    }
    fn state(&mut self, state: ThreadState) {
        self.set_state(state);
    }
}

/// The instrumenting profiler: a clock read at every call and return; waits are its callers'.
impl Probe for tracer::CallTracer {
    fn enter(&mut self, frame: u32, ops: u64) {
        tracer::CallTracer::enter(self, frame, ops);
    }
    fn exit(&mut self, ops: u64) {
        tracer::CallTracer::exit(self, ops);
    }
    fn state(&mut self, _: ThreadState) {}
}

/// Which samples a view keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    /// Every sample; a waiting thread's stack ends in its wait.
    Wall,
    /// Only the samples of running threads.
    OnCpu,
}

/// One distinct stack and how many samples found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackCount {
    /// The thread's name ("thread 0"), the root of its stacks in every output.
    pub thread: String,
    /// Indices into [`Profile::frames`], outermost first.
    pub frames: Vec<u32>,
    pub state: ThreadState,
    pub count: u64,
}

/// Samples aggregated by stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Frame names; stacks index into it.
    pub frames: Vec<String>,
    /// Distinct stacks, in the order first seen.
    pub stacks: Vec<StackCount>,
    /// The time one sample stands for, in ns (the sampling period).
    pub period_ns: f64,
}

/// A path through the profile as the outputs draw it: the thread, its frames, and in the
/// wall-clock view the wait on top.
pub type Path = Vec<String>;

impl Profile {
    /// Samples the view keeps.
    pub fn samples(&self, view: View) -> u64 {
        self.kept(view).map(|stack| stack.count).sum()
    }

    fn kept(&self, view: View) -> impl Iterator<Item = &StackCount> {
        self.stacks.iter().filter(move |stack| view == View::Wall || stack.state == ThreadState::Running)
    }

    /// Every kept stack as names, root (the thread) first, with its samples — merged where two
    /// stacks read the same.
    pub fn paths(&self, view: View) -> Vec<(Path, u64)> {
        self.paths_waiting(view).into_iter().map(|(path, count, _)| (path, count)).collect()
    }

    /// [`Profile::paths`], each with whether its samples found the thread waiting.
    pub fn paths_waiting(&self, view: View) -> Vec<(Path, u64, bool)> {
        let mut merged: Vec<(Path, u64, bool)> = Vec::new();
        let mut index: HashMap<(Path, bool), usize> = HashMap::new();
        for stack in self.kept(view) {
            let mut path = vec![stack.thread.clone()];
            path.extend(stack.frames.iter().map(|&f| self.frame_name(f).to_string()));
            if view == View::Wall {
                path.extend(stack.state.wait_frame().map(str::to_string));
            }
            let waiting = stack.state != ThreadState::Running;
            match index.get(&(path.clone(), waiting)) {
                Some(&at) => merged[at].1 += stack.count,
                None => {
                    index.insert((path.clone(), waiting), merged.len());
                    merged.push((path, stack.count, waiting));
                }
            }
        }
        merged
    }

    fn frame_name(&self, frame: u32) -> &str {
        self.frames.get(frame as usize).map_or("?", String::as_str)
    }

    /// The share of the view's samples whose innermost frame is `frame` (its self time).
    pub fn self_share(&self, frame: &str, view: View) -> f64 {
        self.share(view, |stack| stack.frames.last().is_some_and(|&f| self.frame_name(f) == frame))
    }

    /// The share of the view's samples with `frame` anywhere on the stack (its total time).
    pub fn total_share(&self, frame: &str, view: View) -> f64 {
        self.share(view, |stack| stack.frames.iter().any(|&f| self.frame_name(f) == frame))
    }

    /// The share of the view's samples of `thread`.
    pub fn thread_share(&self, thread: &str, view: View) -> f64 {
        self.share(view, |stack| stack.thread == thread)
    }

    fn share(&self, view: View, keep: impl Fn(&StackCount) -> bool) -> f64 {
        let total = self.samples(view);
        let kept: u64 = self.kept(view).filter(|stack| keep(stack)).map(|stack| stack.count).sum();
        if total == 0 {
            0.0
        } else {
            kept as f64 / total as f64
        }
    }

    /// The innermost frame with the most self samples in the view, and its share.
    pub fn hottest(&self, view: View) -> Option<(String, f64)> {
        let mut by_frame: HashMap<&str, u64> = HashMap::new();
        for stack in self.kept(view) {
            if let Some(&leaf) = stack.frames.last() {
                *by_frame.entry(self.frame_name(leaf)).or_default() += stack.count;
            }
        }
        let total = self.samples(view).max(1) as f64;
        let mut frames: Vec<_> = by_frame.into_iter().collect();
        frames.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        frames.first().map(|(name, count)| (name.to_string(), *count as f64 / total))
    }

    /// Adds `other`'s samples (same period assumed; frames are matched by name).
    pub fn merge(&mut self, other: &Profile) {
        let mut builder = ProfileBuilder::from(std::mem::take(self));
        for stack in &other.stacks {
            let frames: Vec<u32> = stack.frames.iter().map(|&f| builder.frame(other.frame_name(f))).collect();
            builder.add(&stack.thread, frames, stack.state, stack.count);
        }
        if builder.profile.period_ns == 0.0 {
            builder.profile.period_ns = other.period_ns;
        }
        *self = builder.finish();
    }
}

/// Builds a [`Profile`] one sample at a time.
#[derive(Debug, Default)]
pub struct ProfileBuilder {
    profile: Profile,
    frame_ids: HashMap<String, u32>,
    stack_ids: HashMap<(String, Vec<u32>, ThreadState), usize>,
}

impl From<Profile> for ProfileBuilder {
    fn from(profile: Profile) -> Self {
        let frame_ids = profile.frames.iter().enumerate().map(|(i, name)| (name.clone(), i as u32)).collect();
        let stack_ids = profile
            .stacks
            .iter()
            .enumerate()
            .map(|(i, stack)| ((stack.thread.clone(), stack.frames.clone(), stack.state), i))
            .collect();
        Self { profile, frame_ids, stack_ids }
    }
}

impl ProfileBuilder {
    /// A builder whose frame ids are `frames`' indices (a program's function table).
    pub fn with_frames(frames: Vec<String>, period_ns: f64) -> Self {
        Self::from(Profile { frames, stacks: Vec::new(), period_ns })
    }

    /// The id of frame `name`, added if new.
    pub fn frame(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.frame_ids.get(name) {
            return id;
        }
        let id = self.profile.frames.len() as u32;
        self.profile.frames.push(name.to_string());
        self.frame_ids.insert(name.to_string(), id);
        id
    }

    /// `count` samples of `frames` on `thread` in `state`.
    pub fn add(&mut self, thread: &str, frames: Vec<u32>, state: ThreadState, count: u64) {
        let key = (thread.to_string(), frames, state);
        match self.stack_ids.get(&key) {
            Some(&at) => self.profile.stacks[at].count += count,
            None => {
                self.stack_ids.insert(key.clone(), self.profile.stacks.len());
                let (thread, frames, state) = key;
                self.profile.stacks.push(StackCount { thread, frames, state, count });
            }
        }
    }

    pub fn finish(self) -> Profile {
        self.profile
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let mut builder = ProfileBuilder::with_frames(vec!["main".into(), "parse".into(), "work".into()], 1e6);
        builder.add("thread 0", vec![0, 1], ThreadState::Running, 3);
        builder.add("thread 0", vec![0, 2], ThreadState::Running, 5);
        builder.add("thread 0", vec![0, 2], ThreadState::Running, 1);
        builder.add("thread 1", vec![0], ThreadState::Gil, 4);
        builder.finish()
    }

    #[test]
    fn views_keep_or_drop_the_waits() {
        let profile = profile();
        assert_eq!((profile.samples(View::Wall), profile.samples(View::OnCpu)), (13, 9));
        assert_eq!(profile.self_share("work", View::OnCpu), 6.0 / 9.0);
        assert_eq!(profile.total_share("main", View::Wall), 1.0);
        assert_eq!(profile.thread_share("thread 1", View::OnCpu), 0.0);
        assert_eq!(profile.hottest(View::OnCpu), Some(("work".to_string(), 6.0 / 9.0)));
        let wall = profile.paths(View::Wall);
        assert!(wall.contains(&(vec!["thread 1".into(), "main".into(), "(waiting for the GIL)".into()], 4)));
        assert!(wall.contains(&(vec!["thread 0".into(), "main".into(), "work".into()], 6)));
    }

    #[test]
    fn merging_matches_frames_by_name() {
        let mut merged = profile();
        let mut other = ProfileBuilder::with_frames(vec!["work".into(), "main".into()], 1e6);
        other.add("thread 0", vec![1, 0], ThreadState::Running, 10);
        merged.merge(&other.finish());
        assert_eq!(merged.samples(View::OnCpu), 19);
        assert_eq!(merged.self_share("work", View::OnCpu), 16.0 / 19.0);
    }
}
