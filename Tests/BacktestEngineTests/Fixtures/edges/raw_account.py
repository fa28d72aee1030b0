"""Buy-and-hold as a brokerage account on raw prices (issue 14 item 1), an independent day loop.

Reads ../../../../../shared/market-data/daily/TICKER.csv (raw OHLC with dividend_amount and
split_coefficient), buys with all the capital at the first close of the window, then each day:
shares x split ratio, cash + shares x dividend, equity = shares x close + cash. Also the same
account without dividends, and split-adjusted buy-and-hold for comparison. Writes raw_account.json.
Run: python3 raw_account.py  (standard library only).
"""
import csv, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DAILY = os.path.join(HERE, *[".."] * 5, "shared", "market-data", "daily")
CASES = [("AAPL", "2014-01-02", "2014-12-31"), ("AAPL", "2020-06-01", "2020-12-31"), ("XOM", "2010-01-04", "2012-12-31")]

def rows(ticker):
    with open(os.path.join(DAILY, ticker + ".csv")) as f:
        return list(csv.DictReader(f))

def account(ticker, start, end, dividends=True, capital=100_000.0):
    data = [r for r in rows(ticker) if start <= r["date"] <= end]
    spy = {r["date"] for r in rows("SPY")}
    data = [r for r in data if r["date"] in spy]
    shares = capital / float(data[0]["close"])
    cash = 0.0
    equity = []
    for i, r in enumerate(data):
        if i > 0:
            shares *= float(r["split_coefficient"])
            if dividends:
                cash += shares * float(r["dividend_amount"])
        equity.append(shares * float(r["close"]) + cash)
    return [r["date"] for r in data], equity

out = []
for ticker, start, end in CASES:
    dates, with_div = account(ticker, start, end)
    _, without = account(ticker, start, end, dividends=False)
    out.append({"ticker": ticker, "start": start, "end": end, "dates": dates,
                "raw_with_dividends": with_div, "raw_without_dividends": without})
json.dump(out, open(os.path.join(HERE, "raw_account.json"), "w"), indent=0)
for case in out:
    print(case["ticker"], case["start"], case["raw_with_dividends"][-1], case["raw_without_dividends"][-1])
