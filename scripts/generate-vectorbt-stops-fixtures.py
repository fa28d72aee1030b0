#!/usr/bin/env python3
"""Reference cases for exits by price, shorts and sizing (issue 15), simulated with vectorbt 1.2
and measured with empyrical-reloaded 0.7, over ../shared/market-data/daily after split adjustment.

    benchmarks/.venv/bin/python scripts/generate-vectorbt-stops-fixtures.py \
        [--shared ../shared] [--out Tests/BacktestEngineTests/Fixtures/vectorbt-stops.json]

(benchmarks/vectorbt-sweep.sh creates benchmarks/.venv from benchmarks/requirements-vectorbt.txt.)

Each case is a strategy file of the `backtest` CLI (the keys of StrategyFile, with the issue 15
position keys) plus `expected`: dates, equity, orders (date, ticker, side, quantity, price,
commission, reason) and metrics, in the format of shared/reference/backtests.json.

How the engine's semantics map onto `Portfolio.from_signals` (README "Engine semantics"):
- signals of bar t: `fill: close` fills at bar t's close (`price=close`); `next_open` shifts the
  signals one bar and fills at the open (`price=open`);
- exits by price: `open/high/low` given, `sl_stop` (with `sl_trail` for a trailing stop),
  `tp_stop`, checked from the bar after the entry; `stop_entry_price="price"`: the level's base
  is the entry's reference price (vectorbt's default, the entry bar's close, differs for
  next_open fills); `stop_exit_price="stopmarket"`: the stop fills at its level (the open on a
  gap) with slippage, like every other fill (vectorbt's default, "stoplimit", skips slippage);
- a stop in ATR multiples k x ATR(n) is vectorbt's per-bar `sl_stop` = k x ATR(n) on the signal
  bar / the entry's reference price;
- shorts: `direction="shortonly"` (or two columns of one group for a long/short book),
  `lock_cash=True`: short proceeds do not fund purchases and a short locks free cash equal to its
  value (vectorbt's free cash = cash - 2 x debt);
- sizing: weight 1 of a single position = `size_type="percent"`, size 1 (all free cash, reduced
  for costs); cash = `size_type="value"`; shares = `size_type="amount"`; risk r with a stop
  fraction d = percent r / d of the free cash (a single position without costs, where free cash
  is the equity when flat);
- books of several positions share cash (`group_by=True, cash_sharing=True, call_seq="auto"`).
Orders are listed by date, then position order (vectorbt executes sells first within a bar; the
tests compare in this order). An order's reason comes from vectorbt's `stop_type` of the order's
signal: a closing order at a bar where the position's stop or target level was hit.
"""
import argparse
import json
import math
import os

import empyrical
import numpy as np
import pandas as pd
import talib
import vectorbt as vbt

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load(shared, ticker):
    frame = pd.read_csv(os.path.join(shared, "market-data", "daily", f"{ticker}.csv"), parse_dates=["date"])
    frame = frame.set_index("date")
    if "split_coefficient" in frame:
        coefficient = frame["split_coefficient"].replace(0, 1.0).to_numpy()
        # Prices before an ex-date are divided by the product of the later splits' coefficients.
        factor = np.ones(len(frame))
        running = 1.0
        for i in range(len(frame) - 1, -1, -1):
            factor[i] = running
            running *= coefficient[i]
        for column in ["open", "high", "low", "close"]:
            frame[column] = frame[column] / factor
    return frame[["open", "high", "low", "close"]].astype(float)


def indicator(frame, key):
    name, _, params = key.partition(":")
    n = int(params) if params else 0
    close = frame["close"].to_numpy()
    if name == "sma":
        return talib.SMA(close, n)
    if name == "ema":
        return talib.EMA(close, n)
    if name == "rsi":
        return talib.RSI(close, n)
    if name == "atr":
        return talib.ATR(frame["high"].to_numpy(), frame["low"].to_numpy(), close, n)
    raise ValueError(key)


def operand(frames, ticker, value, calendar):
    if isinstance(value, (int, float)):
        return np.full(len(calendar), float(value))
    frame = frames[ticker]
    series = frame["close"].to_numpy() if value == "close" else indicator(frame, value)
    return pd.Series(series, index=frame.index).reindex(calendar).to_numpy()


def signal(frames, ticker, condition, calendar):
    lhs = operand(frames, ticker, condition["lhs"], calendar)
    rhs = operand(frames, ticker, condition["rhs"], calendar)
    with np.errstate(invalid="ignore"):
        result = lhs > rhs if condition["op"] == ">" else lhs < rhs
        # TA-Lib's running sums and the engine's exact windows differ by ~1e-13: a comparison
        # that close would make the case test rounding, not the simulation.
        ties = np.abs(lhs - rhs) <= 1e-9 * np.abs(rhs)
    if ties.any():
        raise ValueError(f"{ticker}: {condition} is a near tie on {list(calendar[ties].strftime('%Y-%m-%d'))}")
    return result & ~np.isnan(lhs) & ~np.isnan(rhs)


def shift(array, fill):
    out = np.empty_like(array)
    out[0] = fill
    out[1:] = array[:-1]
    return out


def simulate(case, frames):
    spy = frames["SPY"]
    calendar = spy.loc[case["start"]:case["end"]].index
    positions = case["positions"]
    next_open = case["fill"] == "next_open"
    columns = [p["ticker"] for p in positions]
    n, m = len(calendar), len(positions)

    def panel(field):
        return np.column_stack([frames[t][field].reindex(calendar).to_numpy() for t in columns])

    open_, high, low, close = panel("open"), panel("high"), panel("low"), panel("close")
    entries = np.zeros((n, m), bool)
    exits = np.zeros((n, m), bool)
    size = np.full((n, m), np.nan)
    size_type = np.zeros((n, m), int)
    sl_stop = np.full((n, m), np.nan)
    tp_stop = np.full((n, m), np.nan)
    sl_trail = np.zeros((n, m), bool)
    direction = np.zeros((n, m), int)
    reference = open_ if next_open else close
    for j, p in enumerate(positions):
        entry = signal(frames, p["ticker"], p["entry"], calendar)
        exit_ = signal(frames, p["ticker"], p["exit"], calendar) if "exit" in p else ~entry
        # Conflicts: both true is neither (the engine's and vectorbt's default rule).
        entry, exit_ = entry & ~exit_, exit_ & ~entry
        atr = None
        if "stop_atr_period" in p:
            atr = operand(frames, p["ticker"], f"atr:{p['stop_atr_period']}", calendar)
        if next_open:
            entry, exit_ = shift(entry, False), shift(exit_, False)
            if atr is not None:
                atr = shift(atr, np.nan)
        entries[:, j], exits[:, j] = entry, exit_
        scale = (atr / reference[:, j]) if atr is not None else np.ones(n)
        stop = p.get("stop_loss", p.get("trailing_stop"))
        if stop is not None:
            sl_stop[:, j] = stop * scale
            sl_trail[:, j] = "trailing_stop" in p
        if "take_profit" in p:
            tp_stop[:, j] = p["take_profit"] * scale
        direction[:, j] = 1 if p.get("direction") == "short" else 0  # ShortOnly = 1, LongOnly = 0
        sizing = p.get("sizing", "weight")
        if sizing == "weight":
            assert m == 1 and p.get("weight", 1) == 1, "weight sizing: a single position of weight 1"
            size[:, j], size_type[:, j] = 1.0, 2  # Percent
        elif sizing == "cash":
            size[:, j], size_type[:, j] = p["size"], 1  # Value
        elif sizing == "shares":
            size[:, j], size_type[:, j] = p["size"], 0  # Amount
        elif sizing == "risk":
            assert m == 1 and not case.get("commission_bps") and not case.get("slippage_bps")
            size[:, j], size_type[:, j] = p["size"] / (sl_stop[:, j]), 2
    index = pd.Index(calendar)
    frame = lambda a: pd.DataFrame(a, index=index, columns=[f"{t}#{j}" for j, t in enumerate(columns)])
    pf = vbt.Portfolio.from_signals(
        frame(close), frame(entries), frame(exits),
        open=frame(open_), high=frame(high), low=frame(low),
        price=frame(reference), size=frame(size), size_type=frame(size_type), direction=frame(direction),
        fees=case.get("commission_bps", 0) / 1e4, slippage=case.get("slippage_bps", 0) / 1e4,
        sl_stop=frame(sl_stop), sl_trail=frame(sl_trail), tp_stop=frame(tp_stop),
        stop_entry_price="price", stop_exit_price="stopmarket",
        init_cash=case["initial_capital"], lock_cash=True, allow_partial=True,
        group_by=True, cash_sharing=True, call_seq="auto", freq="1D",
    )
    equity = pf.value().to_numpy()
    records = pf.orders.values
    orders = []
    for r in sorted(records, key=lambda r: (r["idx"], r["col"])):
        i, j = int(r["idx"]), int(r["col"])
        orders.append({
            "date": calendar[i].strftime("%Y-%m-%d"), "ticker": columns[j],
            "side": "buy" if r["side"] == 0 else "sell",
            "quantity": float(r["size"]), "price": float(r["price"]), "commission": float(r["fees"]), "_i": i,
        })
    counts = reasons(orders, positions, case, reference, open_, high, low, sl_stop, tp_stop, sl_trail)
    for order in orders:
        del order["_i"]
    returns = pd.Series(equity, index=index).pct_change().iloc[1:]
    bench = spy["close"].reindex(calendar).to_numpy()
    bench_returns = pd.Series(bench, index=index).pct_change().iloc[1:]
    alpha, beta = empyrical.alpha_beta(returns, bench_returns)
    metrics = {
        "total_return": float(equity[-1] / equity[0] - 1),
        "cagr": float(empyrical.annual_return(returns)),
        "volatility": float(empyrical.annual_volatility(returns)),
        "sharpe": float(empyrical.sharpe_ratio(returns)),
        "sortino": float(empyrical.sortino_ratio(returns)),
        "max_drawdown": float(empyrical.max_drawdown(returns)),
        "calmar": float(empyrical.calmar_ratio(returns)),
        "alpha": float(alpha), "beta": float(beta),
    }
    return {
        "dates": [d.strftime("%Y-%m-%d") for d in calendar],
        "equity": [float(x) for x in equity],
        "final_equity": float(equity[-1]),
        "orders": orders,
        "metrics": {k: v for k, v in metrics.items() if math.isfinite(v)},
        "counts": counts,
    }


def reasons(orders, positions, case, reference, open_, high, low, sl_stop, tp_stop, sl_trail):
    """Labels each order: an opening one `entry`; a closing one by vectorbt's own rule at its
    bar (portfolio.nb.get_stop_price_nb, the stop loss before the take profit, the trailing
    level from the highs/lows of the bars after the entry bar): `stop_loss`/`trailing_stop`/
    `take_profit` when that level was hit, else `signal`. A stop's fill price is checked
    against the level (or the open on a gap) with slippage, so the labels agree with what
    vectorbt filled."""
    slippage = case.get("slippage_bps", 0) / 1e4
    columns = [p["ticker"] for p in positions]
    last_entry = {}
    # What the case shows: stop exits at the open through a gap, and exit bars where the stop
    # and the target were both within the bar's range (the stop won).
    counts = {"gap_fills": 0, "stop_and_target_bars": 0}
    for order in orders:
        j = columns.index(order["ticker"])
        short = positions[j].get("direction") == "short"
        i = order["_i"]
        if (order["side"] == "sell") == short:
            order["reason"] = "entry"
            last_entry[j] = i
            continue
        e = last_entry.pop(j)
        base = reference[e, j]
        hit, reason = np.nan, "signal"
        stop, target = sl_stop[e, j], tp_stop[e, j]
        if not np.isnan(stop):
            level_base = base
            if sl_trail[e, j]:
                for b in range(e + 1, i):
                    level_base = max(level_base, high[b, j]) if not short else min(level_base, low[b, j])
            level = level_base * (1 + stop if short else 1 - stop)
            o, l, h = open_[i, j], low[i, j], high[i, j]
            if (not short and o <= level) or (short and o >= level):
                hit = o
                counts["gap_fills"] += 1
            elif l <= level <= h:
                hit = level
            if not np.isnan(hit):
                reason = "trailing_stop" if sl_trail[e, j] else "stop_loss"
                if not np.isnan(target):
                    target_level = base * (1 - target if short else 1 + target)
                    if l <= target_level <= h:
                        counts["stop_and_target_bars"] += 1
        if np.isnan(hit) and not np.isnan(target):
            level = base * (1 - target if short else 1 + target)
            o, l, h = open_[i, j], low[i, j], high[i, j]
            if (not short and o >= level) or (short and o <= level):
                hit = o
            elif l <= level <= h:
                hit = level
            if not np.isnan(hit):
                reason = "take_profit"
        if reason != "signal":
            expected = hit * (1 + slippage) if short else hit * (1 - slippage)
            assert abs(order["price"] - expected) <= 1e-9 * expected, (case["id"], order, hit)
        order["reason"] = reason
    return counts


def cases():
    sma = lambda fast, slow, op=">": {"lhs": f"sma:{fast}", "op": op, "rhs": f"sma:{slow}"}
    above = lambda key: {"lhs": "close", "op": ">", "rhs": key}
    below = lambda key: {"lhs": "close", "op": "<", "rhs": key}
    base = {"start": "2014-01-02", "end": "2016-12-30", "initial_capital": 100000.0}
    out = []

    def add(id_, fill, positions, **costs):
        out.append({"id": id_, **base, "fill": fill, **costs, "positions": positions})

    for fill in ["close", "next_open"]:
        add(f"stop_loss_AAPL_{fill}", fill, [{"ticker": "AAPL", "weight": 1.0, "entry": sma(10, 30), "stop_loss": 0.04}])
        add(f"take_profit_MSFT_{fill}", fill, [{"ticker": "MSFT", "weight": 1.0, "entry": above("sma:20"), "take_profit": 0.05}],
            commission_bps=5, slippage_bps=2)
        add(f"trailing_stop_JPM_{fill}", fill, [{"ticker": "JPM", "weight": 1.0, "entry": sma(8, 21), "trailing_stop": 0.05}],
            commission_bps=3, slippage_bps=3)
        add(f"short_only_XOM_{fill}", fill, [{"ticker": "XOM", "weight": 1.0, "direction": "short", "entry": sma(10, 30, "<"),
                                              "stop_loss": 0.05, "take_profit": 0.08}], commission_bps=10, slippage_bps=5)
    add("gap_through_stop_NVDA_close", "close", [{"ticker": "NVDA", "weight": 1.0, "entry": above("sma:10"), "stop_loss": 0.015}],
        slippage_bps=5)
    add("stop_and_target_one_bar_AMD_close", "close",
        [{"ticker": "AMD", "weight": 1.0, "entry": above("ema:10"), "stop_loss": 0.03, "take_profit": 0.03}])
    add("short_trailing_INTC_next_open", "next_open",
        [{"ticker": "INTC", "weight": 1.0, "direction": "short", "entry": below("sma:20"), "trailing_stop": 0.04}],
        commission_bps=8, slippage_bps=4)
    add("long_short_book_close", "close", [
        {"ticker": "AAPL", "weight": 1.0, "sizing": "cash", "size": 40000.0, "entry": above("sma:50"), "stop_loss": 0.06},
        {"ticker": "XOM", "weight": 1.0, "sizing": "cash", "size": 40000.0, "direction": "short", "entry": below("sma:50"),
         "take_profit": 0.07, "stop_loss": 0.05},
    ], commission_bps=5, slippage_bps=5)
    add("long_short_book_next_open", "next_open", [
        {"ticker": "MSFT", "weight": 1.0, "sizing": "shares", "size": 300.0, "entry": above("ema:20"), "trailing_stop": 0.05},
        {"ticker": "GE", "weight": 1.0, "sizing": "cash", "size": 30000.0, "direction": "short", "entry": below("ema:20"),
         "stop_loss": 0.04},
    ], commission_bps=2, slippage_bps=3)
    add("sizing_cash_KO_next_open", "next_open",
        [{"ticker": "KO", "weight": 1.0, "sizing": "cash", "size": 25000.0, "entry": sma(10, 40), "take_profit": 0.04}],
        commission_bps=5, slippage_bps=5)
    add("sizing_shares_HD_close", "close",
        [{"ticker": "HD", "weight": 1.0, "sizing": "shares", "size": 250.0, "entry": sma(10, 40), "stop_loss": 0.03}],
        commission_bps=5, slippage_bps=5)
    add("sizing_risk_CSCO_close", "close",
        [{"ticker": "CSCO", "weight": 1.0, "sizing": "risk", "size": 0.01, "entry": sma(5, 20), "stop_loss": 0.025}])
    add("sizing_risk_atr_CVX_next_open", "next_open",
        [{"ticker": "CVX", "weight": 1.0, "sizing": "risk", "size": 0.01, "entry": above("sma:20"), "stop_loss": 2.0,
          "stop_atr_period": 14}])
    add("atr_stops_AMZN_close", "close",
        [{"ticker": "AMZN", "weight": 1.0, "entry": above("sma:20"), "stop_loss": 2.0, "take_profit": 3.0, "stop_atr_period": 14}],
        commission_bps=4, slippage_bps=2)
    add("trailing_atr_BA_next_open", "next_open",
        [{"ticker": "BA", "weight": 1.0, "entry": sma(10, 30), "trailing_stop": 3.0, "stop_atr_period": 14}],
        commission_bps=4, slippage_bps=2)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    parser.add_argument("--out", default=os.path.join(ROOT, "Tests", "BacktestEngineTests", "Fixtures", "vectorbt-stops.json"))
    args = parser.parse_args()
    result = []
    for case in cases():
        tickers = {"SPY"} | {p["ticker"] for p in case["positions"]}
        frames = {t: load(args.shared, t) for t in tickers}
        expected = simulate(case, frames)
        reasons_seen = sorted({o["reason"] for o in expected["orders"]})
        print(f"{case['id']}: {len(expected['orders'])} orders, reasons {reasons_seen}, {expected['counts']}, "
              f"final {expected['final_equity']:.2f}")
        result.append({"case": case, "expected": expected})
    with open(args.out, "w") as f:
        json.dump({"generator": "scripts/generate-vectorbt-stops-fixtures.py", "vectorbt": vbt.__version__,
                   "empyrical": empyrical.__version__, "cases": result}, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(result)} cases to {args.out}")


if __name__ == "__main__":
    main()
