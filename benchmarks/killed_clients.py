#!/usr/bin/env python3
"""CPU a spawned backtestd spends after clients with heavy calls pipelined are killed (issue 12).

Each of --connections child processes opens a connection, sends --per RunBacktests of --positions
short positions with a take-profit (entering the same day, 2017-2019, about 4 MB each) without
reading anything, and is killed (SIGKILL) --after seconds later. The server is not reading those
connections by then (its inbound budget holds back their later requests), so a killed client's
FIN waits behind bytes the server never reads. The server's CPU time (utime + stime from /proc)
is printed every 0.5 s for 5 s after the kill: before the probe of connections not read (session
11), 2.5 s of CPU more with 4 connections x 8 calls; after, 0.03 s.

    python3 benchmarks/killed_clients.py --backtestd .build/release/backtestd

Needs Python's protobuf package and protoc (examples/python/generate.sh). The server runs with
BACKTESTD_CACHE=false and the demo data on a free loopback port.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

from memory_flood import HEADER, REQUEST, connect, load_pb, start_server

CHILD = """
import sys, time
sys.path.insert(0, {directory!r})
from memory_flood import HEADER, REQUEST, connect
payload = open({path!r}, "rb").read()
sock = connect({port})
for index in range({per}):
    sock.sendall(HEADER.pack(len(payload), 1 + 2 * index, REQUEST, 0) + payload)
time.sleep(1000)
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(pb, positions):
    call = pb.CallRequest(header=pb.RequestHeader(request_id="killed"))
    strategy = call.run_backtest.strategy
    strategy.name = "killed"
    strategy.commission_bps, strategy.slippage_bps = 5, 2
    tickers = ["AAPL", "MSFT", "SPY", "QQQ", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "IWM"]
    for index in range(positions):
        position = strategy.positions.add()
        position.ticker = tickers[index % len(tickers)]
        position.direction = pb.DIRECTION_SHORT
        position.weight = 1 / positions
        position.take_profit = 0.9
        position.entry.compare.lhs.series.field = pb.CLOSE
        position.entry.compare.op = pb.GREATER
        position.entry.compare.rhs.number = 0.0
    call.run_backtest.settings.start_date, call.run_backtest.settings.end_date = "2017-01-01", "2019-12-31"
    return call.SerializeToString()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backtestd", required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--per", type=int, default=8)
    parser.add_argument("--positions", type=int, default=80_000)
    parser.add_argument("--after", type=float, default=8.0)
    arguments = parser.parse_args()
    pb = load_pb()
    path = f"/tmp/killed_clients_{os.getpid()}.bin"
    with open(path, "wb") as out:
        out.write(request(pb, arguments.positions))
    server, port = start_server(arguments.backtestd, ["--data-source", "demo"])
    try:
        directory = os.path.dirname(os.path.abspath(__file__))
        code = CHILD.format(directory=directory, path=path, port=port, per=arguments.per)
        children = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(arguments.connections)]
        time.sleep(arguments.after)
        for child in children:
            child.send_signal(signal.SIGKILL)
        for child in children:
            child.wait()
        before = cpu_seconds(server.pid)
        after = []
        for _ in range(10):
            time.sleep(0.5)
            after.append(round(cpu_seconds(server.pid) - before, 2))
        print(f"{arguments.connections} connections x {arguments.per} RunBacktests of {arguments.positions} positions, "
              f"killed after {arguments.after} s: server CPU since the kill, every 0.5 s: {after}")
    finally:
        server.kill()
        os.unlink(path)


if __name__ == "__main__":
    main()
