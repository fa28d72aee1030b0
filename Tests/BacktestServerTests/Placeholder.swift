// Tests for BacktestServer live in this folder.
