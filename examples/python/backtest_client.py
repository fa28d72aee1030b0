"""A minimal synchronous backtestd client, written from PROTOCOL.md alone.

It needs backtest_pb2 (generate it with ./generate.sh, protoc 3.21 + protobuf 4.21) on sys.path.
One call at a time per client; the protocol allows many, this example keeps it simple.
"""
import socket
import struct

import backtest_pb2 as pb

PREFACE = b"BACKTEST" + struct.pack(">H", 1)
HEADER = struct.Struct(">IIBB")  # length, stream id, type, flags

REQUEST, DATA, RESPONSE, CANCEL, PING, GOAWAY, SETTINGS = 1, 2, 3, 4, 5, 6, 7
ACK = 0x01


class CallError(Exception):
    """A call ended with a non-OK status (the gRPC code, its message and the field path)."""

    def __init__(self, code, message, field=""):
        super().__init__(f"{pb.StatusCode.Name(code)}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field


class ConnectionLost(CallError):
    def __init__(self):
        super().__init__(pb.UNAVAILABLE, "connection closed before the call finished")


class BacktestClient:
    def __init__(self, host="127.0.0.1", port=50051, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.sendall(PREFACE)
        self.next_stream = 1
        frame_type, _, _, payload = self._read_frame()
        if frame_type == GOAWAY:
            goaway = pb.GoAway.FromString(payload)
            raise CallError(goaway.status.code, goaway.status.message)
        if frame_type != SETTINGS:
            raise CallError(pb.INTERNAL, f"expected SETTINGS, got frame type {frame_type}")
        self.settings = pb.Settings.FromString(payload)

    def close(self):
        self.sock.close()

    # -- frames --------------------------------------------------------------------------------

    def _read_exactly(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionLost()
            data += chunk
        return data

    def _read_frame(self):
        length, stream, frame_type, flags = HEADER.unpack(self._read_exactly(HEADER.size))
        return frame_type, stream, flags, self._read_exactly(length)

    def send_frame(self, frame_type, stream, payload, flags=0):
        self.sock.sendall(HEADER.pack(len(payload), stream, frame_type, flags) + payload)

    # -- calls ---------------------------------------------------------------------------------

    def _start(self, request):
        stream = self.next_stream
        self.next_stream += 2
        self.send_frame(REQUEST, stream, request.SerializeToString())
        return stream

    def _frames(self, stream):
        """Yields (type, payload) for `stream`, answering PINGs; ends after RESPONSE."""
        while True:
            frame_type, frame_stream, flags, payload = self._read_frame()
            if frame_type == PING and not flags & ACK:
                self.send_frame(PING, 0, payload, ACK)
            elif frame_type == GOAWAY:
                goaway = pb.GoAway.FromString(payload)
                if stream > goaway.last_stream_id:
                    raise CallError(pb.UNAVAILABLE, "not processed: " + goaway.status.message)
            elif frame_stream == stream:
                yield frame_type, payload
                if frame_type == RESPONSE:
                    return

    def call(self, request):
        """Sends a CallRequest and returns the CallResponse of a unary call (raises CallError)."""
        stream = self._start(request)
        for frame_type, payload in self._frames(stream):
            if frame_type == RESPONSE:
                response = pb.CallResponse.FromString(payload)
                if response.status.code != pb.OK:
                    raise CallError(response.status.code, response.status.message, response.status.field)
                return response
        raise ConnectionLost()

    def stream(self, request):
        """Yields the DATA messages (ProgressUpdate) of a streaming call, then checks the status."""
        stream = self._start(request)
        for frame_type, payload in self._frames(stream):
            if frame_type == DATA:
                yield pb.ProgressUpdate.FromString(payload)
            elif frame_type == RESPONSE:
                status = pb.CallResponse.FromString(payload).status
                if status.code != pb.OK:
                    raise CallError(status.code, status.message, status.field)
                return
        raise ConnectionLost()

    def server_info(self, timeout_ms=5000):
        request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms, client="python-example"))
        request.get_server_info.SetInParent()
        return self.call(request).server_info

    def run_backtest(self, strategy, settings, timeout_ms=0, request_id=""):
        """Returns the BacktestResult of a RunBacktest (raises CallError)."""
        return self.call(run_backtest_request(strategy, settings, timeout_ms, request_id)).backtest

    def run_batch(self, variants, settings, max_parallel=0, timeout_ms=0, request_id=""):
        """Yields the ProgressUpdates of a RunBatch: a first one announcing the batch_id (completed 0,
        sent before the server fetches data), PARTIAL ones as variants finish, then FINAL."""
        return self.stream(run_batch_request(variants, settings, max_parallel, timeout_ms, request_id))

    def batch_status(self, batch_id, known_indices=(), timeout_ms=5000):
        """The ProgressUpdate of GetBatchStatus: state and finished results not in known_indices."""
        return self.call(batch_status_request(batch_id, known_indices, timeout_ms)).batch_status

    def cancel_batch(self, batch_id, timeout_ms=5000):
        """Stops a batch from any connection (CancelBatch); returns its ProgressUpdate afterwards."""
        return self.call(cancel_batch_request(batch_id, timeout_ms)).batch_status

    def indicators(self, ticker, series, start_date="", end_date="", adjustment=0, timeout_ms=0):
        """GetIndicators: the IndicatorsResult of `series` (keys such as "sma:50",
        "macd:12,26,9:signal") on `ticker`; empty dates = the whole data range. Values are NaN
        during the warm-up; indicators_json() turns the answer into the CLI's JSON shape."""
        return self.call(indicators_request(ticker, series, start_date, end_date, adjustment, timeout_ms)).indicators


    def run_grid(self, base_strategy, axes, settings, detail=None, max_parallel=0, timeout_ms=0, request_id=""):
        """Yields the ProgressUpdates of a RunBatch whose variants the server expands from a grid:
        `axes` is a list of (path, values) or (path, values, range) or GridAxis messages, e.g.
        [("positions[0].entry.lhs", [], "sma:5..104"), ("commission_bps", ["1", "2.5"])].
        `detail` defaults to SUMMARY (pb.RESULT_DETAIL_SUMMARY); results finishing close together
        share one update."""
        return self.stream(run_grid_request(base_strategy, axes, settings, detail, max_parallel, timeout_ms, request_id))

    def sweep(self, base_strategy, axes, settings, max_parallel=0, timeout_ms=0, on_update=None):
        """Runs a grid with SUMMARY detail to its Final update; returns (batch_id, rows), one row
        (a dict, see summary_row) per variant in index order: `pandas.DataFrame(rows)` takes it.
        `on_update(update)` is called for each streamed ProgressUpdate (a progress bar)."""
        batch_id, rows = "", []
        for update in self.run_grid(base_strategy, axes, settings, pb.RESULT_DETAIL_SUMMARY, max_parallel, timeout_ms):
            batch_id = update.batch_id
            rows.extend(summary_row(variant) for variant in update.results)
            if on_update:
                on_update(update)
        rows.sort(key=lambda row: row["index"])
        return batch_id, rows

    def variant_results(self, batch_id, indices=(), best_by="", best_count=0, timeout_ms=60000):
        """GetVariantResults: the FULL results (VariantResult with `result`) of a retained batch's
        variants, by index, or the best `best_count` by the metric `best_by` (best first)."""
        return list(self.call(variant_results_request(batch_id, indices, best_by, best_count, timeout_ms))
                    .variant_results.results)


def indicators_request(ticker, series, start_date="", end_date="", adjustment=0, timeout_ms=0):
    """The CallRequest of a GetIndicators (answer: CallResponse.indicators). adjustment is a
    PriceAdjustment value (0 = split-adjusted)."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms))
    request.get_indicators.ticker = ticker
    request.get_indicators.series.extend(series)
    request.get_indicators.start_date = start_date
    request.get_indicators.end_date = end_date
    request.get_indicators.adjustment = adjustment
    return request


def indicators_json(result):
    """An IndicatorsResult as `backtest indicators --json` prints it: {"ticker", "adjustment",
    "dates": ["YYYY-MM-DD", ...], "close": [...], "series": {KEY: [value or None]}}, None where
    the indicator has no value (NaN on the wire: the warm-up)."""
    def day(packed):
        return f"{packed // 10000:04d}-{packed // 100 % 100:02d}-{packed % 100:02d}"
    adjustment = pb.PriceAdjustment.Name(result.adjustment).replace("ADJUSTMENT_", "").lower()
    return {
        "ticker": result.ticker,
        "adjustment": adjustment,
        "dates": [day(d) for d in result.dates],
        "close": list(result.close),
        "series": {s.key: [None if v != v else v for v in s.values] for s in result.series},
    }


def summary_row(variant):
    """One variant of a SUMMARY (or FULL) batch as a flat dict: index, each grid parameter by its
    path, the strategy's metrics, final_equity, order_count and error ("" when it ran)."""
    row = {"index": variant.index}
    for parameter in variant.parameters:
        row[parameter.path] = parameter.value
    outcome = variant.WhichOneof("outcome")
    if outcome == "summary":
        metrics, final, orders = variant.summary.metrics, variant.summary.final_equity, variant.summary.order_count
    elif outcome == "result":
        metrics, final, orders = variant.result.metrics, variant.result.final_equity, len(variant.result.orders)
    else:
        metrics, final, orders = None, float("nan"), 0
    for field in pb.Metrics.DESCRIPTOR.fields:
        row[field.name] = getattr(metrics, field.name) if metrics is not None else float("nan")
    row["final_equity"] = final
    row["order_count"] = orders
    row["error"] = variant.error.message if outcome == "error" else ""
    return row


def batch_status_request(batch_id, known_indices=(), timeout_ms=5000):
    """The CallRequest of a GetBatchStatus (answer: CallResponse.batch_status)."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms))
    request.get_batch_status.batch_id = batch_id
    request.get_batch_status.known_indices.extend(known_indices)
    return request


def cancel_batch_request(batch_id, timeout_ms=5000):
    """The CallRequest of a CancelBatch (answer: CallResponse.batch_status, without results)."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms))
    request.cancel_batch.batch_id = batch_id
    return request


def run_backtest_request(strategy, settings, timeout_ms=0, request_id=""):
    """The CallRequest of a RunBacktest."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms, request_id=request_id))
    request.run_backtest.strategy.CopyFrom(strategy)
    request.run_backtest.settings.CopyFrom(settings)
    return request


def run_grid_request(base_strategy, axes, settings, detail=None, max_parallel=0, timeout_ms=0, request_id=""):
    """The CallRequest of a RunBatch over a grid (see BacktestClient.run_grid)."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms, request_id=request_id))
    batch = request.run_batch
    batch.grid.base_strategy.CopyFrom(base_strategy)
    for axis in axes:
        if isinstance(axis, pb.GridAxis):
            batch.grid.axes.append(axis)
            continue
        path, values, *rest = axis
        batch.grid.axes.add(path=path, values=[str(value) for value in values], range=rest[0] if rest else "")
    batch.settings.CopyFrom(settings)
    batch.max_parallel = max_parallel
    batch.detail = pb.RESULT_DETAIL_SUMMARY if detail is None else detail
    return request


def variant_results_request(batch_id, indices=(), best_by="", best_count=0, timeout_ms=60000):
    """The CallRequest of a GetVariantResults (answer: CallResponse.variant_results)."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms))
    request.get_variant_results.batch_id = batch_id
    request.get_variant_results.indices.extend(indices)
    request.get_variant_results.best_by = best_by
    request.get_variant_results.best_count = best_count
    return request


def run_batch_request(variants, settings, max_parallel=0, timeout_ms=0, request_id=""):
    """The CallRequest of a RunBatch (max_parallel 0 = the server's default)."""
    request = pb.CallRequest(header=pb.RequestHeader(timeout_ms=timeout_ms, request_id=request_id))
    request.run_batch.variants.extend(variants)
    request.run_batch.settings.CopyFrom(settings)
    request.run_batch.max_parallel = max_parallel
    return request
