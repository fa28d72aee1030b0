#!/usr/bin/env python3
"""CPU a spawned backtestd spends on a grid over a large base (issue 12).

Each case is a RunBatch (SUMMARY) whose grid has one axis of two values over a base of
--positions positions (close > 0 on AAPL, weight 1/N or all distinct with --distinct): a valid
value and an invalid one (refused with INVALID_ARGUMENT naming `values[1]`), or two valid values
(run over January 2019). The server's CPU time (utime + stime from /proc) is read around each
call. Before session 10 the base went through Foundation JSON whole: 5.6 s of CPU to refuse the
first case over 100,000 positions.

    python3 benchmarks/grid_refusal.py --backtestd .build/release/backtestd --positions 100000
    python3 benchmarks/grid_refusal.py --backtestd .build/release/backtestd --positions 100000 --distinct

Needs Python's protobuf package and protoc (examples/python/generate.sh). The server runs with
BACKTESTD_CACHE=false and the demo data on a free loopback port.
"""
import argparse
import os
import time

from memory_flood import HEADER, REQUEST, RESPONSE, PING, connect, load_pb, read_frame, start_server

CASES = [
    ("positions[0].weight", ["0.5", "abc"]),
    ("commission_bps", ["1", '"x"']),
    ("positions[7].entry.rhs", ["1", '"nope:3"']),
    ("positions[*].weight", ["0.1", '"x"']),
    ("positions[*].weight", ["0.000001", "0.000002"]),
]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(pb, positions, distinct, path, values):
    call = pb.CallRequest(header=pb.RequestHeader(timeout_ms=120_000))
    batch = call.run_batch
    batch.detail = pb.RESULT_DETAIL_SUMMARY
    batch.settings.start_date, batch.settings.end_date = "2019-01-02", "2019-01-31"
    base = batch.grid.base_strategy
    base.name = "grid-refusal"
    for index in range(positions):
        position = base.positions.add()
        position.ticker = "AAPL"
        position.weight = (1 + index) / positions ** 2 if distinct else 1 / positions
        position.entry.compare.lhs.series.field = pb.CLOSE
        position.entry.compare.op = pb.GREATER
        position.entry.compare.rhs.number = 0.0
    axis = batch.grid.axes.add()
    axis.path = path
    axis.values.extend(values)
    return call.SerializeToString()


def call(port, payload):
    with connect(port) as sock:
        sock.sendall(HEADER.pack(len(payload), 1, REQUEST, 0) + payload)
        while True:
            kind, stream, flags, body = read_frame(sock)
            if kind == PING and not flags & 1:
                sock.sendall(HEADER.pack(len(body), 0, PING, 1) + body)
            elif kind == RESPONSE and stream == 1:
                return body


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backtestd", required=True, help="path of the backtestd binary (a release build)")
    parser.add_argument("--positions", type=int, default=100_000, help="positions of the grid's base")
    parser.add_argument("--distinct", action="store_true", help="give every position its own weight")
    args = parser.parse_args()
    pb = load_pb()
    server, port = start_server(args.backtestd, ["--data-source", "demo"])
    try:
        for path, values in CASES:
            payload = request(pb, args.positions, args.distinct, path, values)
            before, started = cpu_seconds(server.pid), time.time()
            answer = pb.CallResponse.FromString(call(port, payload))
            status = answer.status
            print(f"{path} = {', '.join(values)}: server CPU {cpu_seconds(server.pid) - before:.2f} s, "
                  f"wall {time.time() - started:.2f} s, status {status.code} {status.field} {status.message[:100]}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
