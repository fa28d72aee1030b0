"""Round trips against a running backtestd: the proof that a protoc-generated client in another
language works. Usage: python3 roundtrip_test.py --port PORT [--report FILE]

Generates backtest_pb2.py into a temporary directory with protoc, then checks real answers of the
server (no mocks): server info, a field-path error, a RunBacktest result, a RunBatch of 3 variants
streamed to its Final update, a grid batch with SUMMARY results and GetVariantResults, and an
unknown method. Exit status 0 when every check passed.

The server must run the engine on data that has the tickers used here (AAPL, MSFT, SPY) over 2020,
for example `backtestd --data-source demo`. With --report, what Python decoded (and the requests it
sent, serialized) is written to FILE as JSON, so a client in another language can ask the same and
compare: PythonClientTests in the Swift suite compares it with the Swift client's answers. Floats
are written as Python's repr, which reads back to the same double.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--report", help="write the decoded results and the requests to this JSON file")
    args = parser.parse_args()

    generated = tempfile.mkdtemp(prefix="backtest-pb2-")
    subprocess.run([os.path.join(HERE, "generate.sh"), generated], check=True, stdout=subprocess.DEVNULL)
    sys.path[:0] = [generated, HERE]
    import backtest_pb2 as pb
    from backtest_client import (BacktestClient, CallError, indicators_json, indicators_request, run_backtest_request,
                                 run_batch_request)

    # The socket timeout matches the longest call deadline below (60 s): on a loaded machine a
    # batch's first update may take longer than the client's 10 s default.
    client = BacktestClient(args.host, args.port, timeout=60.0)
    assert client.settings.protocol_version == 1, client.settings
    assert client.settings.max_frame_payload > 0, client.settings
    report = {}

    # 1. A unary call with a real answer.
    info = client.server_info()
    assert info.protocol_version == 1, info
    assert info.server_version, info
    print(f"GetServerInfo: version={info.server_version} engine={info.engine!r} data={info.data_source!r}")

    # 2. A request with an invalid field comes back as INVALID_ARGUMENT naming the field.
    strategy = sma_strategy(pb, "python", {"AAPL": 20, "MSFT": 50})
    bad = pb.BacktestSettings(start_date="2020-02-30", end_date="2020-12-31")
    try:
        client.run_backtest(strategy, bad, request_id="py-1")
        raise AssertionError("an impossible date was accepted")
    except CallError as error:
        assert error.code == pb.INVALID_ARGUMENT, error
        assert error.field == "run_backtest.settings.start_date", error
        print(f"invalid date: {error}")

    # 3. A valid RunBacktest gets the engine's result, consistent in itself.
    settings = pb.BacktestSettings(start_date="2020-01-02", end_date="2020-12-31")
    request = run_backtest_request(strategy, settings, timeout_ms=30000, request_id="py-3")
    result = client.call(request).backtest
    assert result.strategy_name == "python", result.strategy_name
    assert len(result.equity) > 200, f"{len(result.equity)} curve points for a year"
    assert len(result.dates) == len(result.equity) == len(result.benchmark), (
        len(result.dates), len(result.equity), len(result.benchmark))
    assert result.dates[0] >= 20200102 and result.dates[-1] <= 20201231, (result.dates[0], result.dates[-1])
    assert result.final_equity == result.equity[-1], (result.final_equity, result.equity[-1])
    assert result.initial_capital == 100000, result.initial_capital
    assert result.orders, "an SMA strategy over a year trades"
    assert {order.ticker for order in result.orders} <= {"AAPL", "MSFT"}, result.orders
    assert result.metrics.trade_count > 0, result.metrics
    assert result.benchmark_ticker == "SPY", result.benchmark_ticker
    print(f"RunBacktest: final equity {result.final_equity!r}, {len(result.equity)} curve points, "
          f"{len(result.orders)} orders, sharpe {result.metrics.sharpe!r}, data {result.data_source!r}")
    report["run_backtest"] = {
        "request": request.SerializeToString().hex(),
        "result": describe_result(pb, result),
    }

    # 4. A RunBatch of 3 variants streams ProgressUpdates, each variant's result exactly once,
    #    then one Final update.
    variants = [sma_strategy(pb, f"py-v{index}", {"AAPL": length}) for index, length in enumerate([10, 20, 30])]
    request = run_batch_request(variants, settings, timeout_ms=60000, request_id="py-4")
    updates = list(client.stream(request))
    assert updates, "RunBatch streamed nothing"
    assert len({update.batch_id for update in updates}) == 1 and updates[0].batch_id, [u.batch_id for u in updates]
    assert all(update.total == 3 for update in updates), [u.total for u in updates]
    *partials, final = updates
    assert partials, "no ProgressUpdate before the Final one"
    assert all(update.state == pb.BATCH_PARTIAL for update in partials), [u.state for u in partials]
    assert final.state == pb.BATCH_FINAL, pb.BatchState.Name(final.state)
    assert final.completed == 3, final.completed
    completed = [update.completed for update in updates]
    assert completed == sorted(completed), completed
    delivered = [variant.index for update in updates for variant in update.results]
    assert sorted(delivered) == [0, 1, 2], f"each variant exactly once, got indices {delivered}"
    batch_results = {}
    for update in updates:
        for variant in update.results:
            assert variant.WhichOneof("outcome") == "result", variant
            assert variant.result.strategy_name == f"py-v{variant.index}", variant.result.strategy_name
            batch_results[str(variant.index)] = describe_result(pb, variant.result)
    print(f"RunBatch: {len(partials)} partial updates, then {final.status_text!r}; "
          f"final equities {[batch_results[str(i)]['final_equity'] for i in range(3)]}")
    report["run_batch"] = {
        "request": request.SerializeToString().hex(),
        "updates": [{"state": pb.BatchState.Name(update.state), "completed": update.completed,
                     "indices": [variant.index for variant in update.results]} for update in updates],
        "results": batch_results,
    }

    # The batch was announced before any result (completed 0), and CancelBatch on a finished
    # batch leaves it FINAL; an unknown id is NOT_FOUND.
    assert updates[0].completed == 0 and not updates[0].results, updates[0]
    after = client.cancel_batch(final.batch_id)
    assert after.state == pb.BATCH_FINAL and after.completed == 3, after
    try:
        client.cancel_batch("0" * 32)
        raise AssertionError("CancelBatch of an unknown id succeeded")
    except CallError as error:
        assert error.code == pb.NOT_FOUND and error.field == "cancel_batch.batch_id", error

    # 5. GetIndicators: the values behind the signals, NaN (None in JSON) during the warm-up; a bad
    #    key is INVALID_ARGUMENT naming it.
    request = indicators_request("AAPL", ["sma:20", "rsi:14", "macd:12,26,9:signal"], "2020-01-02", "2020-12-31",
                                 timeout_ms=30000)
    values = client.call(request).indicators
    assert values.ticker == "AAPL" and len(values.dates) > 200, (values.ticker, len(values.dates))
    assert len(values.close) == len(values.dates), len(values.close)
    assert [s.key for s in values.series] == ["sma:20", "rsi:14", "macd:12,26,9:signal"], [s.key for s in values.series]
    assert all(len(s.values) == len(values.dates) for s in values.series)
    document = indicators_json(values)
    assert document["dates"][0] >= "2020-01-02" and document["adjustment"] == "split", document["dates"][0]
    try:
        client.indicators("AAPL", ["sma:20", "sma:0"])
        raise AssertionError("a zero-length SMA was accepted")
    except CallError as error:
        assert error.code == pb.INVALID_ARGUMENT and error.field == "get_indicators.series[1]", error
    print(f"GetIndicators: {len(values.dates)} dates, last sma:20 {values.series[0].values[-1]!r}")
    report["indicators"] = {
        "request": request.SerializeToString().hex(),
        "result": {"dates": list(values.dates), "close": [repr(v) for v in values.close],
                   "series": {s.key: [repr(v) for v in s.values] for s in values.series}},
    }

    # 6. A grid the server expands (3 x 2 = 6 variants), SUMMARY results with their parameters,
    #    rows a pandas DataFrame takes, then the FULL results on demand: the best 2 by sharpe and
    #    one by index, each equal to its summary.
    base = sma_strategy(pb, "py-grid", {"AAPL": 20})
    axes = [("positions[0].entry.rhs", [], "sma:10..30/10"), ("commission_bps", ["1", "5"])]
    seen = []
    batch_id, rows = client.sweep(base, axes, settings, timeout_ms=60000, on_update=seen.append)
    assert seen[-1].state == pb.BATCH_FINAL and seen[-1].total == 6, seen[-1]
    assert [row["index"] for row in rows] == list(range(6)), rows
    assert [(row["positions[0].entry.rhs"], row["commission_bps"]) for row in rows] == [
        (f"sma:{n}", c) for n in (10, 20, 30) for c in ("1", "5")], rows
    assert all(not row["error"] and row["final_equity"] > 0 for row in rows), rows
    assert all(variant.WhichOneof("outcome") == "summary" for u in seen for variant in u.results)
    best = client.variant_results(batch_id, best_by="sharpe", best_count=2)
    assert len(best) == 2 and best[0].result.metrics.sharpe >= best[1].result.metrics.sharpe, best
    by_index = {row["index"]: row for row in rows}
    for variant in best + client.variant_results(batch_id, indices=[3]):
        assert variant.WhichOneof("outcome") == "result", variant
        assert variant.result.final_equity == by_index[variant.index]["final_equity"], variant.index
        assert variant.result.metrics.sharpe == by_index[variant.index]["sharpe"], variant.index
    try:
        import pandas
        frame = pandas.DataFrame(rows)
        assert frame.shape[0] == 6 and "sharpe" in frame.columns
    except ImportError:
        pass
    print(f"grid: {len(rows)} SUMMARY rows in {len(seen)} updates; best by sharpe "
          f"{[variant.index for variant in best]}, FULL results equal to their summaries")
    report["grid"] = {"final_equities": [repr(row["final_equity"]) for row in rows]}

    # 7. A request naming no method is UNIMPLEMENTED, and the connection stays usable.
    try:
        client.call(pb.CallRequest(header=pb.RequestHeader(request_id="py-2")))
        raise AssertionError("a request without a method was accepted")
    except CallError as error:
        assert error.code == pb.UNIMPLEMENTED, error
    assert client.server_info().protocol_version == 1

    # 8. Stops, a short and sizing (Position fields 5-12): every order says why it was placed,
    #    a short opens with a SELL, and a negative stop is INVALID_ARGUMENT naming the field.
    stops = pb.Strategy(name="python stops", fill=pb.FILL_CLOSE, commission_bps=1, slippage_bps=2)
    long_leg = stops.positions.add(ticker="AAPL", sizing=pb.SIZING_CASH, size=40000, stop_loss=0.02, take_profit=0.03)
    long_leg.entry.compare.lhs.series.field = pb.CLOSE
    long_leg.entry.compare.op = pb.GREATER
    long_leg.entry.compare.rhs.series.indicator.type = "sma"
    long_leg.entry.compare.rhs.series.indicator.params.append(10)
    short_leg = stops.positions.add(ticker="MSFT", weight=0.4, direction=pb.DIRECTION_SHORT, trailing_stop=0.03, max_bars=10)
    short_leg.entry.compare.lhs.series.field = pb.CLOSE
    short_leg.entry.compare.op = pb.LESS
    short_leg.entry.compare.rhs.series.indicator.type = "sma"
    short_leg.entry.compare.rhs.series.indicator.params.append(10)
    result = client.run_backtest(stops, settings, request_id="py-6")
    reasons = {pb.OrderReason.Name(order.reason) for order in result.orders}
    assert "ORDER_REASON_ENTRY" in reasons and len(reasons) > 1, reasons
    first_short = next(order for order in result.orders if order.ticker == "MSFT")
    assert first_short.side == pb.SELL and first_short.reason == pb.ORDER_REASON_ENTRY, first_short
    print(f"stops and a short: {len(result.orders)} orders, reasons {sorted(reasons)}")
    stops.positions[0].stop_loss = -0.02
    try:
        client.run_backtest(stops, settings, request_id="py-7")
        raise AssertionError("a negative stop loss was accepted")
    except CallError as error:
        assert error.code == pb.INVALID_ARGUMENT, error
        assert error.field == "run_backtest.strategy.positions[0].stop_loss", error

    client.close()
    if args.report:
        with open(args.report, "w") as file:
            json.dump(report, file, indent=1)
    print("python round trip: OK")


def sma_strategy(pb, name, lengths):
    """Holds each ticker while its close is above its SMA of the given length; weights sum to 0.8."""
    strategy = pb.Strategy(name=name, commission_bps=1, slippage_bps=2)
    for ticker, length in lengths.items():
        position = strategy.positions.add(ticker=ticker, weight=0.8 / len(lengths))
        position.entry.compare.lhs.series.field = pb.CLOSE
        position.entry.compare.op = pb.GREATER
        position.entry.compare.rhs.series.indicator.type = "sma"
        position.entry.compare.rhs.series.indicator.params.append(length)
    return strategy


def describe_result(pb, result):
    """What the comparison needs of a BacktestResult, floats as repr strings."""
    return {
        "strategy_name": result.strategy_name,
        "final_equity": repr(result.final_equity),
        "curve_points": len(result.equity),
        "first_date": result.dates[0] if result.dates else 0,
        "last_date": result.dates[-1] if result.dates else 0,
        "metrics": {field.name: repr(getattr(result.metrics, field.name)) for field in pb.Metrics.DESCRIPTOR.fields},
        "orders": [{"date": order.date, "ticker": order.ticker, "side": pb.Side.Name(order.side),
                    "quantity": repr(order.quantity), "price": repr(order.price),
                    "commission": repr(order.commission)} for order in result.orders],
        "data_source": result.data_source,
    }


if __name__ == "__main__":
    main()
