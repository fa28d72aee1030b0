// Tests for BacktestEngine live in this folder.
