#!/usr/bin/env python3
"""Chat in rooms of 100: the embedded server against 1 gateway + 1 shard and 2 gateways + 2 shards over NATS.

Runs the configurations alternately (ROUNDS times each) on this machine and prints, per configuration, the medians
of: deliveries per second, CPU per delivery summed over every process of the configuration (the servers and, for the
clusters, nats-server; the bots are not counted), NATS messages per delivery as the broker counts them (`in_msgs`
of its /varz), and the latency p50/p99 of a paced run at half of the configuration's saturating rate.

  cargo build --release -p server -p bots && python3 scripts/cluster-bench.py [ROUNDS] [SECONDS]

Each cluster run starts its own nats-server (JetStream in a temporary directory, monitoring on a free port).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target/release/server")
BOTS = os.path.join(ROOT, "target/release/bots")
TICK = os.sysconf("SC_CLK_TCK")
CLIENTS, ROOM = 200, 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_line(proc, prefix):
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process ended before printing {prefix!r}")
        if line.startswith(prefix):
            return line.strip()


def varz(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /varz HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


class Setup:
    """One configuration's processes."""

    def __init__(self, kind):
        self.kind, self.procs, self.gateways, self.nats, self.monitor = kind, [], [], None, None
        self.store = None
        common = ["--rate-limit", "0", "--workers", "1", "--idle-timeout", "0"]
        if kind == "embedded":
            p = self.spawn([SERVER, "--addr", "127.0.0.1:0", *common])
            self.gateways.append(wait_line(p, "listening on ").split()[-1])
            return
        self.store = tempfile.TemporaryDirectory()
        port, self.monitor = free_port(), free_port()
        self.nats = self.spawn(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-m", str(self.monitor),
                                "-sd", self.store.name], stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        n = {"1g1s": 1, "2g2s": 2}[kind]
        cluster = ["--nats", f"127.0.0.1:{port}", "--cluster", "bench"]
        for _ in range(n):
            wait_line(self.spawn([SERVER, *cluster, "--role", "shard", *common]), "shard ready")
        for _ in range(n):
            p = self.spawn([SERVER, *cluster, "--role", "gateway", "--addr", "127.0.0.1:0", *common])
            self.gateways.append(wait_line(p, "listening on ").split()[-1])

    def spawn(self, args, stdout=subprocess.PIPE):
        p = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
        p.role = "nats" if args[0] == "nats-server" else ("shard" if "shard" in args else "gateway")
        self.procs.append(p)
        return p

    def cpu(self):
        return sum(cpu(p.pid) for p in self.procs)

    def cpu_by_role(self):
        roles = {}
        for p in self.procs:
            roles[p.role] = roles.get(p.role, 0) + cpu(p.pid)
        return roles

    def nats_in(self):
        return varz(self.monitor)["in_msgs"] if self.monitor else 0

    def bots(self, seconds, rate=0):
        """Runs the bots, CLIENTS in rooms of ROOM, spread evenly over the gateways (each room spans all of them)."""
        per = CLIENTS // len(self.gateways)
        room = ROOM // len(self.gateways)
        runs = [subprocess.Popen([BOTS, "--addr", g, "--clients", str(per), "--room-size", str(room), "--scenario",
                                  "chat", "--duration", f"{seconds}s", "--warmup", "1s", "--rate", str(rate), "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for g in self.gateways]
        return [json.loads(r.communicate()[0]) for r in runs]

    def close(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.store:
            self.store.cleanup()


def measure(kind, seconds):
    setup = Setup(kind)
    try:
        # Saturating run: unpaced. The counters span the whole run (warm-up included), so they are divided by all
        # the deliveries of the run, warm-up included, estimated from the measured rate.
        c0, n0, t0, r0 = setup.cpu(), setup.nats_in(), time.monotonic(), setup.cpu_by_role()
        reports = setup.bots(seconds)
        wall = time.monotonic() - t0
        c1, n1, r1 = setup.cpu(), setup.nats_in(), setup.cpu_by_role()
        rate = sum(r["deliveries"] / r["duration_secs"] for r in reports)
        errors = sum(r["errors_total"] for r in reports)
        sent_rate = sum(r["sent"] / r["duration_secs"] for r in reports)
        deliveries_all = rate * (seconds + 1)  # the warm-up second delivered too
        cpu_per = (c1 - c0) / deliveries_all * 1e6
        nats_per = (n1 - n0) / deliveries_all
        # Latency at half of the saturating rate (messages per second per client).
        per_client = sent_rate / CLIENTS / 2
        paced = setup.bots(seconds, rate=max(1, per_client))
        p50 = statistics.median(r["latency_us"]["p50"] for r in paced)
        p99 = max(r["latency_us"]["p99"] for r in paced)
        roles = {role: (r1[role] - r0[role]) / deliveries_all * 1e6 for role in r1}
        return dict(rate=rate, cpu=cpu_per, nats=nats_per, p50=p50, p99=p99, errors=errors, wall=wall, roles=roles)
    finally:
        setup.close()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    kinds = ["embedded", "1g1s", "2g2s"]
    results = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds:
            m = measure(kind, seconds)
            results[kind].append(m)
            print(f"round {r} {kind:8} {m['rate']:10.0f} deliveries/s  {m['cpu']:.3f} us CPU/delivery  "
                  f"{m['nats']:.4f} NATS msgs/delivery  half-load p50 {m['p50']} us p99 {m['p99']} us  "
                  f"errors {m['errors']}  by role (us/delivery): "
                  + ", ".join(f"{role} {v:.3f}" for role, v in sorted(m['roles'].items())), flush=True)
    print()
    print("| configuration | deliveries/s | CPU per delivery (all processes) | vs embedded | NATS msgs per delivery | "
          "p50 / p99 at half load |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(m["cpu"] for m in results["embedded"])
    for kind in kinds:
        ms = results[kind]
        med = lambda key: statistics.median(m[key] for m in ms)
        print(f"| {kind} | {med('rate'):,.0f} | {med('cpu'):.3f} us | {med('cpu') / base:.2f}x | {med('nats'):.4f} | "
              f"{med('p50'):.0f} / {med('p99'):.0f} us |")


if __name__ == "__main__":
    main()
