// Tests for BacktestProtocol live in this folder.
