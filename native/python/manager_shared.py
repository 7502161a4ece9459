"""manager-vs-shared in CPython: `d[key] += 1` on a Manager().dict() proxy, `with v.get_lock():
v.value += 1` on one Value, `a[i] += 1` on a RawArray (each worker its own element, 64 bytes
apart), by forked worker processes (3.11's default on Linux).

Each worker times its own loop (time.perf_counter is CLOCK_MONOTONIC, one clock for every
process); per update is a worker's loop time over its updates, updates/s the total over the
span from the first start to the last end. Prints one JSON object: for each way and worker
count, the runs' [per update ns, updates/s]; and the time of one `a[0] += 1` (a Python step).
"""
import json
import multiprocessing as mp
import sys
import time
import timeit


def manager_worker(d, key, n, out):
    start = time.perf_counter()
    for _ in range(n):
        d[key] += 1
    out.put((start, time.perf_counter()))


def value_worker(v, n, out):
    start = time.perf_counter()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    out.put((start, time.perf_counter()))


def raw_worker(a, i, n, out):
    start = time.perf_counter()
    for _ in range(n):
        a[i] += 1
    out.put((start, time.perf_counter()))


def run(ctx, kind, workers, n):
    out = ctx.Queue()
    if kind == "manager":
        manager = ctx.Manager()
        d = manager.dict({f"w{i}": 0 for i in range(workers)})
        args = [(manager_worker, (d, f"w{i}", n, out)) for i in range(workers)]
    elif kind == "value":
        v = ctx.Value("q", 0)
        args = [(value_worker, (v, n, out)) for _ in range(workers)]
    else:
        a = ctx.RawArray("q", 8 * workers)
        args = [(raw_worker, (a, 8 * i, n, out)) for i in range(workers)]
    processes = [ctx.Process(target=target, args=a) for target, a in args]
    for p in processes:
        p.start()
    spans = [out.get() for _ in processes]
    for p in processes:
        p.join()
    if kind == "manager":
        total = sum(d.values())
        manager.shutdown()
    elif kind == "value":
        total = v.value
    else:
        total = sum(a)
    assert total == workers * n, (kind, total)
    per_update = sum(end - start for start, end in spans) / len(spans) / n * 1e9
    span = max(end for _, end in spans) - min(start for start, _ in spans)
    return [per_update, workers * n / span]


def main():
    runs = int(sys.argv[1])
    counts = {"manager": int(sys.argv[2]), "value": int(sys.argv[3]), "raw-array": int(sys.argv[3])}
    ctx = mp.get_context("fork")
    out = {"version": sys.version.split()[0]}
    for kind, n in counts.items():
        out[kind] = {str(w): [run(ctx, kind, w, n) for _ in range(runs)] for w in (1, 2)}
    a = ctx.RawArray("q", 8)
    steps = 200_000
    out["step_ns"] = min(timeit.repeat("a[0] += 1", globals={"a": a}, number=steps, repeat=5)) / steps * 1e9
    print(json.dumps(out))


if __name__ == "__main__":
    main()
