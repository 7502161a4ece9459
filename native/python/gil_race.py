"""gil-race in CPython: `counter += 1` from N threads, plain and with a call between the load
and the store (`x = counter; f(); counter = x + 1`), for each thread count given.

Usage: python3 gil_race.py INCREMENTS REPEAT THREADS...
Prints one JSON object: per thread count, the fraction of all increments lost (expected −
counted, over expected) in each of REPEAT runs, plain and with the call.
"""
import json
import sys
import threading

counter = 0


def plain(n):
    global counter
    for _ in range(n):
        counter += 1


def f():
    pass


def with_call(n):
    global counter
    for _ in range(n):
        x = counter
        f()
        counter = x + 1


def lost_fraction(body, threads, n):
    global counter
    counter = 0
    pool = [threading.Thread(target=body, args=(n,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return (threads * n - counter) / (threads * n)


def main():
    n, repeat = int(sys.argv[1]), int(sys.argv[2])
    out = {}
    for threads in map(int, sys.argv[3:]):
        out[str(threads)] = {
            "plain": [lost_fraction(plain, threads, n) for _ in range(repeat)],
            "call": [lost_fraction(with_call, threads, n) for _ in range(repeat)],
        }
    print(json.dumps(out))


main()
