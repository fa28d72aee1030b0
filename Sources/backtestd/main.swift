// The backtestd server executable (filled by the protocol/server issue).
print("backtestd: not built yet")
