"""profiler-overhead in CPython: cProfile around a loop that calls `tiny` (4 iterations) 20 times
and `big` (100 iterations) once per round, N rounds — the shape of conlab's profiler-overhead.

Prints one JSON object: the plain run's and the profiled run's time (the fastest of RUNS each),
cProfile's cost per call, the calls it counted, and each function's share of its tottime.
"""
import cProfile
import json
import pstats
import sys
import time


def tiny():
    t = 0
    for _ in range(4):
        t = t + 1
    return t


def big():
    t = 0
    for _ in range(100):
        t = t + 1
    return t


def main(n):
    for _ in range(n):
        for _ in range(20):
            tiny()
        big()


def fastest(run, runs):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def profiled(n):
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    main(n)
    profile.disable()
    return time.perf_counter() - start, pstats.Stats(profile)


def run(n, runs):
    plain = fastest(lambda: main(n), runs)
    best, stats = min((profiled(n) for _ in range(runs)), key=lambda pair: pair[0])
    rows = {name: (calls, tottime) for (_, _, name), (_, calls, tottime, _, _) in stats.stats.items()}
    total = sum(tottime for _, tottime in rows.values())
    calls = sum(rows[name][0] for name in ("main", "tiny", "big"))
    share = lambda name: rows[name][1] / total
    return {
        "plain_s": plain,
        "profiled_s": best,
        "calls": calls,
        "per_call_ns": (best - plain) / calls * 1e9,
        "shares": {"main": share("main"), "tiny": share("tiny"), "big": share("big")},
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]))))
