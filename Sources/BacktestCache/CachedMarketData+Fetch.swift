import BacktestCore
import MarketData

extension CachedMarketData {
    struct Fetched {
        var bars: [String: DailyBars] = [:]
        var sets: [BarSet] = []
        /// Vendor requests this call made itself (not those of fetches it joined).
        var apiCalls = 0
    }

    /// Runs one upstream query per group, concurrently, each shared with identical in-flight
    /// fetches, and schedules the write-back of the months each one completes.
    func fetch(
        _ groups: [ClosedRange<TradingDate>: [String]], adjustment: PriceAdjustment,
        parts: (source: String, symbols: [String: String]), session: CacheSession,
        lookedUpAt epoch: UInt64?
    ) async throws -> Fetched {
        if groups.isEmpty { return Fetched() }
        let upstream = self.upstream
        let answers = try await withThrowingTaskGroup(of: (BarSet, Bool).self) { group in
            for (range, symbols) in groups {
                let query = BarQuery(symbols: symbols, range: range, adjustment: adjustment)
                let key = FillKey(generation: session.generation, source: upstream.name, query: query)
                group.addTask {
                    // The session's finish() waits for the write-back of the fills it led.
                    try await inflight.run(
                        key, lookedUpAt: epoch, settle: { set in await writeBack(set, for: query, parts: parts, session: session) },
                        onLead: { flight in session.writeBehind { await flight.value } },
                        { try await upstream.dailyBars(query) })
                }
            }
            var answers: [(BarSet, Bool)] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        var fetched = Fetched()
        for (set, isLeader) in answers {
            for (symbol, bars) in set.bars { fetched.bars[symbol] = bars }
            fetched.sets.append(set)
            if isLeader { fetched.apiCalls += set.apiCalls }
        }
        session.count(apiCalls: fetched.apiCalls)
        return fetched
    }

    /// Stores every month of `query` that the answer covers completely up to T-2: a symbol
    /// without bars there becomes empty months (a cached "no data" fact).
    func writeBack(_ set: BarSet, for query: BarQuery, parts: (source: String, symbols: [String: String]), session: CacheSession) async {
        guard session.isCaching else { return }
        let horizon = session.lastCacheableDate
        let range = query.range
        guard range.lowerBound <= horizon else { return }
        let months = CacheMonth.months(in: range.lowerBound...min(range.upperBound, horizon))
        var entries: [(key: String, value: [UInt8])] = []
        var local: [(String, LocalValue)] = []
        for symbol in query.symbols {
            guard let ticker = Ticker(symbol) else { continue }  // keys are made of checked tickers only
            let bars = set.bars[symbol] ?? DailyBars(symbol: symbol)
            for month in months where month.firstDay >= range.lowerBound {
                let completeThrough = min(month.lastDay, horizon)
                guard completeThrough <= range.upperBound else { continue }
                let chunk = MonthOfBars(month: month, completeThrough: completeThrough, bars: bars.slice(month.firstDay...completeThrough))
                let key = cache.keys.bars(
                    generation: session.generation, source: parts.source, adjustment: query.adjustment,
                    symbol: parts.symbols[symbol] ?? symbol, month: month)
                entries.append((key, chunk.encoded(key: key)))
                local.append((key, .month(chunk)))
            }
        }
        cache.remember(local, in: session)
        await cache.store(entries, in: session)
    }
}
