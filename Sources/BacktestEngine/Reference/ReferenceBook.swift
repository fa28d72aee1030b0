import BacktestCore
import BacktestModel

/// The reference engine's account: cash and one holding per position, trading with the rules of
/// shared/reference/README.md, written as plainly as possible.
struct ReferenceBook {
    struct Holding {
        var shares = 0.0
        var paid = 0.0
        var received = 0.0
    }

    let strategy: Strategy
    let snapshot: MarketSnapshot
    let dates: [TradingDate]
    var cash: Double
    var holdings: [Holding]
    var orders: [Order] = []
    var trades = TradeSummary()
    var dropped: [String: (count: Int, first: TradingDate)] = [:]

    init(strategy: Strategy, snapshot: MarketSnapshot, dates: [TradingDate], capital: Double) {
        self.strategy = strategy
        self.snapshot = snapshot
        self.dates = dates
        cash = capital
        holdings = Array(repeating: Holding(), count: strategy.positions.count)
    }

    var isExposed: Bool { holdings.contains { $0.shares != 0 } }

    var warnings: [BacktestWarning] { BacktestWarning.ordersNotFilled(dropped) }

    /// Open or close of `ticker` on calendar day `day`; nil when it has no bar then.
    func price(_ ticker: String, day: Int, useOpen: Bool) -> Double? {
        guard let bars = snapshot.bars[ticker], let i = bars.index(of: dates[day]) else { return nil }
        let price = useOpen ? bars.open[i] : bars.close[i]
        return price > 0 && price.isFinite ? price : nil
    }

    /// Last close on or before `day`.
    func lastClose(_ ticker: String, day: Int) -> Double {
        guard let bars = snapshot.bars[ticker] else { return .nan }
        let i = bars.lowerBound(dates[day].advanced(by: 1)) - 1
        return i >= 0 ? bars.close[i] : .nan
    }

    func value(day: Int, useOpen: Bool) -> Double {
        var total = cash
        for (p, holding) in holdings.enumerated() where holding.shares != 0 {
            let ticker = strategy.positions[p].ticker
            total += holding.shares * (price(ticker, day: day, useOpen: useOpen) ?? lastClose(ticker, day: day))
        }
        return total
    }

    func isRebalanceDay(_ day: Int) -> Bool {
        guard day > 0 else { return false }
        let today = dates[day]
        let before = dates[day - 1]
        switch strategy.rebalance {
        case .none: return false
        case .daily: return true
        case .weekly:
            // Same week when fewer days apart than weekdays elapsed since Monday.
            let mondayBased = (today.weekday + 6) % 7
            return before.distance(to: today) > mondayBased
        case .monthly: return today.month != before.month || today.year != before.year
        }
    }

    /// Prices as traded: on each ex-date since the previous calendar day (after it, up to `day`),
    /// held shares x the split ratio, then cash + shares x the dividend.
    mutating func applyCorporateActions(day: Int) {
        guard day > 0 else { return }
        for (p, position) in strategy.positions.enumerated() where holdings[p].shares > 0 {
            guard let bars = snapshot.bars[position.ticker] else { continue }
            for i in bars.dates.indices where bars.dates[i] > dates[day - 1] && bars.dates[i] <= dates[day] {
                holdings[p].shares *= bars.splitRatio[i]
                let paid = holdings[p].shares * bars.dividend[i]
                cash += paid
                holdings[p].received += paid
            }
        }
    }

    mutating func trade(day: Int, useOpen: Bool, exits: [Bool], entries: [Bool]) {
        var justSold = Set<Int>()
        for (p, position) in strategy.positions.enumerated() where holdings[p].shares > 0 && exits[p] {
            guard let reference = price(position.ticker, day: day, useOpen: useOpen) else {
                noteDropped(position.ticker, day)
                continue
            }
            sell(p, shares: holdings[p].shares, reference: reference, day: day)
            justSold.insert(p)
        }
        if isRebalanceDay(day) {
            let total = value(day: day, useOpen: useOpen)
            var buys: [(Int, Double, Double)] = []
            for (p, position) in strategy.positions.enumerated() where holdings[p].shares > 0 && !justSold.contains(p) {
                guard let reference = price(position.ticker, day: day, useOpen: useOpen) else { continue }
                let change = position.weight * total / reference - holdings[p].shares
                if change < 0 { sell(p, shares: -change, reference: reference, day: day) }
                if change > 0 { buys.append((p, change, reference)) }
            }
            for (p, change, reference) in buys { _ = buy(p, shares: change, reference: reference, day: day) }
        }
        for (p, position) in strategy.positions.enumerated() where holdings[p].shares == 0 && !justSold.contains(p) && entries[p] {
            guard let reference = price(position.ticker, day: day, useOpen: useOpen) else {
                noteDropped(position.ticker, day)
                continue
            }
            let shares = position.weight * value(day: day, useOpen: useOpen) / reference
            _ = buy(p, shares: shares, reference: reference, day: day)
        }
    }

    mutating func noteDropped(_ ticker: String, _ day: Int) {
        let previous = dropped[ticker] ?? (0, dates[day])
        dropped[ticker] = (previous.count + 1, previous.first)
    }

    mutating func buy(_ p: Int, shares wanted: Double, reference: Double, day: Int) -> Bool {
        let rate = strategy.commissionBps / 10_000
        let fill = reference * (1 + strategy.slippageBps / 10_000)
        var shares = wanted
        if !strategy.allowLeverage && shares * fill + shares * fill * rate > cash {
            shares = max(cash, 0) / (fill * (1 + rate))
        }
        if shares <= 0 { return false }
        let commission = shares * fill * rate
        cash -= shares * fill + commission
        holdings[p].shares += shares
        holdings[p].paid += shares * fill + commission
        orders.append(Order(date: dates[day], ticker: strategy.positions[p].ticker, side: .buy, quantity: shares, price: fill, commission: commission))
        return true
    }

    mutating func sell(_ p: Int, shares: Double, reference: Double, day: Int) {
        let rate = strategy.commissionBps / 10_000
        let fill = reference * (1 - strategy.slippageBps / 10_000)
        let commission = shares * fill * rate
        cash += shares * fill - commission
        holdings[p].received += shares * fill - commission
        let closes = shares >= holdings[p].shares
        holdings[p].shares = closes ? 0 : holdings[p].shares - shares
        orders.append(Order(date: dates[day], ticker: strategy.positions[p].ticker, side: .sell, quantity: shares, price: fill, commission: commission))
        if closes {
            trades.closedProfits.append(holdings[p].received - holdings[p].paid)
            trades.count += 1
            holdings[p] = Holding()
        }
    }
}
