#!/usr/bin/env python3
"""Floods a spawned backtestd with large frames or large answers and reports its peak RSS (issue 12).

Two cases a fresh tester found before the server had an inbound memory budget
(`--inbound-memory-mb`, PROTOCOL.md section 5):

  partial  N connections each send the header of a frame of 4 MiB minus 10 bytes and all of
           its payload but the last 10 bytes, then hold the connection (before: 313 -> 730 MB
           for 100 connections until the frame timeout, 1.36 GB for 250).
  queued   one connection sends N complete RunBacktest requests of 40,000 positions (about
           2.6 MB each) at once, then reads every answer (before: about 1.1 GB for 100 requests
           of 3.6 MB while they queued).

Two a second tester found before the output budget (`--output-memory-mb`) and before a single
backtest's answer counted in the request memory budget:

  unread   N connections each send 8 RunBacktests of 20 positions rebalanced daily over
           2005-2024 (answers of about 3.5 MB) and read nothing for --hold seconds (before:
           1.17 GB held, 2.3 GB peak, for 40 connections until the keepalive closed them).
  paced    the same, each connection read at --rate bytes a second, PINGs answered (before:
           0.9-1.0 GB held for as long as they read, 40 connections at 100 KB/s).

    python3 benchmarks/memory_flood.py --backtestd .build/release/backtestd partial --count 100
    python3 benchmarks/memory_flood.py --backtestd .build/release/backtestd queued --count 100
    python3 benchmarks/memory_flood.py --backtestd .build/release/backtestd unread --count 40 --hold 30
    python3 benchmarks/memory_flood.py --backtestd .build/release/backtestd paced --count 40 --hold 30 --rate 100000

The server runs with BACKTESTD_CACHE=false and the demo data, on a free loopback port; extra
flags after `--` go to it. RSS is sampled from /proc every 20 ms (and VmHWM read at the end).
`queued`, `unread` and `paced` need Python's protobuf package and protoc (examples/python/generate.sh).
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PREFACE = b"BACKTEST" + struct.pack(">H", 1)
HEADER = struct.Struct(">IIBB")  # length, stream id, type, flags
REQUEST, RESPONSE, PING, GOAWAY, SETTINGS = 1, 3, 5, 6, 7
HERE = os.path.dirname(os.path.abspath(__file__))


def status_mb(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    return 0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recv_exact(sock, count):
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return bytes(data)


def read_frame(sock):
    length, stream, kind, flags = HEADER.unpack(recv_exact(sock, HEADER.size))
    return kind, stream, flags, recv_exact(sock, length)


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sock.sendall(PREFACE)
    kind, _, _, _ = read_frame(sock)
    assert kind == SETTINGS, kind
    return sock


def heavy_request(pb, positions):
    """RunBacktest: `positions` positions, each entering on sma(20) > sma(50), in December 2024
    (a month, so that the orders fit in an answer)."""
    request = pb.CallRequest(header=pb.RequestHeader(request_id="heavy"))
    strategy = request.run_backtest.strategy
    strategy.name = "inbound-flood"
    tickers = ["AAPL", "MSFT", "SPY", "QQQ", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "IWM"]
    for index in range(positions):
        position = strategy.positions.add()
        position.ticker = tickers[index % len(tickers)]
        position.weight = 1.0 / positions
        compare = position.entry.compare
        compare.lhs.series.indicator.type = "sma"
        compare.lhs.series.indicator.params.append(20)
        compare.op = pb.GREATER
        compare.rhs.series.indicator.type = "sma"
        compare.rhs.series.indicator.params.append(50)
    request.run_backtest.settings.start_date = "2024-12-02"
    request.run_backtest.settings.end_date = "2024-12-31"
    return request.SerializeToString()


def daily_request(pb, positions):
    """RunBacktest: `positions` positions held while the close is above 0 (always), rebalanced
    daily over 2005-2024: one order per position per day, an answer of about 3.5 MB for 20."""
    request = pb.CallRequest(header=pb.RequestHeader(request_id="daily"))
    strategy = request.run_backtest.strategy
    strategy.name = "answer-flood"
    strategy.rebalance = pb.REBALANCE_DAILY
    tickers = ["AAPL", "MSFT", "GOOG", "AMZN", "SPY", "QQQ", "IBM", "META", "NVDA", "TSLA"]
    for index in range(positions):
        position = strategy.positions.add()
        position.ticker = tickers[index % len(tickers)]
        position.weight = 1.0 / positions
        position.entry.compare.lhs.series.field = pb.CLOSE
        position.entry.compare.op = pb.GREATER
        position.entry.compare.rhs.number = 0.0
    request.run_backtest.settings.start_date = "2005-01-03"
    request.run_backtest.settings.end_date = "2024-12-31"
    return request.SerializeToString()


def load_pb():
    out = tempfile.mkdtemp()
    subprocess.run([os.path.join(HERE, "..", "examples", "python", "generate.sh"), out], check=True, stdout=subprocess.DEVNULL)
    sys.path.insert(0, out)
    import backtest_pb2 as pb
    return pb


def answers(port, count, hold_seconds, rate):
    """`count` connections, 8 daily-rebalanced RunBacktests each; read nothing (`rate` 0) or
    `rate` bytes a second per connection. Returns what the connections saw."""
    pb = load_pb()
    payload = daily_request(pb, 20)
    connections = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096 if rate == 0 else 65536)
        sock.connect(("127.0.0.1", port))
        sock.sendall(PREFACE + b"".join(HEADER.pack(len(payload), 2 * index + 1, REQUEST, 0) + payload for index in range(8)))
        sock.setblocking(False)
        connections.append({"sock": sock, "buffer": b"", "responses": 0, "goaway": None, "closed": False})
    started = time.time()
    while time.time() - started < hold_seconds:
        time.sleep(0.5)
        if rate == 0:
            continue
        for connection in connections:
            if connection["closed"]:
                continue
            allowance = rate // 2  # this half second's share
            while allowance > 0 and not connection["closed"]:
                try:
                    chunk = connection["sock"].recv(allowance)
                except BlockingIOError:
                    break
                except OSError:
                    chunk = b""
                if not chunk:
                    connection["closed"] = True
                connection["buffer"] += chunk
                allowance -= len(chunk)
            while len(connection["buffer"]) >= HEADER.size:
                length, _, kind, flags = HEADER.unpack(connection["buffer"][:HEADER.size])
                if len(connection["buffer"]) < HEADER.size + length:
                    break
                body = connection["buffer"][HEADER.size:HEADER.size + length]
                connection["buffer"] = connection["buffer"][HEADER.size + length:]
                if kind == PING and not flags & 1:
                    try:
                        connection["sock"].sendall(HEADER.pack(len(body), 0, PING, 1) + body)
                    except OSError:
                        pass
                elif kind == RESPONSE:
                    connection["responses"] += 1
                elif kind == GOAWAY:
                    connection["goaway"] = pb.StatusCode.Name(pb.GoAway.FromString(body).status.code)
    evicted = sum(1 for connection in connections if connection["goaway"] == "RESOURCE_EXHAUSTED")
    responses = sum(connection["responses"] for connection in connections)
    for connection in connections:
        connection["sock"].close()
    reading = "read nothing" if rate == 0 else f"read {rate} bytes/s each"
    return (f"{count} connections x 8 calls of {len(payload)} bytes {reading} for {hold_seconds} s: "
            f"{responses} answers read, {evicted} connections told RESOURCE_EXHAUSTED")


def partial(port, count, hold_seconds):
    length = 4 * 1024 * 1024 - 10
    body = os.urandom(length - 10)
    sockets = []

    def one():
        sock = connect(port)
        sock.settimeout(None)
        sockets.append(sock)
        try:
            # Blocks while the server is not reading this connection.
            sock.sendall(HEADER.pack(length, 1, REQUEST, 0) + body)
        except OSError:
            pass

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(hold_seconds)
    for sock in sockets:
        sock.close()
    return f"{count} connections held frames of {length} bytes minus 10 for {hold_seconds} s"


def queued(port, count):
    pb = load_pb()

    payload = heavy_request(pb, 40_000)
    sock = connect(port)
    sock.settimeout(None)
    frames = b"".join(HEADER.pack(len(payload), 2 * index + 1, REQUEST, 0) + payload for index in range(count))
    started = time.time()
    sender = threading.Thread(target=lambda: sock.sendall(frames), daemon=True)
    sender.start()
    codes = {}
    unanswered = []
    while sum(codes.values()) < count:
        kind, _, flags, body = read_frame(sock)
        if kind == PING and not flags & 1:
            # Answered once the sender is done: two threads writing one socket would interleave
            # their bytes (the server does not close a connection it is not reading for that).
            unanswered.append(HEADER.pack(len(body), 0, PING, 1) + body)
        elif kind == GOAWAY:
            raise SystemExit(f"GOAWAY: {pb.GoAway.FromString(body)}")
        elif kind == RESPONSE:
            code = pb.StatusCode.Name(pb.CallResponse.FromString(body).status.code)
            codes[code] = codes.get(code, 0) + 1
            answered = sum(codes.values())
            if answered % 10 == 0:
                print(f"  {answered} answered after {time.time() - started:.1f} s", file=sys.stderr, flush=True)
        if unanswered and not sender.is_alive():
            sock.sendall(b"".join(unanswered))
            unanswered.clear()
    sock.close()
    return f"{count} requests of {len(payload)} bytes answered in {time.time() - started:.1f} s: {codes}"


def start_server(backtestd, flags):
    """A `backtestd` child with `flags` (BACKTESTD_CACHE=false) on a free loopback port, once it
    accepts connections: (process, port). Exits when it does not start within 30 s."""
    port = free_port()
    environment = dict(os.environ, BACKTESTD_CACHE="false")
    server = subprocess.Popen([backtestd, "--port", str(port), *flags], env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("backtestd did not start")
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=["partial", "queued", "unread", "paced"])
    parser.add_argument("--backtestd", required=True, help="path of the backtestd binary (a release build)")
    parser.add_argument("--count", type=int, default=100, help="connections (partial, unread, paced) or requests (queued)")
    parser.add_argument("--hold", type=float, default=8, help="seconds the partial frames are held, or the answers read")
    parser.add_argument("--rate", type=int, default=100_000, help="bytes a second each connection reads (paced)")
    parser.add_argument("server_flags", nargs="*", help="flags for backtestd (after --)")
    args = parser.parse_args()

    server, port = start_server(args.backtestd, args.server_flags)
    try:
        before = status_mb(server.pid, "VmRSS")
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], status_mb(server.pid, "VmRSS"))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            if args.case == "partial":
                outcome = partial(port, args.count, args.hold)
            elif args.case == "queued":
                outcome = queued(port, args.count)
            else:
                outcome = answers(port, args.count, args.hold, args.rate if args.case == "paced" else 0)
        finally:
            done.set()
            sampler.join()
        print(outcome)
        print(f"server RSS: {before} MB before, peak {max(peak[0], status_mb(server.pid, 'VmHWM'))} MB, "
              f"{status_mb(server.pid, 'VmRSS')} MB at the end")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
