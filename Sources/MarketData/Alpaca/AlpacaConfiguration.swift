import BacktestCore
import Foundation

/// Settings of the Alpaca provider. backtestd reads them (in `BacktestdConfiguration`) from the
/// variables Alpaca's own SDKs use, so a machine set up for them works unchanged:
/// `APCA_API_KEY_ID`, `APCA_API_SECRET_KEY`, `APCA_API_DATA_URL` (base URL), `APCA_API_FEED`,
/// and ours, `BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST` and `BACKTESTD_ALPACA_REQUESTS_PER_MINUTE`.
///
/// Feed: `sip` (the consolidated tape, every US exchange) by default, because backtests want
/// the prices and volumes everyone else reports; IEX alone carries about 2 % of volume and its
/// own highs and lows. Free plans may query SIP except its most recent 15 minutes, so for SIP the
/// request's `end` is clamped to now minus `recentDataDelay`; `APCA_API_FEED=iex` switches feeds.
package struct AlpacaConfiguration: Sendable {
    package var keyID: String?
    package var secretKey: String?
    /// Scheme, host and optional port (and path prefix) of the market-data API; requests go to
    /// `baseURL + "/v2/stocks/bars"`. Tests and self-hosted proxies point it elsewhere.
    package var baseURL: String
    package var feed: String
    /// Alpaca's daily history begins in 2016.
    package var dataEpoch: TradingDate
    /// Bars per page (Alpaca's maximum; the limit counts bars across all symbols of a page).
    package var pageLimit: Int
    /// Symbols per request. Very long symbol lists make Alpaca fail intermittently with 500s.
    package var maxSymbolsPerRequest: Int
    /// How far behind real time SIP data may be queried without a real-time subscription.
    package var recentDataDelay: Duration
    package var http: CurlHTTPClient.Configuration
    package var retry: RetryPolicy
    /// Requests this process sends per minute at most (`RequestPacer`); Alpaca's free plan allows
    /// 200 per account. 0 turns pacing off. `BACKTESTD_ALPACA_REQUESTS_PER_MINUTE` sets it.
    package var requestsPerMinute: Int

    package static let defaultBaseURL = "https://data.alpaca.markets"
    package static let defaultFeed = "sip"
    package static let defaultDataEpoch = TradingDate(year: 2016, month: 1, day: 4)!

    package init(
        keyID: String?, secretKey: String?, baseURL: String = AlpacaConfiguration.defaultBaseURL,
        feed: String = AlpacaConfiguration.defaultFeed, dataEpoch: TradingDate = AlpacaConfiguration.defaultDataEpoch,
        pageLimit: Int = 10_000, maxSymbolsPerRequest: Int = 100, recentDataDelay: Duration = .seconds(16 * 60),
        http: CurlHTTPClient.Configuration = .init(), retry: RetryPolicy = .init(), requestsPerMinute: Int = 200
    ) {
        self.keyID = keyID
        self.secretKey = secretKey
        self.baseURL = baseURL
        self.feed = feed
        self.dataEpoch = dataEpoch
        self.pageLimit = min(10_000, max(1, pageLimit))
        self.maxSymbolsPerRequest = max(1, maxSymbolsPerRequest)
        self.recentDataDelay = recentDataDelay
        self.http = http
        self.retry = retry
        self.requestsPerMinute = max(0, requestsPerMinute)
    }

    /// True when both keys are present; the server warns at startup when they are not.
    package var hasCredentials: Bool { keyID != nil && secretKey != nil }
}
