"""switch-interval in CPython: two threads run a CPU-bound loop at each switch interval given,
and count the GIL's handovers as the loop sees them (an iteration that finds another thread
ran last). Prints one JSON object: for each interval, the run's seconds and its handovers.
"""
import json
import sys
import threading
import time


def timed(interval, iterations, threads):
    sys.setswitchinterval(interval)
    state = {"last": -1, "handovers": 0}

    def work(me):
        seen = state
        for _ in range(iterations):
            if seen["last"] != me:
                seen["handovers"] += 1
                seen["last"] = me

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    # The first thread to run is not a handover.
    return time.perf_counter() - start, state["handovers"] - 1


def main():
    iterations, threads = int(sys.argv[1]), int(sys.argv[2])
    intervals = [float(ms) for ms in sys.argv[3:]]
    runs = []
    for ms in intervals:
        seconds, handovers = timed(ms / 1e3, iterations, threads)
        runs.append({"interval_ms": ms, "seconds": seconds, "handovers": handovers})
    print(json.dumps({"runs": runs}))


main()
