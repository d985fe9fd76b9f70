#!/usr/bin/env python3
"""What one message costs nats-server on this machine, by payload size: CPU per message published once and
delivered to one subscriber (the cluster's pattern: every envelope has exactly one receiving node).

Starts its own nats-server (core NATS, no JetStream), one publishing and one subscribing connection speaking the
text protocol over raw sockets, publishes COUNT messages of each size as fast as the sockets take them, waits until
the subscriber has read all of them, and divides the server's CPU time (/proc, user + system) by the messages. Then
fits cost = per_message + per_byte * size by least squares over the sizes up to 4 KiB. The clients are Python: they are slower
than the server, which is fine, since only the server's CPU is measured.

  python3 scripts/nats-cost.py [SCALE]      # SCALE multiplies the message counts (default 1)
"""
import os
import socket
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
# Sizes, and how many messages of each: enough for a second or more of the server's CPU (the clock counts in 10 ms).
SIZES = {64: 3_000_000, 512: 1_500_000, 4096: 250_000, 32768: 40_000}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(4096)  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
    buf = b""
    while b"PONG" not in buf:
        buf += s.recv(4096)
    return s


def measure(port, pid, size, count):
    sub = connect(port)
    sub.sendall(b"SUB cost 1\r\nPING\r\n")
    buf = b""
    while b"PONG" not in buf:
        buf += sub.recv(4096)
    expected = count * len(f"MSG cost 1 {size}\r\n".encode()) + count * (size + 2)
    got = [0]

    def read():
        while got[0] < expected:
            data = sub.recv(1 << 20)
            if not data:
                break
            got[0] += len(data)

    reader = threading.Thread(target=read)
    reader.start()
    pub = connect(port)
    frame = f"PUB cost {size}\r\n".encode() + b"x" * size + b"\r\n"
    per_chunk = max(1, (256 * 1024) // len(frame))
    chunk = frame * per_chunk
    c0, t0 = cpu(pid), time.monotonic()
    sent = 0
    while sent < count:
        n = min(per_chunk, count - sent)
        pub.sendall(chunk if n == per_chunk else frame * n)
        sent += n
    reader.join()
    c1, t1 = cpu(pid), time.monotonic()
    pub.close()
    sub.close()
    assert got[0] >= expected, f"subscriber read {got[0]} of {expected} bytes (slow consumer?)"
    return (c1 - c0) / count * 1e6, count / (t1 - t0)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    port = free_port()
    server = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        rows = []
        for size, n in SIZES.items():
            n = int(n * scale)
            us, rate = measure(port, server.pid, size, n)
            rows.append((size, us))
            print(f"{size:6} B: {us:.3f} us of nats-server CPU per message (in + out), {rate:,.0f} msgs/s, {n} msgs",
                  flush=True)
        # The fit is over the sizes a cluster's envelopes have (up to a few KiB); 32 KiB costs more per byte.
        small = [r for r in rows if r[0] <= 4096]
        xs, ys = [r[0] for r in small], [r[1] for r in small]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in small) / sum((x - mx) ** 2 for x in xs)
        a = my - b * mx
        print(f"fit over 64 B - 4 KiB: {a:.3f} us per message + {b * 1000:.3f} ns per payload byte")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
