"""gil-cpu in CPython: one thread runs the whole loop, then N threads run a share each.

Prints one JSON object: seconds for both, and seconds per iteration of the one-thread loop.
The loop body matches conlab's model program (`total = total + 1`, a back-edge per iteration).
"""
import json
import sys
import threading
import time


def work(n):
    total = 0
    for _ in range(n):
        total = total + 1
    return total


def timed(threads, iterations):
    share = iterations // threads
    pool = [threading.Thread(target=work, args=(share,)) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def main():
    iterations, threads, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    seq = min(timed(1, iterations) for _ in range(repeat))
    par = min(timed(threads, iterations) for _ in range(repeat))
    print(json.dumps({"seq_s": seq, "threads_s": par, "ns_per_iteration": seq / iterations * 1e9,
                      "version": sys.version.split()[0], "switch_interval_s": sys.getswitchinterval()}))


main()
