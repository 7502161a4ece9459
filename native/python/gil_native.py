"""gil-cpu's nogil-ext and per-element in CPython: hashlib.sha256 releases the GIL while it hashes
a buffer of 2 KB or more (HASHLIB_GIL_MINSIZE; smaller ones it hashes holding the GIL).

nogil-ext: each thread hashes its share of a buffer in one call. per-element: each thread hashes
its share one `block`-byte block per call, from a Python loop. Prints one JSON object: each
side's run times at 1 and 2 threads, the cost of a call that hashes nothing (the call's work
with the GIL held) and the time per block hashed (from the 1-thread whole runs).
"""
import hashlib
import json
import sys
import threading
import time
import timeit


def whole(data, start, blocks, block):
    hashlib.sha256(data[start * block:(start + blocks) * block])


def each(data, start, blocks, block):
    sha256 = hashlib.sha256
    for i in range(start, start + blocks):
        sha256(data[i * block:(i + 1) * block])


def timed(work, threads, data, blocks, block):
    share = blocks // threads
    pool = [threading.Thread(target=work, args=(data, i * share, share, block)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def main():
    blocks, block, runs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    data = memoryview(b"x" * (blocks * block))
    out = {"version": sys.version.split()[0]}
    for name, work in (("whole", whole), ("each", each)):
        out[name] = {str(threads): [timed(work, threads, data, blocks, block) for _ in range(runs)]
                     for threads in (1, 2)}
    calls = 200_000
    spent = timeit.repeat("sha256(b'')", globals={"sha256": hashlib.sha256}, number=calls, repeat=5)
    out["call_ns"] = min(spent) / calls * 1e9
    out["block_ns"] = min(out["whole"]["1"]) / blocks * 1e9
    print(json.dumps(out))


main()
