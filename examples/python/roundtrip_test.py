"""Round trips against a running backtestd: the proof that a protoc-generated client in another
language works. Usage: python3 roundtrip_test.py --port PORT [--expect-engine none]

Generates backtest_pb2.py into a temporary directory with protoc, then checks real answers of the
server (no mocks). Exit status 0 when every check passed.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    generated = tempfile.mkdtemp(prefix="backtest-pb2-")
    subprocess.run([os.path.join(HERE, "generate.sh"), generated], check=True, stdout=subprocess.DEVNULL)
    sys.path[:0] = [generated, HERE]
    import backtest_pb2 as pb
    from backtest_client import BacktestClient, CallError

    client = BacktestClient(args.host, args.port)
    assert client.settings.protocol_version == 1, client.settings
    assert client.settings.max_frame_payload > 0, client.settings

    # 1. A unary call with a real answer.
    info = client.server_info()
    assert info.protocol_version == 1, info
    assert info.server_version, info
    print(f"GetServerInfo: version={info.server_version} engine={info.engine!r}")

    # 2. A request with an invalid field comes back as INVALID_ARGUMENT naming the field.
    strategy = pb.Strategy(name="python")
    position = strategy.positions.add(ticker="SPY", weight=0.5)
    position.entry.compare.lhs.series.field = pb.CLOSE
    position.entry.compare.op = pb.GREATER
    position.entry.compare.rhs.number = 100
    bad = pb.BacktestSettings(start_date="2020-02-30", end_date="2020-12-31")
    try:
        client.run_backtest(strategy, bad, request_id="py-1")
        raise AssertionError("an impossible date was accepted")
    except CallError as error:
        assert error.code == pb.INVALID_ARGUMENT, error
        assert error.field == "run_backtest.settings.start_date", error
        print(f"invalid date: {error}")

    # 3. A valid request gets the server's real answer: a result, or UNIMPLEMENTED while no
    #    engine is wired in. Either way it must decode and carry a proper status.
    good = pb.BacktestSettings(start_date="2020-01-02", end_date="2020-12-31")
    try:
        result = client.run_backtest(strategy, good, timeout_ms=30000)
        assert result.strategy_name == "python", result.strategy_name
        print(f"RunBacktest: final equity {result.final_equity}")
    except CallError as error:
        assert error.code == pb.UNIMPLEMENTED, error
        print(f"RunBacktest: {error}")

    # 4. A request naming no method is UNIMPLEMENTED, and the connection stays usable.
    try:
        client.call(pb.CallRequest(header=pb.RequestHeader(request_id="py-2")))
        raise AssertionError("a request without a method was accepted")
    except CallError as error:
        assert error.code == pb.UNIMPLEMENTED, error
    assert client.server_info().protocol_version == 1

    client.close()
    print("python round trip: OK")


if __name__ == "__main__":
    main()
