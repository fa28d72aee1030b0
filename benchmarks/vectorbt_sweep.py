"""The vectorbt side of the peer comparison (issue #7); run it through vectorbt-sweep.sh.

Runs the SMA-crossover sweep of `engine-bench sweep` with vectorbt on the same shared data,
checks vectorbt against one reference case first (so the conventions below are vectorbt's
reproduction of shared/reference/README.md, not a guess), compares every variant's final equity
with backtestd's JSON, and prints both times and their ratio. Exits 1 on any mismatch.

Conventions (shared/reference/README.md, shared/market-data/README.md):
- prices split-adjusted over the whole file (price / product of later split ratios);
- SMAs are TA-Lib's (the references' indicator library), through vectorbt's TA-Lib indicator
  factory, computed over all history from the file's first day (1999-11-01), then cut to
  [start, end]; the calendar is SPY's trading days in [start, end]. vectorbt's own vbt.MA is a
  cumulative-sum rolling mean whose last-bit rounding differs: where two SMAs tie exactly
  (AAPL's sma(28) and sma(119) on 2010-09-20) it can compare the other way, so one variant of
  the grid ends differently; the script reports that count but checks the TA-Lib setup;
- signal on bar t from data up to t's close; a comparison with an undefined SMA is false;
- `next_open`: the signal of bar t fills at bar t+1's open (signals shifted one bar, price=open),
  `close`: at bar t's close; equity is valued at each close;
- long only, all of equity per entry (size=inf: vectorbt buys what cash covers after fees,
  which is our weight 1 x equity reduced to fit cash), fees = commission_bps / 1e4 of the
  traded value, slippage moves the fill price against the trade, exit sells everything.

Timed for vectorbt, per run, with the data already in memory as NumPy arrays: the SMA of every
unique window over the whole history, cutting to [start, end], the 10,000 entry/exit columns,
Portfolio.from_signals and pf.final_value(). The first run in the process includes Numba's JIT
compilation (the wrapper points NUMBA_CACHE_DIR at an empty folder so it really is a first
compile); the warm figure is the median of the later runs. Both of vectorbt's engines are
measured: Numba (the default) and Rust (the `vectorbt[rust]` extra, when installed).
"""

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# vectorbt and TA-Lib are imported by load_vectorbt() (not needed with --skip-vectorbt).
talib = vbt = is_rust_available = TALIB_SMA = None


def load_vectorbt():
    global talib, vbt, is_rust_available, TALIB_SMA
    import talib as talib_module
    import vectorbt as vbt_module
    from vectorbt._engine import is_rust_available as rust_check
    talib, vbt, is_rust_available = talib_module, vbt_module, rust_check
    TALIB_SMA = vbt.IndicatorFactory.from_talib("SMA")

SHARED = Path(os.environ.get("BACKTESTD_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DAILY = SHARED / "market-data" / "daily"


def load_split_adjusted(ticker):
    """dates (numpy datetime64[D]), open, close: split-adjusted as the engine does it."""
    with open(DAILY / f"{ticker}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    dates = np.array([row["date"] for row in rows], dtype="datetime64[D]")
    open_ = np.array([float(row["open"]) for row in rows])
    close = np.array([float(row["close"]) for row in rows])
    ratios = np.array([float(row.get("split_coefficient") or 1.0) for row in rows])
    factor = np.ones(len(rows))  # product of the ratios of splits after each bar
    running = 1.0
    for i in range(len(rows) - 1, -1, -1):
        factor[i] = running
        if ratios[i] != 1.0 and ratios[i] > 0:
            running *= ratios[i]
    return dates, open_ * (1.0 / factor), close * (1.0 / factor)


class Market:
    """One ticker's full history plus the calendar rows of [start, end]."""

    def __init__(self, ticker, start, end):
        self.dates, self.open, self.close = load_split_adjusted(ticker)
        keep = self.dates <= np.datetime64(end)
        self.dates, self.open, self.close = self.dates[keep], self.open[keep], self.close[keep]
        spy_dates, _, _ = load_split_adjusted("SPY")
        calendar = spy_dates[(spy_dates >= np.datetime64(start)) & (spy_dates <= np.datetime64(end))]
        self.rows = np.searchsorted(self.dates, calendar)
        if not np.array_equal(self.dates[np.minimum(self.rows, len(self.dates) - 1)], calendar):
            sys.exit(f"{ticker} misses trading days of SPY's calendar in {start}..{end}: not handled here")
        self.calendar = pd.DatetimeIndex(calendar)


def simulate(market, entry, exit_, fill, commission_bps, slippage_bps, capital, columns=None):
    """vectorbt portfolio for signal matrices (calendar rows x variants) computed at each close."""
    if fill == "next_open":
        # Bar t's signal trades at t+1's open: shift signals one bar, trade at the open price.
        entry = np.vstack([np.zeros((1, entry.shape[1]), bool), entry[:-1]])
        exit_ = np.vstack([np.zeros((1, exit_.shape[1]), bool), exit_[:-1]])
        price = market.open[market.rows]
    else:
        price = market.close[market.rows]
    close = pd.Series(market.close[market.rows], index=market.calendar)
    return vbt.Portfolio.from_signals(
        close, pd.DataFrame(entry, index=market.calendar, columns=columns), exit_, price=price[:, None],
        size=np.inf, fees=commission_bps / 1e4, slippage=slippage_bps / 1e4, init_cash=capital,
        direction="longonly", freq="1D")


def check_reference_case():
    """Reproduces sma50_200_AAPL_close of shared/reference/backtests.json with the code above."""
    cases = json.loads((SHARED / "reference" / "backtests.json").read_text())
    case = next(c for c in cases if c["case"]["id"] == "sma50_200_AAPL_close")
    spec, expected = case["case"], case["expected"]
    market = Market("AAPL", spec["start"], spec["end"])
    ma = moving_averages(market.close, [50, 200], "talib")[market.rows]
    entry = (ma[:, 0] > ma[:, 1])[:, None]
    pf = simulate(market, entry, ~entry, spec["fill"], spec.get("commission_bps", 0),
                  spec.get("slippage_bps", 0), spec["initial_capital"])
    equity = pf.value().to_numpy()[:, 0]
    reference = np.array(expected["equity"])
    worst = float(np.max(np.abs(equity - reference) / np.abs(reference)))
    if len(equity) != len(reference) or worst > 1e-6:
        sys.exit(f"reference case {spec['id']}: vectorbt differs from backtests.json (max rel {worst:.2e})")
    return spec["id"], worst


def moving_averages(close, windows, indicator):
    """One column per window over the whole history: TA-Lib's SMA through vectorbt (the
    references' indicator library) or vectorbt's own MA (a cumulative-sum rolling mean)."""
    if indicator == "talib":
        return TALIB_SMA.run(close, timeperiod=windows).real.to_numpy()
    return vbt.MA.run(close, window=windows).ma.to_numpy()


def sweep(market, fast, slow, args, indicator="talib"):
    """The timed part: indicators, signals, simulation, final equity (fast-major columns)."""
    windows = sorted(set(fast) | set(slow))
    ma = moving_averages(market.close, windows, indicator)[market.rows]
    column = {w: i for i, w in enumerate(windows)}
    fast_ma = ma[:, [column[w] for w in fast]]
    slow_ma = ma[:, [column[w] for w in slow]]
    entry = (fast_ma[:, :, None] > slow_ma[:, None, :]).reshape(len(market.rows), -1)
    pf = simulate(market, entry, ~entry, args.fill, args.commission_bps, args.slippage_bps, args.initial_capital)
    return pf.final_value().to_numpy()


def timed_runs(market, fast, slow, args, engine, runs):
    """`runs` sweeps with vectorbt's `engine` ('numba' or 'rust'): [ms], last final equities."""
    vbt.settings["engine"] = engine
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        final = sweep(market, fast, slow, args)
        times.append((time.perf_counter() - started) * 1000)
    return times, final


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"


def compare(grid, final, expected, tolerance):
    """Indexes of the variants whose final equities differ by more than `tolerance`."""
    differences = np.array([final[i] - expected[key] for i, key in enumerate(grid)])
    return np.flatnonzero(~(np.abs(differences) <= tolerance)), differences


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backtestd", required=True, action="append",
                        help="JSON written by `engine-bench sweep --json` (repeat for other thread counts)")
    parser.add_argument("--runs", type=int, default=4, help="vectorbt runs per engine: 1 cold (JIT) + warm ones")
    parser.add_argument("--tolerance", type=float, default=0.01, help="max |difference| of final equity, dollars")
    parser.add_argument("--e2e", help="JSON of the end-to-end runs (backtest sweep over TCP), from vectorbt-sweep.sh")
    parser.add_argument("--skip-vectorbt", action="store_true", help="only the backtestd figures")
    args = parser.parse_args()
    reports = [json.loads(Path(path).read_text()) for path in args.backtestd]
    ours = reports[0]
    for key in ("ticker", "start", "end", "fill", "commission_bps", "slippage_bps", "initial_capital"):
        setattr(args, key, ours[key])
    fast = sorted({v["fast"] for v in ours["variants"]})
    slow = sorted({v["slow"] for v in ours["variants"]})
    expected = {(v["fast"], v["slow"]): v["final_equity"] for v in ours["variants"]}
    grid = [(f, s) for f in fast for s in slow]
    if len(expected) != len(grid):
        sys.exit("backtestd's variants are not a full fast x slow grid")

    e2e = json.loads(Path(args.e2e).read_text()) if args.e2e else None
    failed = False
    if e2e:
        failed = check_e2e_csv(e2e["csv"], grid, expected, args.tolerance)
    if args.skip_vectorbt:
        print(f"\nmachine: {machine()}")
        print_backtestd(reports, e2e, {})
        return 1 if failed else 0
    load_vectorbt()

    case, worst = check_reference_case()
    print(f"vectorbt {vbt.__version__} (numpy {np.__version__}, pandas {pd.__version__}, TA-Lib "
          f"{talib.__version__}, Python {platform.python_version()}) reproduces reference case {case}: "
          f"max relative error of the equity curve {worst:.1e}")

    market = Market(args.ticker, args.start, args.end)
    engines = ["numba"] + (["rust"] if is_rust_available() else [])
    timings = {}
    windows = sorted(set(fast) | set(slow))
    column = {w: i for i, w in enumerate(windows)}
    talib_ma = moving_averages(market.close, windows, "talib")[market.rows]

    def is_tie(i):
        """Whether variant i's two SMAs tie to 1e-12 (relative) on some bar of the window: there
        the comparison depends on the last bits of the rolling sums, which TA-Lib (running sums)
        and backtestd (compensated sums, exact to 1e-12: issue 14) round differently."""
        f, s = column[grid[i][0]], column[grid[i][1]]
        gap = np.abs(talib_ma[:, f] - talib_ma[:, s]) / np.abs(talib_ma[:, s])
        return bool(np.any(gap <= 1e-12))

    for engine in engines:
        times, final = timed_runs(market, fast, slow, args, engine, max(args.runs, 2))
        timings[engine] = times
        mismatched, differences = compare(grid, final, expected, args.tolerance)
        ties = [i for i in mismatched if is_tie(i)]
        if ties:
            print(f"engine {engine}: {len(ties)} variant(s) differ only where their SMAs tie to 1e-12 "
                  f"(rounding of the rolling sums, not a convention): {[grid[i] for i in ties]}")
        mismatched = [i for i in mismatched if i not in ties]
        worst_index = int(np.argmax(np.abs(differences)))
        print(f"engine {engine}: all {len(grid)} final equities compared to ${args.tolerance}: "
              f"{len(mismatched)} mismatch(es); largest |difference| ${abs(differences[worst_index]):.2e} "
              f"(sma {grid[worst_index][0]}/{grid[worst_index][1]})")
        for i in mismatched[:10]:
            print(f"  MISMATCH sma {grid[i][0]}/{grid[i][1]}: vectorbt {final[i]:.6f} backtestd {expected[grid[i]]:.6f}")
        failed = failed or len(mismatched) > 0
    rng = np.random.default_rng(7)
    sample = sorted(set(rng.choice(len(grid), 200, replace=False).tolist())
                    | {0, len(slow) - 1, len(grid) - len(slow), len(grid) - 1, int(np.argmax(final)), int(np.argmin(final))})
    print(f"a sample of {len(sample)} (random + grid corners + best + worst), all within tolerance: "
          f"{not any(abs(differences[i]) > args.tolerance for i in sample)}")
    for i in sample[:2] + sample[-2:]:
        print(f"  sma {grid[i][0]:>3}/{grid[i][1]:<3}  vectorbt {final[i]:>14.4f}  backtestd {expected[grid[i]]:>14.4f}")

    # vectorbt's own MA rounds differently from TA-Lib (cumulative sums): exact ties of two SMAs
    # can then compare the other way. Informational (the references use TA-Lib), but checked:
    # every signal that differs must sit on a bar where the two SMAs agree to 1e-12.
    vbt.settings["engine"] = "numba"
    own_ma = sweep(market, fast, slow, args, indicator="vbt")
    flips, _ = compare(grid, own_ma, expected, args.tolerance)
    vbt_ma = moving_averages(market.close, windows, "vbt")[market.rows]
    explained = 0
    for i in flips:
        f, s = column[grid[i][0]], column[grid[i][1]]
        differ = (talib_ma[:, f] > talib_ma[:, s]) != (vbt_ma[:, f] > vbt_ma[:, s])
        gap = np.abs(talib_ma[differ, f] - talib_ma[differ, s]) / np.abs(talib_ma[differ, s])
        explained += int(differ.any() and np.all(gap <= 1e-12))
    print(f"with vbt.MA instead of TA-Lib's SMA: {len(flips)} variant(s) differ {[grid[i] for i in flips[:5]]}, "
          f"{explained} of them only on bars where the two SMAs tie to 1e-12 (rounding, not convention)")

    print(f"\n{len(grid)} variants, {args.ticker} {args.start}..{args.end} ({len(market.rows)} days), "
          f"fill {args.fill}, commission {args.commission_bps} bps, slippage {args.slippage_bps} bps")
    print(f"machine: {machine()}")
    warm = {}
    for engine, times in timings.items():
        warm[engine] = statistics.median(times[1:])
        print(f"{'vectorbt (' + engine + ' engine)':<34} first {times[0]:>8.0f} ms   warm {warm[engine]:>8.0f} ms   "
              f"runs {[round(t) for t in times]}")
    print_backtestd(reports, e2e, warm)
    return 1 if failed else 0


def print_backtestd(reports, e2e, warm):
    """backtestd's lines: engine-bench per thread count, then end to end with the ratios."""
    for report in reports:
        label = f"backtestd ({report['parallelism']} thread{'s' if report['parallelism'] > 1 else ''})"
        ratios = ", ".join(f"vectorbt {e} warm / backtestd warm = {w / report['warm_median_ms']:.2f}x" for e, w in warm.items())
        print(f"{label:<34} first {report['first_ms']:>8.0f} ms   warm {report['warm_median_ms']:>8.0f} ms   {ratios}")
    if not e2e:
        return
    engine = reports[0]["warm_median_ms"]
    median = e2e["median_ms"]
    print(f"{'backtestd end to end (CLI, TCP)':<34} median {median:>7.0f} ms   runs {[round(t) for t in e2e['runs_ms']]}")
    print(f"  = {median / engine:.2f}x engine-bench's {reports[0]['parallelism']}-thread sweep in this run "
          f"({engine:.0f} ms; the ratio shows how much of the end-to-end time is the engine, whatever the load)")
    for engine_name, w in warm.items():
        print(f"  vectorbt {engine_name} warm / backtestd end to end = {w / median:.2f}x (target >= 10x)")
    peak = e2e.get("peak_rss_kb")
    print(f"  end to end {median:.0f} ms (target <= 400 ms); server peak RSS (VmHWM) "
          f"{peak / 1024 if peak else float('nan'):.0f} MiB (target <= 200 MB), RSS at the end "
          f"{e2e.get('rss_kb', 0) / 1024:.0f} MiB")


def check_e2e_csv(path, grid, expected, tolerance):
    """The CLI's CSV (index, axis values, metrics..., final_equity) against engine-bench's final
    equities: True when any variant is missing or differs by more than `tolerance`."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    axes = [name for name in rows[0] if name.startswith("positions[0].entry.")] if rows else []
    got = {}
    for row in rows:
        fast, slow = (int(row[a].split(":")[1]) for a in axes)
        got[(fast, slow)] = float(row["final_equity"]) if row["final_equity"] else float("nan")
    missing = [key for key in grid if key not in got]
    worst = max((abs(got[key] - expected[key]) for key in grid if key in got), default=float("nan"))
    bad = [key for key in grid if key in got and not abs(got[key] - expected[key]) <= tolerance]
    print(f"backtestd end to end (backtest sweep --csv): {len(rows)} rows, {len(missing)} missing, "
          f"{len(bad)} final equities off engine-bench's by more than ${tolerance} (largest ${worst:.2e})")
    return bool(missing or bad or len(rows) != len(grid))


if __name__ == "__main__":
    sys.exit(main())
