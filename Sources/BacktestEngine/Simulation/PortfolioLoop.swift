import BacktestCore
import BacktestModel

/// The v2 portfolio loop over precomputed signal vectors, with the semantics of
/// shared/reference/README.md:
///
/// - signals of bar t fill at t's close (`close`) or at t+1's open (`next_open`);
/// - a flat position opens when its entry is true, a held one closes (whole quantity) when its
///   exit is true (no exit condition: when its entry is false); a bar where an explicit exit and
///   the entry are both true does nothing (vectorbt's default for conflicting signals);
/// - at each fill point: exits, then rebalancing of held positions (sells before buys), then
///   entries, in position order;
/// - quantity = weight x total equity / reference price, both at the fill point's reference price
///   (fractional shares); the fill price moves against the trade by the slippage; commission is
///   a fraction of quantity x fill price, paid from cash; a buy that cash cannot cover is reduced
///   to fit, so cash never goes negative unless the strategy allows leverage;
/// - rebalancing (when asked) re-targets held positions to their weight on every fill bar
///   (daily), on the first trading day of a week (weekly) or of a month (monthly).
struct PortfolioLoop {
    struct Leg {
        let position: Position
        let ticker: AlignedTicker
        /// Signals after the conflict and missing-bar rules.
        let entry: [Bool]
        let exit: [Bool]

        init(position: Position, ticker: AlignedTicker, entry rawEntry: [Bool], exit rawExit: [Bool]?) {
            self.position = position
            self.ticker = ticker
            let count = rawEntry.count
            var entry = [Bool](repeating: false, count: count)
            var exit = [Bool](repeating: false, count: count)
            for t in 0..<count where ticker.barIndex[t] >= 0 {
                let explicitExit = rawExit?[t] ?? !rawEntry[t]
                entry[t] = rawEntry[t] && !explicitExit
                exit[t] = explicitExit && !rawEntry[t]
            }
            self.entry = entry
            self.exit = exit
        }
    }

    let strategy: Strategy
    let market: PreparedMarket
    let legs: [Leg]
    private let slippage: Double
    private let commissionRate: Double

    private(set) var cash: Double
    private var quantity: [Double]
    private var tradeCost: [Double]
    private var tradeProceeds: [Double]
    private(set) var equity: [Double] = []
    private(set) var orders: [Order] = []
    private(set) var trades = TradeSummary()
    private(set) var daysExposed = 0
    /// Scratch: legs closed at the current fill point (kept to avoid an allocation per bar).
    private var exited: [Bool]
    private var droppedOrders: [String: (count: Int, first: TradingDate)] = [:]

    init(strategy: Strategy, market: PreparedMarket, legs: [Leg]) {
        self.strategy = strategy
        self.market = market
        self.legs = legs
        slippage = strategy.slippageBps / 10_000
        commissionRate = strategy.commissionBps / 10_000
        cash = market.settings.initialCapital
        quantity = Array(repeating: 0, count: legs.count)
        tradeCost = Array(repeating: 0, count: legs.count)
        tradeProceeds = Array(repeating: 0, count: legs.count)
        exited = Array(repeating: false, count: legs.count)
    }

    var warnings: [BacktestWarning] { BacktestWarning.ordersNotFilled(droppedOrders) }

    mutating func run() {
        let count = market.dates.count
        equity.reserveCapacity(count)
        let rebalanceDays: [Bool] = switch strategy.rebalance {
        case .none: [Bool](repeating: false, count: count)
        case .daily: RebalanceCalendar.days(market.dates, .daily)
        case .weekly: market.weekStarts
        case .monthly: market.monthStarts
        }
        for t in 0..<count {
            switch strategy.fill {
            case .close: fill(signal: t, at: t, useOpen: false, rebalance: rebalanceDays[t])
            case .nextOpen: if t > 0 { fill(signal: t - 1, at: t, useOpen: true, rebalance: rebalanceDays[t]) }
            }
            var value = cash
            var exposed = false
            for (p, leg) in legs.enumerated() where quantity[p] != 0 {
                value += quantity[p] * leg.ticker.mark[t]
                exposed = true
            }
            equity.append(value)
            if exposed { daysExposed += 1 }
        }
    }

    /// Reference price of leg `p` at bar `t`; nil when its ticker has no bar then (or a price no
    /// order can fill at: zero, negative, not finite; treated like a missing bar).
    private func price(_ p: Int, _ t: Int, _ useOpen: Bool) -> Double? {
        let value = legs[p].ticker.price(t, open: useOpen)
        return value > 0 && value.isFinite ? value : nil
    }

    private func equity(at t: Int, useOpen: Bool) -> Double {
        var value = cash
        for p in legs.indices where quantity[p] != 0 {
            value += quantity[p] * (price(p, t, useOpen) ?? legs[p].ticker.mark[t])
        }
        return value
    }

    private mutating func fill(signal s: Int, at t: Int, useOpen: Bool, rebalance: Bool) {
        for p in legs.indices { exited[p] = false }
        for p in legs.indices where quantity[p] > 0 && legs[p].exit[s] {
            guard let reference = price(p, t, useOpen) else { drop(p, t); continue }
            sell(p, quantity: quantity[p], reference: reference, at: t)
            exited[p] = true
        }
        if rebalance {
            var targets: [(Int, Double, Double)] = []
            let total = equity(at: t, useOpen: useOpen)
            for p in legs.indices where quantity[p] > 0 && !exited[p] {
                guard let reference = price(p, t, useOpen) else { continue }
                targets.append((p, legs[p].position.weight * total / reference - quantity[p], reference))
            }
            for (p, delta, reference) in targets where delta < 0 { sell(p, quantity: -delta, reference: reference, at: t) }
            for (p, delta, reference) in targets where delta > 0 { buy(p, quantity: delta, reference: reference, at: t) }
        }
        for p in legs.indices where quantity[p] == 0 && !exited[p] && legs[p].entry[s] {
            guard let reference = price(p, t, useOpen) else { drop(p, t); continue }
            let target = legs[p].position.weight * equity(at: t, useOpen: useOpen) / reference
            if buy(p, quantity: target, reference: reference, at: t) { trades.count += 1 }
        }
    }

    private mutating func drop(_ p: Int, _ t: Int) {
        let symbol = legs[p].position.ticker
        let previous = droppedOrders[symbol] ?? (0, market.dates[t])
        droppedOrders[symbol] = (previous.count + 1, previous.first)
    }

    @discardableResult
    private mutating func buy(_ p: Int, quantity wanted: Double, reference: Double, at t: Int) -> Bool {
        let fillPrice = reference * (1 + slippage)
        var amount = wanted
        var cost = amount * fillPrice
        var commission = cost * commissionRate
        if !strategy.allowLeverage && cost + commission > cash {
            amount = max(cash, 0) / (fillPrice * (1 + commissionRate))
            cost = amount * fillPrice
            commission = cost * commissionRate
        }
        guard amount > 0 else { return false }
        cash -= cost + commission
        quantity[p] += amount
        tradeCost[p] += cost + commission
        orders.append(Order(date: market.dates[t], ticker: legs[p].position.ticker, side: .buy, quantity: amount, price: fillPrice, commission: commission))
        return true
    }

    private mutating func sell(_ p: Int, quantity amount: Double, reference: Double, at t: Int) {
        let fillPrice = reference * (1 - slippage)
        let proceeds = amount * fillPrice
        let commission = proceeds * commissionRate
        cash += proceeds - commission
        tradeProceeds[p] += proceeds - commission
        let closing = amount >= quantity[p]
        quantity[p] = closing ? 0 : quantity[p] - amount
        orders.append(Order(date: market.dates[t], ticker: legs[p].position.ticker, side: .sell, quantity: amount, price: fillPrice, commission: commission))
        if closing {
            trades.closedProfits.append(tradeProceeds[p] - tradeCost[p])
            tradeProceeds[p] = 0
            tradeCost[p] = 0
        }
    }
}

/// Which calendar days re-target held positions.
enum RebalanceCalendar {
    static func days(_ dates: [TradingDate], _ rebalance: Rebalance) -> [Bool] {
        var result = [Bool](repeating: false, count: dates.count)
        guard rebalance != .none else { return result }
        if rebalance == .monthly, let first = dates.first {
            // One civil-date conversion, then day arithmetic: a new month starts when the days
            // elapsed run past the end of the current one.
            var (year, month, day) = (first.year, first.month, first.day)
            for t in 1..<dates.count {
                day += dates[t - 1].distance(to: dates[t])
                while day > TradingDate.daysInMonth(year: year, month: month) {
                    day -= TradingDate.daysInMonth(year: year, month: month)
                    month += 1
                    if month > 12 { month = 1; year += 1 }
                    result[t] = true
                }
            }
            return result
        }
        for t in 1..<max(dates.count, 1) {
            switch rebalance {
            case .none: break
            case .daily: result[t] = true
            case .weekly: result[t] = week(dates[t]) != week(dates[t - 1])
            case .monthly: result[t] = dates[t].month != dates[t - 1].month || dates[t].year != dates[t - 1].year
            }
        }
        return result
    }

    /// Monday-based week number (1970-01-05 was a Monday).
    static func week(_ date: TradingDate) -> Int {
        let days = Int(date.daysSinceEpoch) + 3
        return days >= 0 ? days / 7 : (days - 6) / 7
    }
}
