"""io-fanout in CPython: `tasks` blocking calls of `latency` seconds, sequentially and on a
thread per task. Prints both times."""
import json
import sys
import threading
import time


def main():
    tasks, latency = int(sys.argv[1]), float(sys.argv[2])
    start = time.perf_counter()
    for _ in range(tasks):
        time.sleep(latency)
    seq = time.perf_counter() - start
    pool = [threading.Thread(target=time.sleep, args=(latency,)) for _ in range(tasks)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"seq_s": seq, "threads_s": time.perf_counter() - start}))


main()
