// The BacktestProtocol module. See Package.swift for where it sits in the architecture.
