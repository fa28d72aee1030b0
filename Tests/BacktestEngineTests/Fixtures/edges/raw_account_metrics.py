"""empyrical's metrics of the raw-price account curves of raw_account.json (issue 14 item 1):
the engine's metrics under `raw` must match them. Benchmark: SPY buy and hold on the same days.
Run in a venv with empyrical-reloaded: python raw_account_metrics.py -> raw_account_metrics.json
"""
import csv, json, os
import numpy as np
import pandas as pd
import empyrical as ep

HERE = os.path.dirname(os.path.abspath(__file__))
DAILY = os.path.join(HERE, *[".."] * 5, "shared", "market-data", "daily")
spy = {r["date"]: float(r["close"]) for r in csv.DictReader(open(os.path.join(DAILY, "SPY.csv")))}
out = []
for case in json.load(open(os.path.join(HERE, "raw_account.json"))):
    dates = case["dates"]
    equity = pd.Series(case["raw_with_dividends"], index=pd.to_datetime(dates))
    bench = pd.Series([spy[d] for d in dates], index=equity.index)
    r = equity.pct_change().dropna()
    b = bench.pct_change().dropna()
    alpha, beta = ep.alpha_beta(r, b)
    out.append({"ticker": case["ticker"], "start": case["start"], "metrics": {
        "total_return": equity.iloc[-1] / equity.iloc[0] - 1,
        "cagr": ep.annual_return(r), "volatility": ep.annual_volatility(r), "sharpe": ep.sharpe_ratio(r),
        "sortino": ep.sortino_ratio(r), "max_drawdown": ep.max_drawdown(r), "calmar": ep.calmar_ratio(r),
        "alpha": alpha, "beta": beta}})
json.dump(out, open(os.path.join(HERE, "raw_account_metrics.json"), "w"), indent=1)
print(json.dumps(out, indent=1))
