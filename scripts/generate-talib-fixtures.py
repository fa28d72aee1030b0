#!/usr/bin/env python3
"""Writes TA-Lib reference values for the indicators (and parameter sets) that
../shared/reference/indicators does not cover, into Tests/BacktestEngineTests/Fixtures/.

    python3 -m venv /tmp/talib && /tmp/talib/bin/pip install TA-Lib numpy
    /tmp/talib/bin/python scripts/generate-talib-fixtures.py

Input: ../shared/market-data/daily/<TICKER>.csv, split-adjusted with the conventions of
../shared/market-data/README.md (the same arithmetic as BacktestCore's DailyBars.adjusted).
Indicators are computed over the whole file; to keep the fixture small only the first 400 values
(every warm-up boundary) and every 7th value after are written, as repr floats (exact doubles).
Keys use the engine's canonical IndicatorSpec form, e.g. "stoch:5,3,3:d".
"""
import csv
import json
import math
import os
import sys

import numpy as np
import talib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("BACKTESTD_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
OUT = os.path.join(ROOT, "Tests", "BacktestEngineTests", "Fixtures")


def split_adjusted(ticker):
    rows = list(csv.DictReader(open(os.path.join(SHARED, "market-data", "daily", ticker + ".csv"))))
    n = len(rows)
    cols = {k: np.zeros(n) for k in ("open", "high", "low", "close", "volume")}
    dates = [r["date"] for r in rows]
    split_factor = 1.0
    for i in range(n - 1, -1, -1):
        r = rows[i]
        factor = 1.0 / split_factor
        for k in ("open", "high", "low", "close"):
            cols[k][i] = float(r[k]) * factor
        cols["volume"][i] = float(r["volume"]) * split_factor
        ratio = float(r.get("split_coefficient") or 1) or 1.0
        if ratio != 1 and ratio > 0:
            split_factor *= ratio
    return dates, cols


def series_for(c):
    o, h, l, cl, v = c["open"], c["high"], c["low"], c["close"], c["volume"]
    out = {}
    out["wma:30"] = talib.WMA(cl, 30)
    out["wma:10"] = talib.WMA(cl, 10)
    out["sma:7"] = talib.SMA(cl, 7)
    out["ema:50"] = talib.EMA(cl, 50)
    out["rsi:7"] = talib.RSI(cl, 7)
    m, s, hist = talib.MACD(cl, 5, 35, 5)
    out["macd:5,35,5:macd"], out["macd:5,35,5:signal"], out["macd:5,35,5:hist"] = m, s, hist
    up, mid, lo = talib.BBANDS(cl, 20, 2, 2, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["bbands:20,2:percent_b"] = (cl - lo) / (up - lo)
    up, mid, lo = talib.BBANDS(cl, 10, 1.5, 1.5, 0)
    out["bbands:10,1.5:upper"], out["bbands:10,1.5:lower"] = up, lo
    out["atr:7"] = talib.ATR(h, l, cl, 7)
    out["stddev:10"] = talib.STDDEV(cl, 10, 1)
    out["roc:5"] = talib.ROC(cl, 5)
    k, d = talib.STOCH(h, l, cl, 5, 3, 0, 3, 0)
    out["stoch:5,3,3:k"], out["stoch:5,3,3:d"] = k, d
    k, d = talib.STOCH(h, l, cl, 14, 3, 0, 5, 0)
    out["stoch:14,3,5:k"], out["stoch:14,3,5:d"] = k, d
    out["adx:14"] = talib.ADX(h, l, cl, 14)
    out["adx:7"] = talib.ADX(h, l, cl, 7)
    out["obv"] = talib.OBV(cl, v)
    out["highest:20"] = talib.MAX(cl, 20)
    out["lowest:20"] = talib.MIN(cl, 20)
    return out


def main():
    ticker = sys.argv[1] if len(sys.argv) > 1 else "MSFT"
    dates, cols = split_adjusted(ticker)
    n = len(dates)
    indices = list(range(min(400, n))) + list(range(400, n, 7))
    if indices[-1] != n - 1:
        indices.append(n - 1)
    fixture = {
        "ticker": ticker,
        "adjustment": "split",
        "talib": talib.__version__,
        "count": n,
        "indices": indices,
        "series": {
            key: [None if math.isnan(values[i]) else float(values[i]) for i in indices]
            for key, values in series_for(cols).items()
        },
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "talib-%s.json" % ticker)
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
