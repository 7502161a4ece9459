//! The debugging lab's searches: every strategy finds the bug of every buggy scenario within a
//! stated budget and none in the fixed twins (DFS proves it within its preemption bound), and
//! every schedule replays exactly.

use conlab_core::sim::{backoffs_over_seeds, find_scenario, replay, scenarios, search, Budget, Failure, Strategy};

/// The budgets the tests hold the strategies to (and the CLI's defaults).
const RANDOM: Strategy = Strategy::Random { seed: 1 };
const PCT: Strategy = Strategy::Pct { seed: 1, depth: 3 };
const DFS: Strategy = Strategy::Dfs { preemption_bound: 2 };

#[test]
fn every_strategy_finds_every_bug_within_its_budget() {
    let budget = Budget::default();
    for scenario in scenarios().iter().filter(|s| s.buggy) {
        let program = scenario.program();
        for strategy in [RANDOM, PCT, DFS] {
            let outcome = search(&program, strategy, &budget);
            let run = outcome
                .found
                .unwrap_or_else(|| panic!("{} under {strategy:?}: nothing in {} runs", scenario.id, outcome.runs));
            println!(
                "{:<22} {:<40} run {:>4}: {}",
                scenario.id,
                format!("{strategy:?}"),
                outcome.runs,
                run.failure.as_ref().unwrap()
            );
        }
    }
}

#[test]
fn no_strategy_finds_a_bug_in_a_fixed_twin_and_dfs_proves_it_within_its_bound() {
    let budget = Budget::default();
    for scenario in scenarios().iter().filter(|s| !s.buggy) {
        let program = scenario.program();
        let exhaustive = search(&program, DFS, &Budget { runs: 1_000_000, ..budget });
        assert!(exhaustive.found.is_none(), "{}: {:?}", scenario.id, exhaustive.found);
        assert!(
            exhaustive.exhausted && exhaustive.cut == 0,
            "{}: {} schedules, {} cut",
            scenario.id,
            exhaustive.runs,
            exhaustive.cut
        );
        println!("{:<32} DFS: every one of {} schedules with ≤ 2 preemptions passes", scenario.id, exhaustive.runs);
        for strategy in [RANDOM, PCT] {
            let outcome = search(&program, strategy, &Budget { runs: 300, ..budget });
            assert!(outcome.found.is_none(), "{} under {strategy:?}: {:?}", scenario.id, outcome.found);
        }
    }
}

#[test]
fn a_found_schedule_replays_to_the_same_failure_step_by_step() {
    for scenario in scenarios().iter().filter(|s| s.buggy) {
        let program = scenario.program();
        let found = search(&program, PCT, &Budget::default()).found.unwrap();
        let again = replay(&program, &found.schedule).unwrap();
        assert_eq!(again, found, "{}", scenario.id);
    }
}

#[test]
fn each_bug_is_the_kind_the_scenario_teaches() {
    let kind = |id: &str| {
        let scenario = scenarios().iter().find(|s| s.id == id).unwrap();
        search(&scenario.program(), DFS, &Budget::default()).found.unwrap().failure.unwrap()
    };
    assert!(matches!(kind("lost-update"), Failure::DataRace { ref var, .. } if var == "counter"));
    assert!(matches!(kind("flag-lock"), Failure::MutualExclusion { ref threads } if threads == &['A', 'B']));
    assert!(matches!(kind("check-then-act"), Failure::Final { .. }), "atomic steps: no data race, still wrong");
    assert!(matches!(kind("abba-deadlock"), Failure::Deadlock { ref cycle, .. } if cycle.len() == 2));
    assert!(matches!(kind("dining-philosophers"), Failure::Deadlock { ref cycle, .. } if cycle.len() == 3));
    assert!(matches!(kind("two-lock-transfer"), Failure::Deadlock { ref cycle, .. } if cycle.len() == 2));
    assert!(matches!(kind("missed-wakeup"), Failure::Assertion { .. }));
    assert!(matches!(kind("buggy-buffer"), Failure::Deadlock { ref cycle, .. } if cycle.is_empty()));
    assert!(matches!(kind("polite-livelock"), Failure::Livelock { .. }));
    assert!(matches!(kind("priority-inversion"), Failure::Assertion { thread: 'C', .. }), "high's assertion");
    assert!(matches!(kind("async-lost-update"), Failure::Final { .. }), "one OS thread: no data race, lost updates");
    assert!(matches!(kind("async-check-then-act"), Failure::Final { .. }));
}

#[test]
fn replay_names_the_step_that_cannot_run_and_stops_where_the_schedule_ends() {
    let abba = conlab_core::sim::find_scenario("abba-deadlock").unwrap().program();
    assert_eq!(replay(&abba, "ABX").unwrap_err(), "schedule: step 3 is `X`; this scenario's threads are A, B");
    assert_eq!(replay(&abba, "AB A").unwrap_err(), "schedule: step 3 is `A`, but A cannot run there (blocked on b)");
    let first_step = replay(&abba, "A").unwrap();
    assert_eq!((first_step.steps.len(), &first_step.failure), (1, &None));
    assert_eq!(first_step.steps[0].text, "a.acquire()");
    let deadlocked = replay(&abba, "AB").unwrap();
    assert!(
        matches!(deadlocked.failure, Some(Failure::Deadlock { ref cycle, .. }) if cycle == &['A', 'B']),
        "{deadlocked:?}"
    );
    let serial = replay(&abba, "AAAABBBB").unwrap();
    assert_eq!(serial.failure, None, "one after the other is fine");
    assert_eq!(
        conlab_core::sim::find_scenario("nope").unwrap_err(),
        format!(
            "unknown scenario `nope`; known scenarios are {}",
            scenarios().iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
        )
    );
}

#[test]
fn misuse_and_races_are_reported_with_their_lines() {
    use conlab_core::sim::program::{int, var, Op, Program, Target, Thread};
    let program = |threads: Vec<Thread>| Program {
        vars: vec![("x", 0)],
        atomic: Vec::new(),
        mutexes: vec!["m"],
        conditions: vec!["c"],
        semaphores: Vec::new(),
        threads,
        finally: None,
        priorities: Vec::new(),
        inheritance: false,
        cooperative: false,
    };
    let stranger = program(vec![Thread::new("A").op(Op::Unlock("m"))]);
    assert_eq!(
        replay(&stranger, "A").unwrap().failure.unwrap().to_string(),
        "A line 1: releases m, which it does not hold"
    );
    let unlocked_wait = program(vec![Thread::new("A").op(Op::Wait("c", "m"))]);
    assert_eq!(
        replay(&unlocked_wait, "A").unwrap().failure.unwrap().to_string(),
        "A line 1: waits on c without holding m"
    );
    // Writes under one lock are ordered; a write outside it races with them.
    let write = |name: &str, locked: bool| {
        let thread = Thread::new(name);
        let thread = if locked { thread.op(Op::Lock("m")) } else { thread };
        let thread = thread.op(Op::Set(Target::Var("x"), var("x") + int(1)));
        if locked {
            thread.op(Op::Unlock("m"))
        } else {
            thread
        }
    };
    assert_eq!(replay(&program(vec![write("A", true), write("B", true)]), "AAABBB").unwrap().failure, None);
    let racy = replay(&program(vec![write("A", true), write("B", false)]), "AAAB").unwrap();
    assert_eq!(
        racy.failure.unwrap().to_string(),
        "data race on x: A write (line 2) and B read (line 1) with nothing ordering them"
    );
}

/// A bug that only shows when a thread carries on past its own yield: A yields, then raises
/// `x`; B asserts that `x` is still down. Switching at the yield hides it.
fn reachable_past_a_yield() -> conlab_core::sim::Program {
    use conlab_core::sim::program::{int, var, Op, Target, Thread};
    conlab_core::sim::Program {
        vars: vec![("x", 0)],
        atomic: vec!["x"],
        mutexes: Vec::new(),
        conditions: Vec::new(),
        semaphores: Vec::new(),
        threads: vec![
            Thread::new("A").op(Op::Yield).op(Op::Set(Target::Var("x"), int(1))),
            Thread::new("B").op(Op::Assert(var("x").eq(int(0)), "x is still 0")),
        ],
        finally: None,
        priorities: Vec::new(),
        inheritance: false,
        cooperative: false,
    }
}

#[test]
fn dfs_also_runs_a_thread_on_past_its_yield_and_counts_that_against_the_bound() {
    let program = reachable_past_a_yield();
    // The failing schedule exists: A yields, A goes on, B asserts.
    assert!(replay(&program, "AAB").unwrap().failure.is_some());
    let found = search(&program, Strategy::Dfs { preemption_bound: 1 }, &Budget::default());
    assert_eq!(found.found.as_ref().map(|run| run.schedule.as_str()), Some("AAB"), "{found:?}");
    // Ignoring the yield is a deviation from the default schedule: with no budget, it is not
    // taken — and the search does not claim a proof it did not run.
    let none = search(&program, Strategy::Dfs { preemption_bound: 0 }, &Budget::default());
    assert!(none.found.is_none() && none.proves(), "within the bound of 0 every schedule passes: {none:?}");
    assert!(none.verdict("DFS", 400).ends_with("correct within that bound"));
}

#[test]
fn a_search_whose_runs_were_cut_at_the_step_cap_is_no_proof() {
    // A fixed twin, with a step cap too short for its runs to finish.
    let scenario = scenarios().iter().find(|s| s.id == "dining-philosophers-fixed").unwrap();
    let short = Budget { max_steps: 5, runs: 1_000_000, ..Budget::default() };
    let outcome = search(&scenario.program(), DFS, &short);
    assert!(outcome.exhausted && outcome.cut > 0 && outcome.found.is_none(), "{outcome:?}");
    assert!(!outcome.proves());
    let verdict = outcome.verdict(&DFS.describe(), short.max_steps);
    assert!(verdict.contains("at the 5-step cap") && verdict.contains("not a proof"), "{verdict}");
    assert!(!verdict.contains("correct within that bound"), "{verdict}");
}

#[test]
fn random_back_off_breaks_the_lock_step_that_keeps_polite_threads_livelocked() {
    let budget = Budget::default();
    // The polite pair under round-robin: the same state comes back, forever.
    let polite = find_scenario("polite-livelock").unwrap().program();
    assert!(matches!(
        search(&polite, Strategy::RoundRobin, &budget).found.unwrap().failure,
        Some(Failure::Livelock { .. })
    ));
    assert_eq!(backoffs_over_seeds(&polite, 10, &budget), None, "it draws no random numbers");
    // With random back-off, every seed's lock-step run ends with a thread holding both locks,
    // after a few rounds (1.6 of both threads backing off on average here).
    let backoff = find_scenario("polite-livelock-backoff").unwrap().program();
    let over = backoffs_over_seeds(&backoff, 1000, &budget).unwrap();
    assert_eq!((over.seeds, over.broke, over.threads), (1000, 1000, 2), "{over:?}");
    assert!(over.mean >= 2.0 && over.mean < 8.0 && over.p50 >= 2 && over.max < 40, "{over:?}");
    assert!(over.describe().contains("1000 of them broke the symmetry"), "{}", over.describe());
    // Draws come from the run's own seeded generator: the same schedule draws the same waits.
    let schedule = "ABABABABABABABABABAB";
    let (once, again) = (replay(&backoff, schedule).unwrap(), replay(&backoff, schedule).unwrap());
    assert_eq!(once, again);
    assert!(once.steps.iter().any(|step| step.text.starts_with("pause = random.randrange(window)")), "{once:?}");
}

#[test]
fn under_strict_priorities_high_waits_behind_medium_unless_the_holder_inherits_its_priority() {
    let budget = Budget::default();
    let high_done_at = |id: &str| {
        let program = find_scenario(id).unwrap().program();
        // The scheduler leaves no choice: every thread has its own priority.
        let exhaustive = search(&program, Strategy::Dfs { preemption_bound: 2 }, &budget);
        assert_eq!(exhaustive.runs, 1, "{id}: one schedule");
        let run = search(&program, Strategy::RoundRobin, &budget);
        (run.found, conlab_core::sim::state_after(&program, "").unwrap().1)
    };
    let (inverted, start) = high_done_at("priority-inversion");
    let failure = inverted.expect("high waited behind medium").failure.unwrap();
    assert!(failure.to_string().contains("high got the bus before medium's job was done"), "{failure}");
    // Only low can run at first: the others wait for their wake-ups.
    assert_eq!(start.threads.iter().map(|t| t.enabled).collect::<Vec<_>>(), [true, false, false]);
    assert!(start.threads[0].state.ends_with("priority 1"), "{:?}", start.threads[0]);
    let (fixed, _) = high_done_at("priority-inversion-fixed");
    assert_eq!(fixed, None);
    // Mid-run, with high blocked on the bus and medium awake: low runs at high's priority.
    let fixed = find_scenario("priority-inversion-fixed").unwrap().program();
    let (_, snapshot) = conlab_core::sim::state_after(&fixed, "AACAA").unwrap();
    assert!(snapshot.threads[0].state.contains("priority 3, inherited (its own: 1)"), "{:?}", snapshot.threads);
    assert!(snapshot.threads[1].state.starts_with("ready, outranked by A"), "{:?}", snapshot.threads);
    let unfixed = find_scenario("priority-inversion").unwrap().program();
    assert!(replay(&unfixed, "AACAA").unwrap_err().contains("outranked by B"), "medium preempts low");
}

#[test]
fn asyncio_tasks_lose_updates_only_where_an_await_splits_the_read_from_the_write() {
    let budget = Budget { runs: 1_000_000, ..Budget::default() };
    let split = find_scenario("async-lost-update").unwrap().program();
    // Each task reads, awaits, writes: all three read before any writes, and the counter ends
    // at 1 — with no data race reported, since one OS thread runs every task.
    let all_read_first = replay(&split, "AABBCCABC").unwrap();
    assert_eq!(all_read_first.steps.last().unwrap().effect, "→ 1");
    assert!(matches!(all_read_first.failure, Some(Failure::Final { .. })), "{:?}", all_read_first.failure);
    // A task holds the loop until it awaits: B cannot run between A's read and A's await.
    assert_eq!(
        replay(&split, "AB").unwrap_err(),
        "schedule: step 2 is `B`, but B cannot run there (ready, queued: A holds the loop until it awaits)"
    );
    let (_, suspended) = conlab_core::sim::state_after(&split, "AA").unwrap();
    assert!(suspended.threads.iter().all(|t| t.enabled), "after A's await any task may run: {:?}", suspended.threads);
    // The await-free twin: DFS runs every order at every await — no bound is involved — and
    // every one ends with 3.
    let whole = find_scenario("async-no-await").unwrap().program();
    for bound in [0, 2] {
        let proof = search(&whole, Strategy::Dfs { preemption_bound: bound }, &budget);
        assert!(proof.proves() && proof.unbounded, "bound {bound}: {proof:?}");
        assert_eq!(proof.runs, 90, "3 tasks × (await, read+write): 6!/2³ orders");
        let verdict = proof.verdict(&Strategy::Dfs { preemption_bound: bound }.describe_for(&whole), 400);
        assert!(verdict.ends_with("correct on every schedule"), "{verdict}");
    }
    // The same two lines on preemptive threads lose updates: what makes them safe is the loop.
    let threaded = conlab_core::sim::Program { cooperative: false, ..whole.clone() };
    let found = search(&threaded, Strategy::Dfs { preemption_bound: 1 }, &budget).found.expect("threads race");
    assert!(matches!(found.failure, Some(Failure::DataRace { .. })), "{:?}", found.failure);
    // asyncio.Lock fixes both races: a task that finds it held waits in acquire(), off the loop.
    for id in ["async-lost-update-fixed", "async-check-then-act-fixed"] {
        let fixed = find_scenario(id).unwrap().program();
        assert!(search(&fixed, DFS, &budget).proves(), "{id}");
    }
    let locked = find_scenario("async-lost-update-fixed").unwrap().program();
    let (_, waiting) = conlab_core::sim::state_after(&locked, "AAA").unwrap();
    assert_eq!(waiting.threads[1].state, "suspended in lock.acquire(), lock is held");
    assert_eq!(locked.listing().threads[0].lines[0], "await lock.acquire()");
    let check = find_scenario("async-check-then-act").unwrap().program();
    let overdrawn = search(&check, DFS, &budget).found.unwrap();
    assert!(matches!(overdrawn.failure, Some(Failure::Final { ref message }) if message.starts_with("balance >= 0")));
}
