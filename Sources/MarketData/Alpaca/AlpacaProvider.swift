import BacktestCore
import Logging

/// Daily bars from Alpaca's market-data API v2, `GET /v2/stocks/bars`.
///
/// One query becomes multi-symbol requests packed so that each fits one page where that costs no
/// more API calls than one request per `maxSymbolsPerRequest` symbols would (`AlpacaRequestPlan`),
/// sent concurrently, each followed through every `next_page_token`; adjustment is Alpaca's own (`adjustment=raw|split|all`,
/// computed server-side as of today). Symbols Alpaca has no bars for in the range are absent
/// from its answer and reported in `BarSet.missing`. `apiCalls` counts every HTTP request made,
/// retries included, since each one counts against the rate limit.
package final class AlpacaProvider: MarketDataProvider {
    package let name = "alpaca"
    package let configuration: AlpacaConfiguration
    package var dataEpoch: TradingDate { configuration.dataEpoch }
    /// Base URL and feed: a proxy or another feed may answer other bars (adjustment is part of
    /// every cache key already).
    package var cacheIdentity: String { "alpaca|\(configuration.baseURL)|\(configuration.feed)" }

    private let transport: any HTTPTransport
    private let retryEnvironment: RetryEnvironment
    /// Shared by every request of this provider (one per process), retries included.
    private let pacer: RequestPacer
    private let calendar: MarketCalendar
    /// What answers showed about each symbol's bars: the request plan's bounds.
    let spans: KnownSpans
    private let logger: Logger

    /// - Parameters:
    ///   - transport: the HTTP client; by default a `CurlHTTPClient` with `configuration.http`.
    ///   - retryEnvironment: clock, sleep and randomness for retries (tests inject them).
    package init(
        configuration: AlpacaConfiguration, transport: (any HTTPTransport)? = nil,
        retryEnvironment: RetryEnvironment = .live, calendar: MarketCalendar = .nyse,
        logger: Logger = Logger(label: "backtestd.marketdata.alpaca")
    ) {
        self.configuration = configuration
        self.transport = transport ?? CurlHTTPClient(configuration: configuration.http)
        self.retryEnvironment = retryEnvironment
        self.pacer = RequestPacer(limit: configuration.requestsPerMinute, environment: retryEnvironment)
        self.calendar = calendar
        self.spans = KnownSpans(calendar: calendar)
        self.logger = logger
    }

    package func dailyBars(_ query: BarQuery) async throws -> BarSet {
        for symbol in query.symbols { try Ticker.validate(symbol, field: "symbols") }
        guard let keyID = configuration.keyID, let secretKey = configuration.secretKey else {
            throw BacktestError(.unauthenticated,
                "the Alpaca provider needs APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment (or choose the 'demo' or 'files' provider)")
        }
        guard !query.symbols.isEmpty, let window = requestWindow(query.range) else {
            return BarSet(missing: query.symbols)
        }
        let headers = [("APCA-API-KEY-ID", keyID), ("APCA-API-SECRET-KEY", secretKey), ("Accept", "application/json")]
        let plan = AlpacaRequestPlan(
            symbols: query.symbols, bars: { [spans] in spans.bars($0, in: query.range) },
            pageLimit: configuration.pageLimit, maxSymbolsPerRequest: configuration.maxSymbolsPerRequest)

        let budget = FetchBudget(policy: configuration.retry, deadline: FetchDeadline.current)
        var fetched: [String: [AlpacaBarsPage.Bar]] = [:]
        var requests = 0
        try await withThrowingTaskGroup(of: ([String: [AlpacaBarsPage.Bar]], Int).self) { group in
            for symbols in plan.requests {
                let request = AlpacaBarsRequest(
                    baseURL: configuration.baseURL, symbols: symbols, start: window.start, end: window.end,
                    adjustment: query.adjustment, feed: configuration.feed, limit: configuration.pageLimit)
                group.addTask { try await self.fetchAllPages(request, headers: headers, budget: budget) }
            }
            for try await (bars, count) in group {
                fetched.merge(bars) { $0 + $1 }
                requests += count
            }
        }

        var result = BarSet(apiCalls: requests)
        for symbol in query.symbols {
            let history = fetched[symbol].map { Self.dailyBars(symbol, $0) }
            try history?.validate(origin: vendorName)
            result.add(symbol, history: history, range: query.range, calendar: calendar)
        }
        result.normalize()
        // Learnt only up to yesterday (UTC): today's bar may not exist yet, or be held back (SIP).
        let yesterday = TradingDate(daysSinceEpoch: Int32((retryEnvironment.now() / 86_400).rounded(.down)) - 1)
        if query.range.lowerBound <= yesterday {
            spans.learn(from: result, symbols: query.symbols, range: query.range.lowerBound...min(query.range.upperBound, yesterday))
        }
        logger.debug("alpaca: \(LogText("\(query)", limit: LogText.messageLimit)) in \(requests) request(s) (\(plan.requests.count) concurrent, \(plan.expectedCalls) expected); missing \(result.missing)")
        return result
    }

    /// Inclusive RFC 3339 bounds covering the whole first and last day in New York time (bars
    /// are stamped at New York midnight). For SIP the end stays `recentDataDelay` behind now,
    /// which plans without real-time SIP require. Nil when nothing can be asked yet.
    func requestWindow(_ range: ClosedRange<TradingDate>) -> (start: String, end: String)? {
        let start = RFC3339.newYork(range.lowerBound, hour: 0, minute: 0, second: 0)
        let startInstant = NewYorkTime.unixSeconds(date: range.lowerBound, hour: 0, minute: 0)
        let endInstant = NewYorkTime.unixSeconds(date: range.upperBound, hour: 23, minute: 59, second: 59)
        if configuration.feed == "sip" {
            let latest = Int64(retryEnvironment.now() - configuration.recentDataDelay.seconds)
            if latest < startInstant { return nil }
            if latest < endInstant { return (start, RFC3339.utc(latest)) }
        }
        return (start, RFC3339.newYork(range.upperBound, hour: 23, minute: 59, second: 59))
    }

    /// Follows `next_page_token` to the end, appending each symbol's bars (a symbol can span
    /// pages). Returns the bars by symbol and the number of HTTP requests made.
    private func fetchAllPages(
        _ request: AlpacaBarsRequest, headers: [(name: String, value: String)], budget: FetchBudget
    ) async throws -> ([String: [AlpacaBarsPage.Bar]], Int) {
        var bars: [String: [AlpacaBarsPage.Bar]] = [:]
        var requests = 0
        var token: String?
        var seenTokens = Set<String>()
        repeat {
            let (page, attempts) = try await fetchPage(request.url(pageToken: token), headers: headers, budget: budget)
            requests += attempts
            for (symbol, list) in page.bars where request.symbols.contains(symbol) {
                bars[symbol, default: []].append(contentsOf: list)
            }
            token = page.nextPageToken
            if let token, !seenTokens.insert(token).inserted {
                throw BacktestError(.unavailable, "Alpaca returned the same page token twice; stopped paging")
            }
        } while token != nil
        return (bars, requests)
    }

    /// One page, retried per `RetryPolicy` within the fetch's `budget`. Returns the page and the
    /// number of attempts.
    private func fetchPage(
        _ url: String, headers: [(name: String, value: String)], budget: FetchBudget
    ) async throws -> (AlpacaBarsPage, Int) {
        let policy = configuration.retry
        var attempt = 0
        var lastFailure: String?
        while true {
            try Task.checkCancellation()
            let failure: AlpacaFailure
            let paced = try await pacer.waitForSlot()
            if paced > 1 { logger.notice("alpaca: waited \(Self.format(paced)) s to stay within \(pacer.limit) requests per minute") }
            let remaining = budget.remaining
            guard remaining > .milliseconds(50) else { throw budget.exhausted(vendor: vendorName, attempts: attempt, lastFailure: lastFailure) }
            attempt += 1
            do {
                let response = try await transport.get(url, headers: headers, timeout: min(configuration.http.requestTimeout, remaining))
                if response.status == 200 {
                    do {
                        return (try AlpacaBarsPage.parse(response.body), attempt)
                    } catch {
                        failure = AlpacaFailure(error: error, isRetryable: true)
                    }
                } else {
                    failure = AlpacaFailure.from(response)
                }
            } catch let error as HTTPTransportError {
                failure = AlpacaFailure.from(error)
            }
            lastFailure = failure.error.message
            guard failure.isRetryable else { throw failure.error }
            guard attempt < policy.maxAttempts else {
                throw BacktestError(.unavailable,
                    "market data unavailable from \(vendorName) after \(attempt) attempts in \(Self.format(budget.elapsed.seconds)) s: \(failure.error.message)")
            }
            let delay = policy.delay(
                beforeRetry: attempt, resetAt: failure.rateLimitResetAt, now: retryEnvironment.now(),
                unitRandom: retryEnvironment.unitRandom()
            ).seconds
            guard delay < (budget.remaining - .milliseconds(50)).seconds else {
                throw BacktestError(.unavailable,
                    "market data unavailable from \(vendorName): \(failure.error.message); the next retry would wait \(Self.format(delay)) s, beyond the \(budget.describe) (\(attempt) attempt\(attempt == 1 ? "" : "s") made)")
            }
            logger.warning("alpaca: \(LogText(failure.error.message, limit: LogText.messageLimit)); retry \(attempt)/\(policy.maxAttempts - 1) in \(Self.format(delay)) s")
            let sleepStarted = ContinuousClock.now
            try await retryEnvironment.sleep(.seconds(delay))
            budget.slept(.seconds(delay), measured: ContinuousClock.now - sleepStarted)
        }
    }

    /// "Alpaca (https://data.alpaca.markets, feed sip)" for error messages.
    var vendorName: String { "Alpaca (\(configuration.baseURL), feed \(configuration.feed))" }

    /// Bars in date order with one bar per date (the last one wins, should pages overlap).
    static func dailyBars(_ symbol: String, _ list: [AlpacaBarsPage.Bar]) -> DailyBars {
        let ordered = list.enumerated().sorted { ($0.element.date, $0.offset) < ($1.element.date, $1.offset) }
        var bars = DailyBars(symbol: symbol)
        bars.reserveCapacity(ordered.count)
        for (index, (_, bar)) in ordered.enumerated() {
            if index + 1 < ordered.count, ordered[index + 1].element.date == bar.date { continue }
            bars.append(date: bar.date, open: bar.open, high: bar.high, low: bar.low, close: bar.close, volume: bar.volume)
        }
        return bars
    }

    static func format(_ seconds: Double) -> String {
        String(Double(Int((seconds * 10).rounded())) / 10)
    }
}
