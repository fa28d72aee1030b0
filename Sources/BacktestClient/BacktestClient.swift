// The BacktestClient module. See Package.swift for where it sits in the architecture.
