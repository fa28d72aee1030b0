#!/usr/bin/env python3
"""The web dashboard in a real browser (Debian's chromium + chromium-driver, selenium from PyPI).

Run by scripts/browser-test.sh, which starts `backtestd --data-source demo --http-port P
--variant-delay-ms D` on a free loopback port and passes --url http://127.0.0.1:P/. The pacing
(D ms before each variant result) is what lets a browser see a batch of 8 while it is partial.

Checks: the polling schedule; a single backtest (charts, metrics, orders); a validation error
shown at the field the server names (in the strategy, and in the grid's axes); a batch of 8 going from "Partial Results (k/8 complete)"
to "Final Results" with sorting and the CSV disabled while partial and enabled at the end; the
CSV equal to the server's summaries; a strategy named <img src=x onerror=alert(1)> rendered as
text; a row's FULL result; the live stream killed mid-batch, the page finishing by polling; a
reload re-attaching by the batch id in the URL. Writes a screenshot of the final page.

The last line is "browser: N passed, M failed"; the exit status is 1 when any check failed.
"""
import argparse
import csv
import io
import json
import os
import sys
import time
import traceback
import urllib.request

os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never fetch a driver
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

XSS_NAME = "<img src=x onerror=alert(1)>"
STRATEGY = {
    "name": XSS_NAME, "start": "2018-01-02", "end": "2023-12-29", "initial_capital": 100000,
    "benchmark": "SPY", "fill": "next_open", "commission_bps": 1, "slippage_bps": 2,
    "positions": [{"ticker": "AAPL", "weight": 1.0, "entry": {"lhs": "sma:20", "op": ">", "rhs": "sma:100"}}],
}
GRID = "positions[0].entry.lhs=sma:10,sma:20,sma:30,sma:40\npositions[0].entry.rhs=sma:100,sma:200"


class Browser:
    def __init__(self, url, driver_path, chromium_path):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium_path
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,2000", "--disable-extensions", "--no-first-run"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        self.url = url.rstrip("/")

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def text(self, element_id):
        return self.js("return document.getElementById(arguments[0]).textContent", element_id)

    def wait(self, condition, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def load(self, query=""):
        self.driver.get(self.url + "/" + query)
        self.wait(lambda: self.js("return !!window.BacktestDashboard"), what="the dashboard script")

    def set_value(self, element_id, value):
        self.js("document.getElementById(arguments[0]).value = arguments[1]", element_id, value)

    def get_json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.load(response)

    def get_text(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read().decode("utf-8")

    CONTROLS_JS = """
        const buttons = [...document.querySelectorAll('#batch-columns button.sort')];
        const controls = [document.getElementById('sort-metric').disabled,
                          document.getElementById('download-csv').disabled,
                          buttons.length > 0 && buttons.every(b => b.disabled),
                          buttons.some(b => b.disabled)];"""

    def controls(self):
        """(sort select disabled, download disabled, every sort button disabled, any disabled)."""
        return self.js(self.CONTROLS_JS + "return controls;")

    def header_and_controls(self):
        """The batch header and `controls()` read in one script, so both describe the same moment
        (read apart, the batch could turn Final in between and the controls look enabled while
        the header still said 7/8: a fresh-clone run failed that way)."""
        return self.js(self.CONTROLS_JS + "return [document.getElementById('batch-header').textContent, controls];")

    def start_batch(self, name=XSS_NAME):
        strategy = dict(STRATEGY, name=name)
        self.set_value("strategy-editor", json.dumps(strategy, indent=2))
        self.set_value("grid-axes", GRID)
        self.driver.find_element(By.ID, "run-batch").click()


def header_count(header):
    """k of "Partial Results (k/8 complete)", else None."""
    prefix, suffix = "Partial Results (", "/8 complete)"
    if header.startswith(prefix) and header.endswith(suffix):
        return int(header[len(prefix):-len(suffix)])
    return None


# MARK: Checks

def check_poll_schedule(b):
    cases = [(0, 1000), (29999, 1000), (30000, 2000), (59999, 2000), (60000, 5000), (119999, 5000),
             (120000, 10000), (299999, 10000), (300000, 30000), (599999, 30000), (600000, 60000), (3600000, 60000)]
    got = b.js("return arguments[0].map(t => window.BacktestDashboard.pollInterval(t))", [t for t, _ in cases])
    assert got == [d for _, d in cases], f"poll schedule {got}"


def check_single_backtest(b):
    strategy = dict(STRATEGY, name="AAPL SMA 20/100")
    b.set_value("strategy-editor", json.dumps(strategy, indent=2))
    b.driver.find_element(By.ID, "run-backtest").click()
    b.wait(lambda: b.text("result-title") == "AAPL SMA 20/100", what="the result")
    assert b.js("return document.querySelectorAll('#equity-chart svg polyline').length") == 2, "equity vs benchmark"
    assert b.js("return document.querySelectorAll('#drawdown-chart svg polyline').length") == 2, "drawdowns"
    assert b.js("return document.querySelectorAll('#metrics-table tbody tr').length") == 14, "metrics"
    assert b.text("benchmark-column") == "SPY"
    assert b.js("return document.querySelectorAll('#orders-table tbody tr').length") > 0, "orders"
    assert "demo" in b.text("warnings"), "the demo data warning"


def check_validation_error_at_field(b):
    text = json.dumps(dict(STRATEGY, name="bad op"), indent=2).replace('"op": ">"', '"op": "=>"')
    b.set_value("strategy-editor", text)
    b.driver.find_element(By.ID, "run-backtest").click()
    b.wait(lambda: b.js("return !document.getElementById('editor-error').hidden"), what="the error box")
    field = b.js("return document.getElementById('editor-error').dataset.field")
    assert field == "positions[0].entry.op", f"field {field!r}"
    selected = b.js("const e = document.getElementById('strategy-editor'); return e.value.slice(e.selectionStart, e.selectionEnd)")
    assert '"=>"' in selected, f"the editor selects the field, not {selected!r}"
    assert "invalid" in b.js("return document.getElementById('strategy-editor').className")


def check_grid_error_under_the_axes(b):
    b.set_value("strategy-editor", json.dumps(dict(STRATEGY, name="grid error"), indent=2))
    b.set_value("grid-axes", "positions[3].weight=1,2")
    b.driver.find_element(By.ID, "run-batch").click()
    b.wait(lambda: b.js("return !document.getElementById('grid-error').hidden"), what="the grid error box")
    field = b.js("return document.getElementById('grid-error').dataset.field")
    assert field.startswith("run_batch.grid"), f"field {field!r}"
    assert b.js("return document.getElementById('editor-error').hidden"), "the strategy is not blamed"


def check_batch_partial_to_final(b, shared):
    b.start_batch()
    seen, partial_controls, running_rows = [], [], 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        header, controls = b.header_and_controls()
        if header and (not seen or seen[-1] != header):
            seen.append(header)
        k = header_count(header)
        if k is not None and 0 < k < 8:
            partial_controls.append(controls)
            running_rows = max(running_rows, b.js(
                "return [...document.querySelectorAll('#batch-rows td')].filter(td => td.textContent === 'Running...').length"))
        if header == "Final Results":
            break
        time.sleep(0.02)
    assert seen and seen[-1] == "Final Results", f"headers seen: {seen}"
    counts = [header_count(h) for h in seen if header_count(h) is not None]
    assert any(0 < k < 8 for k in counts), f"no partial state seen: {seen}"
    assert counts == sorted(counts), f"k went backwards: {seen}"
    assert partial_controls and all(c[0] and c[1] and c[2] for c in partial_controls), f"controls while partial {partial_controls}"
    assert running_rows > 0, "no Running... rows while partial"
    final_controls = b.controls()
    assert not final_controls[0] and not final_controls[1] and not final_controls[3], f"controls at the end {final_controls}"
    shared["batch_id"] = b.js("return window.BacktestDashboard.state.batchId")
    assert ("batch=" + shared["batch_id"]) in b.driver.current_url, "the batch id is in the URL"
    print(f"browser: headers seen: {' -> '.join(seen)}")


def check_csv_equals_summaries(b, shared):
    href = b.js("return document.getElementById('download-csv').dataset.href")
    assert href and shared["batch_id"] in href, f"download href {href!r}"
    rows = list(csv.DictReader(io.StringIO(b.get_text(href))))
    assert len(rows) == 8, f"{len(rows)} CSV rows"
    summaries = {r["index"]: r for r in b.get_json(f"/api/batches/{shared['batch_id']}")["results"]}
    assert len(summaries) == 8, f"{len(summaries)} summaries"

    def number(text):
        return None if text == "" else float(text)

    for row in rows:
        s = summaries[int(row["index"])]
        assert row["status"] == "ok" and s["status"] == "ok"
        assert row["strategy_name"] == s["strategy_name"] == XSS_NAME, row["strategy_name"]
        assert number(row["final_equity"]) == s["final_equity"], (row["final_equity"], s["final_equity"])
        for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "exposure"):
            assert number(row[key]) == s["metrics"][key], (key, row[key], s["metrics"][key])
        assert int(row["trade_count"]) == s["metrics"]["trade_count"]
        assert row["variant"] == ", ".join(f"{p['path']}={p['value']}" for p in s["parameters"])
    sharpes = [number(r["sharpe"]) for r in rows]
    assert sharpes == sorted(sharpes, reverse=True), "CSV in Sharpe order"
    # The page's own order matches the CSV's.
    page_order = b.js("return [...document.querySelectorAll('#batch-rows tr')].map(tr => tr.dataset.index)")
    assert page_order == [r["index"] for r in rows], f"page order {page_order}"


def check_name_is_text(b):
    cells = b.js("return [...document.querySelectorAll('#batch-rows td')].map(td => td.textContent)")
    assert cells.count(XSS_NAME) == 8, "the name shows as text in every row"
    assert b.js("return document.getElementsByTagName('img').length") == 0, "an img element was created"
    try:
        alert = b.driver.switch_to.alert
        raise AssertionError(f"an alert opened: {alert.text!r}")
    except NoAlertPresentException:
        pass


def check_row_full_result(b):
    b.js("document.querySelector('#batch-rows tr').click()")
    b.wait(lambda: b.text("result-title") == XSS_NAME and "variant" in b.text("result-meta"), what="the FULL result")
    assert b.js("return document.querySelectorAll('#equity-chart svg polyline').length") == 2
    assert b.js("return document.getElementsByTagName('img').length") == 0


def check_heatmap(b):
    assert not b.js("return document.getElementById('heatmap-section').hidden"), "heatmap shown"
    assert b.js("return document.querySelectorAll('#heatmap tr').length") == 5, "4 rows + header"
    assert b.js("return document.querySelectorAll('#heatmap td').length") == 8


def check_stream_killed_finishes_by_polling(b):
    b.start_batch(name="poll test")
    b.wait(lambda: (header_count(b.text("batch-header")) or 0) >= 1, what="a partial batch")
    assert b.js("return window.BacktestDashboard.breakLiveStream()") is True, "no live stream to break"
    b.wait(lambda: b.js("return window.BacktestDashboard.state.mode") == "polling", timeout=30, what="polling")
    assert header_count(b.text("batch-header")) is not None, "still partial when the stream broke"
    b.wait(lambda: b.text("batch-header") == "Final Results", timeout=60, what="Final Results by polling")
    polls = b.js("return window.BacktestDashboard.state.polls")
    assert polls >= 1, "no poll"
    assert "finished by polling" in b.text("live-status"), b.text("live-status")
    assert b.js("return document.querySelectorAll('#batch-rows tr').length") == 8
    assert not b.controls()[1], "download enabled at the end"
    print(f"browser: stream broken mid-batch, finished after {polls} polls")


def check_reload_reattaches(b, shared):
    b.start_batch(name="reload test")
    b.wait(lambda: "batch=" in b.driver.current_url and (header_count(b.text("batch-header")) or 0) >= 1,
           what="a partial batch with its id in the URL")
    url = b.driver.current_url
    b.driver.get(url)
    b.wait(lambda: b.js("return !!window.BacktestDashboard"), what="the page after reload")
    b.wait(lambda: b.text("batch-header") == "Final Results", timeout=60, what="Final Results after reload")
    assert "re-attached" in b.text("live-status"), b.text("live-status")
    assert b.js("return document.querySelectorAll('#batch-rows tr').length") == 8


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    b = Browser(args.url, args.chromedriver, args.chromium)
    shared = {}
    passed, failed = 0, 0
    checks = [
        ("poll schedule", lambda: check_poll_schedule(b)),
        ("single backtest", lambda: check_single_backtest(b)),
        ("validation error at the field", lambda: check_validation_error_at_field(b)),
        ("grid error under the axes", lambda: check_grid_error_under_the_axes(b)),
        ("batch partial to final", lambda: check_batch_partial_to_final(b, shared)),
        ("CSV equals the server's summaries", lambda: check_csv_equals_summaries(b, shared)),
        ("strategy name rendered as text", lambda: check_name_is_text(b)),
        ("heatmap", lambda: check_heatmap(b)),
        ("row opens its FULL result", lambda: check_row_full_result(b)),
        ("screenshot", lambda: screenshot(b, args.screenshot)),
        ("live stream killed, finished by polling", lambda: check_stream_killed_finishes_by_polling(b)),
        ("reload re-attaches", lambda: check_reload_reattaches(b, shared)),
    ]
    try:
        b.load()
        for name, check in checks:
            started = time.monotonic()
            try:
                check()
                passed += 1
                print(f"browser: ok   {name} ({time.monotonic() - started:.1f} s)")
            except Exception:
                failed += 1
                print(f"browser: FAIL {name}")
                traceback.print_exc()
                if name.startswith("batch partial"):
                    # The checks after it read that batch.
                    shared.setdefault("batch_id", "")
    finally:
        b.driver.quit()
    print(f"browser: {passed} passed, {failed} failed")
    return 1 if failed else 0


def screenshot(b, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    b.js("window.scrollTo(0, 0)")
    height = b.js("return document.documentElement.scrollHeight")
    b.driver.set_window_size(1280, min(max(height, 1200), 4000))
    assert b.driver.save_screenshot(path), "screenshot not written"
    b.driver.set_window_size(1280, 2000)
    print(f"browser: screenshot of the final page: {os.path.abspath(path)}")


if __name__ == "__main__":
    sys.exit(main())
