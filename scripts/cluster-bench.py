#!/usr/bin/env python3
"""Chat in rooms of 100: the embedded server against 1 gateway + 1 shard and 2 gateways + 2 shards over NATS.

Runs the configurations alternately (ROUNDS times each) on this machine and prints, per configuration, the medians
of: deliveries per second, CPU per delivery summed over every process of the configuration (the servers and, for the
clusters, nats-server; the bots are not counted), NATS messages per delivery as the broker counts them (`in_msgs`
of its /varz), and the latency p50/p99 of a paced run at half of the configuration's saturating rate.

  cargo build --release -p server -p bots && python3 scripts/cluster-bench.py [ROUNDS] [SECONDS]

Each cluster run starts its own nats-server (JetStream in a temporary directory, monitoring on a free port).

  python3 scripts/cluster-bench.py capacity [ROUNDS] [GATEWAYS] [SHARDS] [BOTS] [RATE]

checks the capacity model of docs/CLUSTER.md instead: GATEWAYS gateways and SHARDS shards (default 3 and 3), one
`bots` process of BOTS bots (default 1,000) in rooms of 100, bot N on gateway N mod GATEWAYS (so every room spans
every gateway), each moving RATE times a second (default 10; a move is C_MOVE + C_PING, the ping answered by the
gateway). Between two of the bots' status lines well after the warm-up it samples the CPU time of every process
(by kind: gateway, shard, nats, bots) and the broker's message and byte counts, and prints per delivery (an S_MOVE
received): CPU of each kind, NATS messages and bytes in and out.
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


def cpu_by_thread(pid):
    """CPU seconds of each thread name of a process (`packet-io`, `packet-logic`, `packet-cluster`, ...)."""
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            names[name] = names.get(name, 0) + cpu(f"{pid}/task/{tid}")
        except OSError:
            pass  # the thread ended
    return names


def wait_line(proc, prefix):
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process ended before printing {prefix!r}")
        if line.startswith("node "):
            proc.node = line.split()[1]
        if line.startswith(prefix):
            return line.strip()


def varz(port, page="varz"):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET /{page} HTTP/1.0\r\n\r\n".encode())
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
        gateways, shards = {"1g1s": (1, 1), "2g2s": (2, 2)}.get(kind) or kind
        cluster = ["--nats", f"127.0.0.1:{port}", "--cluster", "bench"]
        for _ in range(shards):
            wait_line(self.spawn([SERVER, *cluster, "--role", "shard", *common]), "shard ready")
        for _ in range(gateways):
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

    def sample(self):
        """CPU seconds by kind and the broker's counters, now."""
        v = varz(self.monitor)
        counts = {k: v[k] for k in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}
        # Messages each kind of node published: a node's connection is the one subscribed to its own subject.
        role_of = {p.node: p.role for p in self.procs if getattr(p, "node", None)}
        for conn in varz(self.monitor, "connz?subs=1&limit=1024")["connections"]:
            for subject in conn.get("subscriptions_list", []):
                role = role_of.get(subject.rsplit(".", 1)[-1])
                if role:
                    key = f"msgs_from_{role}s"
                    counts[key] = counts.get(key, 0) + conn["in_msgs"]
        roles = self.cpu_by_role()
        for p in self.procs:
            if p.role != "nats":
                for name, t in cpu_by_thread(p.pid).items():
                    key = f"{p.role}/{name}"
                    roles[key] = roles.get(key, 0) + t
        return roles, counts

    def bots(self, seconds, rate=0):
        """Runs the bots, CLIENTS in rooms of ROOM, spread evenly over the gateways (each room spans all of them)."""
        per = CLIENTS // len(self.gateways)
        room = ROOM // len(self.gateways)
        # A name prefix per process: names are unique per shard, so two fleets' `bot-N` would refuse each other.
        runs = [subprocess.Popen([BOTS, "--addr", g, "--name-prefix", f"bot{i}", "--clients", str(per), "--room-size",
                                  str(room), "--scenario", "chat", "--duration", f"{seconds}s", "--warmup", "1s",
                                  "--rate", str(rate), "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for i, g in enumerate(self.gateways)]
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


def status(line):
    """The counts of a `bots --status-every` line: (seconds, connected, sent, received)."""
    head, counts = line.split(": ", 1)
    parts = dict(p.split(" ", 1) for p in counts.split(" | "))
    connected = int(parts["connected"].split("/")[0])
    return float(head.split()[1].rstrip("s")), connected, int(parts["sent"]), int(parts["received"])


def capacity_round(gateways, shards, bots, rate, seconds=16, warmup=4):
    setup = Setup((gateways, shards))
    try:
        proc = subprocess.Popen([BOTS, "--addr", ",".join(setup.gateways), "--clients", str(bots), "--room-size",
                                 str(ROOM), "--scenario", "move", "--rate", str(rate), "--in-flight", "4",
                                 "--duration", f"{seconds}s", "--warmup", f"{warmup}s", "--status-every", "1s",
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples, ready = [], None
        for line in proc.stderr:
            if not line.startswith("status "):
                continue
            t, connected, sent, received = status(line)
            if ready is None and connected == bots:
                ready = t
            # From two seconds after every bot is in its room (moving) to two seconds before the end.
            if ready is not None and ready + 2 <= t <= ready + warmup + seconds - 2:
                roles, nats = setup.sample()
                roles["bots"] = cpu(proc.pid)
                samples.append((t, sent, received, roles, nats))
        report = json.loads(proc.communicate()[0])
        (t0, s0, r0, c0, n0), (t1, s1, r1, c1, n1) = samples[0], samples[-1]
        # Received = S_MOVEs + one S_PONG per move sent (the window is never full at this rate).
        deliveries = (r1 - r0) - (s1 - s0)
        per = lambda a, b: {k: (b[k] - a[k]) / deliveries for k in b}
        # Threads that did nothing (the gateway's unused logic thread, the main thread) are left out.
        busy = {k for k in c1 if c1[k] - c0.get(k, 0) > 0}
        c0, c1 = ({k: c.get(k, 0) for k in busy} for c in (c0, c1))
        return dict(deliveries_per_sec=deliveries / (t1 - t0), moves_per_sec=(s1 - s0) / (t1 - t0),
                    cpu_us={k: v * 1e6 for k, v in per(c0, c1).items()},
                    cores={k: (c1[k] - c0[k]) / (t1 - t0) for k in c1},
                    nats=per(n0, n1), errors=report["errors_total"], error_kinds=report["errors"], expected=report["sent"] * (ROOM - 1),
                    deliveries=report["deliveries"])
    finally:
        setup.close()


def capacity(args):
    rounds, gateways, shards, bots, rate = (int(a) for a in (args + ["3", "3", "3", "1000", "10"][len(args):]))
    results = []
    for r in range(rounds):
        m = capacity_round(gateways, shards, bots, rate)
        results.append(m)
        print(f"round {r}: {m['deliveries_per_sec']:,.0f} deliveries/s, {m['moves_per_sec']:,.0f} moves/s; "
              f"report: {m['deliveries']:,} deliveries of {m['expected']:,} owed, errors {m['errors']}", flush=True)
        if m["errors"]:
            print(f"  errors: {m['error_kinds']}", flush=True)
        print("  CPU us/delivery: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(m["cpu_us"].items()))
              + "; cores: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(m["cores"].items())), flush=True)
        print("  NATS per delivery: " + ", ".join(f"{k} {v:.4f}" for k, v in m["nats"].items()), flush=True)
    med = lambda f: statistics.median(f(m) for m in results)
    print(f"\nmedians of {rounds}: {med(lambda m: m['deliveries_per_sec']):,.0f} deliveries/s")
    for k in sorted(results[0]["cpu_us"]):
        print(f"| {k} | {med(lambda m: m['cpu_us'].get(k, 0)):.3f} us/delivery | "
              f"{med(lambda m: m['cores'].get(k, 0)):.2f} cores |")
    for k in results[0]["nats"]:
        print(f"| NATS {k} per delivery | {med(lambda m: m['nats'].get(k, 0)):.4f} |")


def main():
    if sys.argv[1:2] == ["capacity"]:
        return capacity(sys.argv[2:])
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
