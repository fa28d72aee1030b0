// Tests for MarketData live in this folder.
