"""gil-race in CPython: `counter += 1` from N threads, plain and with a call between the load
and the store. Prints the updates lost in each (expected − counted)."""
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


def lost(body, threads, n):
    global counter
    counter = 0
    pool = [threading.Thread(target=body, args=(n,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return threads * n - counter


def main():
    n, threads = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps({"plain_lost": lost(plain, threads, n), "call_lost": lost(with_call, threads, n)}))


main()
