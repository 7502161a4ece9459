"""gil-server in CPython: a socketserver.ThreadingTCPServer (a thread per connection) whose
handlers run a fast or a slow endpoint's loop under the GIL, loaded open-loop from another
process: Poisson arrivals on each endpoint's connections, each request's latency counted from
its intended send (as wrk2 does), so a server that falls behind is charged for it.

argv: ns_per_iteration fast_us slow_ms fast_rate slow_rate connections duration_s seed
Prints one JSON object: the fast endpoint's p50 and p99 (ms) alone and beside the slow load.
The loop body matches conlab's model program (`total = total + 1`).
"""
import json
import multiprocessing
import random
import socket
import socketserver
import struct
import sys
import threading
import time

REQUEST = struct.Struct("<II")  # request id, loop iterations
ANSWER = struct.Struct("<I")  # request id


def work(n):
    total = 0
    for _ in range(n):
        total = total + 1
    return total


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        # Small answers at once, as conlab's servers send them (no Nagle wait for an ACK).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        pending = b""
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            pending += data
            while len(pending) >= REQUEST.size:
                rid, iterations = REQUEST.unpack_from(pending)
                pending = pending[REQUEST.size:]
                work(iterations)
                self.request.sendall(ANSWER.pack(rid))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True


def serve(ports):
    server = Server(("127.0.0.1", 0), Handler)
    ports.put(server.server_address[1])
    server.serve_forever()


def connection(port, iterations, rate, duration, rng, latencies):
    """One connection's open loop: a sender keeps to its Poisson schedule, a receiver times the
    answers from their intended sends."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter() + 0.05
    intended, at = [], start
    while True:
        at += rng.expovariate(rate)
        if at >= start + duration:
            break
        intended.append(at)

    def receive():
        pending = b""
        for _ in intended:
            while len(pending) < ANSWER.size:
                pending += sock.recv(4096)
            (rid,) = ANSWER.unpack_from(pending)
            pending = pending[ANSWER.size:]
            latencies.append(time.perf_counter() - intended[rid])

    receiver = threading.Thread(target=receive)
    receiver.start()
    for rid, due in enumerate(intended):
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sock.sendall(REQUEST.pack(rid, iterations))
    receiver.join()
    sock.close()


def load(port, loads, connections, duration, seed):
    """Runs every (iterations, rate) load at once over its own connections; the first load's
    latencies (s)."""
    rng = random.Random(seed)
    results = [[] for _ in loads]
    threads = [
        threading.Thread(target=connection,
                         args=(port, iterations, rate / connections, duration, random.Random(rng.random()), results[i]))
        for i, (iterations, rate) in enumerate(loads)
        for _ in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results[0])


def quantile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


def main():
    ns, fast_us, slow_ms, fast_rate, slow_rate = map(float, sys.argv[1:6])
    connections, duration, seed = int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
    fast = (int(fast_us * 1e3 / ns), fast_rate)
    slow = (int(slow_ms * 1e6 / ns), slow_rate)
    out = {"version": sys.version.split()[0]}
    for name, loads in (("alone", [fast]), ("loaded", [fast, slow])):
        ports = multiprocessing.Queue()
        server = multiprocessing.Process(target=serve, args=(ports,), daemon=True)
        server.start()
        port = ports.get(timeout=10)
        latencies = load(port, loads, connections, duration, seed)
        server.terminate()
        server.join()
        out[f"fast_p50_{name}_ms"] = quantile(latencies, 0.5)
        out[f"fast_p99_{name}_ms"] = quantile(latencies, 0.99)
        out[f"fast_count_{name}"] = len(latencies)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
