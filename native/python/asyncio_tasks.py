"""CPython asyncio's per-task cost, the anchor of conlab's event-loop-throughput benchmark.

Usage: python3 asyncio_tasks.py TASKS REPEAT
Prints one line per repetition: `spawn NS yield NS timer NS` — nanoseconds per task for
create_task + gather of tasks that return at once, of tasks that each await asyncio.sleep(0)
10 times, and of tasks that each sleep 1 ms on the loop's timer.
"""
import asyncio
import sys
import time


async def at_once():
    return 1


async def yielding():
    for _ in range(10):
        await asyncio.sleep(0)
    return 1


async def napping():
    await asyncio.sleep(0.001)
    return 1


async def many(make, tasks):
    results = await asyncio.gather(*(asyncio.create_task(make()) for _ in range(tasks)))
    assert sum(results) == tasks


def per_task_ns(make, tasks):
    start = time.perf_counter_ns()
    asyncio.run(many(make, tasks))
    return (time.perf_counter_ns() - start) / tasks


def main():
    tasks, repeat = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(repeat):
        print(
            f"spawn {per_task_ns(at_once, tasks):.1f} yield {per_task_ns(yielding, tasks):.1f} "
            f"timer {per_task_ns(napping, tasks):.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
