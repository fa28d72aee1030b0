import BacktestCore

extension MarketDataCache {
    /// Runs `body` inside one session of this cache and finishes the session afterwards, whether
    /// `body` returns or throws (a cancelled task included), so a session can never be left open
    /// to hold up a purge's sweep.
    ///
    /// Returns what `body` returned with the session's final counts (`CacheSession.finish()`);
    /// rethrows what `body` threw, after finishing the session. `countsAsRequest` as for
    /// `openSession(countsAsRequest:)`: false for looks at the cache that are not requests.
    package func withSession<Value, Failure: Error>(
        countsAsRequest: Bool = true,
        _ body: (CacheSession) async throws(Failure) -> Value
    ) async throws(Failure) -> (value: Value, statistics: CacheStatistics) {
        let session = await openSession(countsAsRequest: countsAsRequest)
        let value: Value
        do {
            value = try await body(session)
        } catch {
            await session.finish()
            throw error
        }
        return (value, await session.finish())
    }
}
