import BacktestCore
import BacktestModel

/// The reference engine's account: cash and one holding per position, trading with the rules of
/// shared/reference/README.md, written as plainly as possible.
struct ReferenceBook {
    struct Holding {
        /// Negative for a short.
        var shares = 0.0
        var paid = 0.0
        var received = 0.0
        /// Issue 15: the entry's reference price and day, the trailing extreme, the stop
        /// distances as fractions (NaN: none), a short's entry value (collateral).
        var entryPrice = Double.nan
        var entryDay = -1
        var extreme = Double.nan
        var stop = Double.nan
        var trail = Double.nan
        var target = Double.nan
        var shortValue = 0.0
    }

    let strategy: Strategy
    let snapshot: MarketSnapshot
    let dates: [TradingDate]
    var cash: Double
    var holdings: [Holding]
    var orders: [Order] = []
    var trades = TradeSummary()
    var dropped: [String: (count: Int, first: TradingDate)] = [:]
    /// The day a stop or time exit closed each position (no signal entry then).
    var forcedExitDay: [Int]

    init(strategy: Strategy, snapshot: MarketSnapshot, dates: [TradingDate], capital: Double) {
        self.strategy = strategy
        self.snapshot = snapshot
        self.dates = dates
        cash = capital
        holdings = Array(repeating: Holding(), count: strategy.positions.count)
        forcedExitDay = Array(repeating: -1, count: strategy.positions.count)
    }

    /// Cash that buys and new shorts may use: cash less twice the shorts' entry values.
    var freeCash: Double {
        cash - 2 * holdings.reduce(0) { $0 + $1.shortValue }
    }

    func bar(_ ticker: String, day: Int) -> (open: Double, high: Double, low: Double)? {
        guard let bars = snapshot.bars[ticker], let i = bars.index(of: dates[day]) else { return nil }
        return (bars.open[i], bars.high[i], bars.low[i])
    }

    /// Stops, targets and time exits of day `day` (README "Engine semantics"), written out case
    /// by case: positions entered before `day` with a bar then.
    mutating func priceAndTimeExits(day: Int, useOpen: Bool) {
        for (p, position) in strategy.positions.enumerated() {
            let h = holdings[p]
            guard h.shares != 0, h.entryDay >= 0, h.entryDay < day, !position.exits.isEmpty else { continue }
            guard let bar = bar(position.ticker, day: day) else { continue }
            let timeDue = position.exits.maxBars != nil && day - h.entryDay >= position.exits.maxBars!
            var exitPrice: Double?
            var reason = OrderReason.stopLoss
            if h.shares > 0 {
                var stopLevel: Double?
                if !h.stop.isNaN { stopLevel = h.entryPrice * (1 - h.stop) }
                if !h.trail.isNaN {
                    let trailLevel = h.extreme * (1 - h.trail)
                    if stopLevel == nil || trailLevel > stopLevel! {
                        stopLevel = trailLevel
                        reason = .trailingStop
                    }
                }
                if let level = stopLevel {
                    if bar.open <= level { exitPrice = bar.open } else if bar.low <= level { exitPrice = level }
                }
                if timeDue && useOpen && exitPrice != bar.open { exitPrice = nil }
                if exitPrice == nil && !(timeDue && useOpen) && !h.target.isNaN {
                    let level = h.entryPrice * (1 + h.target)
                    reason = .takeProfit
                    if bar.open >= level { exitPrice = bar.open } else if bar.high >= level { exitPrice = level }
                }
            } else {
                var stopLevel: Double?
                if !h.stop.isNaN { stopLevel = h.entryPrice * (1 + h.stop) }
                if !h.trail.isNaN {
                    let trailLevel = h.extreme * (1 + h.trail)
                    if stopLevel == nil || trailLevel < stopLevel! {
                        stopLevel = trailLevel
                        reason = .trailingStop
                    }
                }
                if let level = stopLevel {
                    if bar.open >= level { exitPrice = bar.open } else if bar.high >= level { exitPrice = level }
                }
                if timeDue && useOpen && exitPrice != bar.open { exitPrice = nil }
                if exitPrice == nil && !(timeDue && useOpen) && !h.target.isNaN {
                    let level = h.entryPrice * (1 - h.target)
                    reason = .takeProfit
                    if bar.open <= level { exitPrice = bar.open } else if bar.low <= level { exitPrice = level }
                }
            }
            if exitPrice == nil && timeDue, let reference = price(position.ticker, day: day, useOpen: useOpen) {
                exitPrice = reference
                reason = .time
            }
            if let exitPrice, exitPrice > 0 {
                close(p, reference: exitPrice, day: day, reason: reason)
                forcedExitDay[p] = day
                continue
            }
            if h.shares > 0 { holdings[p].extreme = max(h.extreme, bar.high) } else { holdings[p].extreme = min(h.extreme, bar.low) }
        }
    }

    /// Closes the whole of position `p` at `reference`.
    mutating func close(_ p: Int, reference: Double, day: Int, reason: OrderReason) {
        if holdings[p].shares > 0 {
            sell(p, shares: holdings[p].shares, reference: reference, day: day, reason: reason)
        } else {
            cover(p, shares: -holdings[p].shares, reference: reference, day: day, reason: reason)
        }
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
        for (p, position) in strategy.positions.enumerated() where holdings[p].shares != 0 {
            guard let bars = snapshot.bars[position.ticker] else { continue }
            for i in bars.dates.indices where bars.dates[i] > dates[day - 1] && bars.dates[i] <= dates[day] {
                holdings[p].shares *= bars.splitRatio[i]
                holdings[p].entryPrice /= bars.splitRatio[i]
                holdings[p].extreme /= bars.splitRatio[i]
                let paid = holdings[p].shares * bars.dividend[i]
                cash += paid
                holdings[p].received += paid
            }
        }
    }

    /// `atr(p)`: the ATR of position `p`'s stop levels on the signal day (NaN: undefined).
    mutating func trade(day: Int, useOpen: Bool, exits: [Bool], entries: [Bool], atr: (Int) -> Double = { _ in .nan }) {
        var justSold = Set<Int>()
        for (p, position) in strategy.positions.enumerated() where holdings[p].shares != 0 && exits[p] {
            guard let reference = price(position.ticker, day: day, useOpen: useOpen) else {
                noteDropped(position.ticker, day)
                continue
            }
            close(p, reference: reference, day: day, reason: .signal)
            justSold.insert(p)
        }
        if isRebalanceDay(day) {
            let total = value(day: day, useOpen: useOpen)
            var buys: [(Int, Double, Double)] = []
            for (p, position) in strategy.positions.enumerated()
            where holdings[p].shares != 0 && !justSold.contains(p) && position.sizing == .weight {
                guard let reference = price(position.ticker, day: day, useOpen: useOpen) else { continue }
                let target = position.weight * total / reference
                let change = (holdings[p].shares > 0 ? target : -target) - holdings[p].shares
                if change < 0 {
                    if holdings[p].shares > 0 {
                        sell(p, shares: -change, reference: reference, day: day, reason: .rebalance)
                    } else {
                        _ = sellShort(p, shares: -change, reference: reference, day: day, reason: .rebalance)
                    }
                }
                if change > 0 { buys.append((p, change, reference)) }
            }
            for (p, change, reference) in buys {
                if holdings[p].shares > 0 {
                    _ = buy(p, shares: change, reference: reference, day: day, reason: .rebalance)
                } else {
                    cover(p, shares: change, reference: reference, day: day, reason: .rebalance)
                }
            }
        }
        for (p, position) in strategy.positions.enumerated() where holdings[p].shares == 0 && !justSold.contains(p) && entries[p] {
            if forcedExitDay[p] == day { continue }
            guard let reference = price(position.ticker, day: day, useOpen: useOpen) else {
                noteDropped(position.ticker, day)
                continue
            }
            // Stop distances as fractions of the reference price (ATR multiples converted).
            func fraction(_ value: Double?) -> Double {
                guard let value else { return .nan }
                return position.exits.atrPeriod == nil ? value : value * atr(p) / reference
            }
            let stop = fraction(position.exits.stopLoss)
            let shares: Double
            switch position.sizing {
            case .weight: shares = position.weight * value(day: day, useOpen: useOpen) / reference
            case .cash: shares = position.size / reference
            case .shares: shares = position.size
            case .risk:
                guard stop > 0 else { continue }
                shares = position.size * value(day: day, useOpen: useOpen) / (reference * stop)
            }
            guard shares > 0, shares.isFinite else { continue }
            let opened = position.direction == .long
                ? buy(p, shares: shares, reference: reference, day: day, reason: .entry)
                : sellShort(p, shares: shares, reference: reference, day: day, reason: .entry)
            if opened {
                holdings[p].entryDay = day
                holdings[p].entryPrice = reference
                holdings[p].extreme = reference
                holdings[p].stop = stop
                holdings[p].trail = fraction(position.exits.trailingStop)
                holdings[p].target = fraction(position.exits.takeProfit)
            }
        }
    }

    mutating func noteDropped(_ ticker: String, _ day: Int) {
        let previous = dropped[ticker] ?? (0, dates[day])
        dropped[ticker] = (previous.count + 1, previous.first)
    }

    mutating func buy(_ p: Int, shares wanted: Double, reference: Double, day: Int, reason: OrderReason) -> Bool {
        let rate = strategy.commissionBps / 10_000
        let fill = reference * (1 + strategy.slippageBps / 10_000)
        var shares = wanted
        if !strategy.allowLeverage && shares * fill + shares * fill * rate > freeCash {
            shares = max(freeCash, 0) / (fill * (1 + rate))
        }
        if shares <= 0 { return false }
        let commission = shares * fill * rate
        cash -= shares * fill + commission
        holdings[p].shares += shares
        holdings[p].paid += shares * fill + commission
        orders.append(Order(
            date: dates[day], ticker: strategy.positions[p].ticker, side: .buy, quantity: shares, price: fill, commission: commission,
            reason: reason))
        return true
    }

    /// Sells borrowed shares (opens or adds to a short); without leverage its value plus
    /// commission must fit in the free cash (reduced to fit).
    mutating func sellShort(_ p: Int, shares wanted: Double, reference: Double, day: Int, reason: OrderReason) -> Bool {
        let rate = strategy.commissionBps / 10_000
        let fill = reference * (1 - strategy.slippageBps / 10_000)
        var shares = wanted
        if !strategy.allowLeverage && shares * fill + shares * fill * rate > freeCash {
            shares = max(freeCash, 0) / (fill * (1 + rate))
        }
        if shares <= 0 { return false }
        let commission = shares * fill * rate
        cash += shares * fill - commission
        holdings[p].shares -= shares
        holdings[p].received += shares * fill - commission
        holdings[p].shortValue += shares * fill
        orders.append(Order(
            date: dates[day], ticker: strategy.positions[p].ticker, side: .sell, quantity: shares, price: fill, commission: commission,
            reason: reason))
        return true
    }

    /// Buys back shares of a short; all of them closes the round trip.
    mutating func cover(_ p: Int, shares: Double, reference: Double, day: Int, reason: OrderReason) {
        let rate = strategy.commissionBps / 10_000
        let fill = reference * (1 + strategy.slippageBps / 10_000)
        let commission = shares * fill * rate
        cash -= shares * fill + commission
        holdings[p].paid += shares * fill + commission
        let closes = shares >= -holdings[p].shares
        holdings[p].shortValue = closes ? 0 : holdings[p].shortValue * (1 - shares / -holdings[p].shares)
        holdings[p].shares = closes ? 0 : holdings[p].shares + shares
        orders.append(Order(
            date: dates[day], ticker: strategy.positions[p].ticker, side: .buy, quantity: shares, price: fill, commission: commission,
            reason: reason))
        if closes {
            trades.closedProfits.append(holdings[p].received - holdings[p].paid)
            trades.count += 1
            holdings[p] = Holding()
        }
    }

    mutating func sell(_ p: Int, shares: Double, reference: Double, day: Int, reason: OrderReason) {
        let rate = strategy.commissionBps / 10_000
        let fill = reference * (1 - strategy.slippageBps / 10_000)
        let commission = shares * fill * rate
        cash += shares * fill - commission
        holdings[p].received += shares * fill - commission
        let closes = shares >= holdings[p].shares
        holdings[p].shares = closes ? 0 : holdings[p].shares - shares
        orders.append(Order(
            date: dates[day], ticker: strategy.positions[p].ticker, side: .sell, quantity: shares, price: fill, commission: commission,
            reason: reason))
        if closes {
            trades.closedProfits.append(holdings[p].received - holdings[p].paid)
            trades.count += 1
            holdings[p] = Holding()
        }
    }
}
