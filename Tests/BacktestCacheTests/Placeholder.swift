// Tests for BacktestCache live in this folder.
