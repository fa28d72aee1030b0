// The backtest command-line client (filled by the protocol/server issue).
print("backtest: not built yet")
