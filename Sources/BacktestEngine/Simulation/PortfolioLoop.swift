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
/// - rebalancing (when asked) re-targets held weight-sized positions to their weight on every
///   fill bar (daily), on the first trading day of a week (weekly) or of a month (monthly).
///
/// Issue 15's features (README "Engine semantics"), active only when some position uses them
/// (`advanced`; a plain strategy runs the same arithmetic as before, skipping days between fill
/// points): shorts (negative quantity; a short locks free cash equal to its entry value, so
/// free cash = cash - 2 x the shorts' entry values, vectorbt's `debt`), sizing by cash, shares or
/// risk, and exits by price and time checked on every bar after the entry bar, before that
/// bar's signal fills (a stop or time exit takes the bar: no signal order for the leg then).
///
/// The loop does not keep what it produces: it hands each day's equity, each order and each
/// closed round trip to its `Recorder`, so one loop serves the full result (`FullRecorder`:
/// equity curve, orders) and the sweep's summaries (`MetricAccumulator`: metrics in one pass,
/// nothing per day kept but the returns in a reused buffer). Both see the same arithmetic in the
/// same order, so their numbers agree to the bit.
struct PortfolioLoop<Recorder: PortfolioRecorder> {
    let strategy: Strategy
    let market: PreparedMarket
    let legs: [PortfolioLeg]
    private let slippage: Double
    private let commissionRate: Double

    private(set) var cash: Double
    private var quantity: [Double]
    private var tradeCost: [Double]
    private var tradeProceeds: [Double]
    var recorder: Recorder
    /// Closed round trips (a position still open at the end is not one).
    private(set) var tradeCount = 0
    private(set) var daysExposed = 0
    /// Scratch: legs closed at the current fill point (kept to avoid an allocation per bar).
    private var exited: [Bool]
    /// Whether some position uses shorts, sizing other than weight, or price and time exits.
    private let advanced: Bool
    /// Per leg, while held (advanced only): the entry's fill price (stop levels' base), the
    /// highest high (longs) / lowest low (shorts) of the bars after the entry bar so far (the
    /// trailing stop's base; the entry price before any), the entry's fill day, the stop
    /// distances as fractions of the entry price (ATR ones converted at the entry), and a short's
    /// entry value (its locked collateral).
    private var entryPrice: [Double] = []
    private var extreme: [Double] = []
    private var entryDay: [Int] = []
    private var stopFraction: [Double] = []
    private var trailFraction: [Double] = []
    private var targetFraction: [Double] = []
    private var shortValue: [Double] = []
    /// Sum of `shortValue`, kept as orders change it (summing every leg at every short order
    /// made a day of 60,000 short entries quadratic); exactly 0 again once no short is open.
    private var shortValueTotal = 0.0
    /// Legs with an open short (`shortValue` above 0).
    private var openShorts = 0
    /// The day a stop or time exit closed each leg (no signal entry for it that day).
    private var forcedExitDay: [Int] = []
    private var droppedOrders: [String: (count: Int, first: TradingDate)] = [:]

    init(strategy: Strategy, market: PreparedMarket, legs: [PortfolioLeg], recorder: Recorder) {
        self.strategy = strategy
        self.market = market
        self.legs = legs
        self.recorder = recorder
        slippage = strategy.slippageBps / 10_000
        commissionRate = strategy.commissionBps / 10_000
        cash = market.settings.initialCapital
        quantity = Array(repeating: 0, count: legs.count)
        tradeCost = Array(repeating: 0, count: legs.count)
        tradeProceeds = Array(repeating: 0, count: legs.count)
        exited = Array(repeating: false, count: legs.count)
        advanced = !strategy.positions.allSatisfy(\.isPlain)
        if advanced {
            entryPrice = Array(repeating: .nan, count: legs.count)
            extreme = entryPrice
            stopFraction = entryPrice
            trailFraction = entryPrice
            targetFraction = entryPrice
            entryDay = Array(repeating: -1, count: legs.count)
            forcedExitDay = entryDay
            shortValue = Array(repeating: 0, count: legs.count)
        }
    }

    /// Leg-days valued between two cancellation checks (see `run`).
    static var valuationStride: Int { 1 << 20 }

    /// Legs (in position order) whose `next_open` order was signalled on the last day.
    private var unfilledAtEnd: [String] = []

    var warnings: [BacktestWarning] {
        BacktestWarning.ordersNotFilled(droppedOrders) + PortfolioLoop.unfilledAtEndWarning(unfilledAtEnd, lastDay: market.dates.last)
    }

    /// `next_open` orders signalled on the last day, which no later open can fill. Shared with
    /// the reference engine.
    static func unfilledAtEndWarning(_ tickers: [String], lastDay: TradingDate?) -> [BacktestWarning] {
        guard !tickers.isEmpty, let lastDay else { return [] }
        return [BacktestWarning(
            .unfilledAtEnd, tickers: tickers, dates: [lastDay],
            message: "\(tickers.joined(separator: ", ")): next_open order(s) signalled on the last day \(lastDay) not filled: the window ends before the next open")]
    }

    /// Runs the loop over the whole calendar. Checks `cancellation` once per fill point and
    /// every `valuationStride` leg-days of valuation, so a large portfolio stops within
    /// milliseconds of a cancel; throws CANCELLED then (what was recorded so far is incomplete).
    /// Checks the recorder's bound once per fill point too (`PortfolioRecorder.checkBound`):
    /// throws RESOURCE_EXHAUSTED once the orders recorded cannot fit in an answer.
    mutating func run(cancellation: CancellationFlag? = nil) throws(BacktestError) {
        let count = market.dates.count
        // Days valued per call between checks: about `valuationStride` leg-days, so a check
        // comes every millisecond or so however many legs there are (with few legs: one call).
        let valuationDays = max(1, PortfolioLoop.valuationStride / max(legs.count, 1))
        let rebalanceDays: [Bool]? = switch strategy.rebalance {
        case .none: nil
        case .daily: RebalanceCalendar.days(market.dates, .daily)
        case .weekly: market.weekStarts
        case .monthly: market.monthStarts
        }
        let useOpen = strategy.fill == .nextOpen
        // Orders filling on day t come from signal day t - shift: t at the close, t-1 at t's open.
        let shift = useOpen ? 1 : 0
        var t = 0
        while t < count {
            try cancellation.check()
            try recorder.checkBound()
            if followsCorporateActions { applyCorporateActions(t) }
            if advanced { exitByPriceAndTime(t, useOpen: useOpen) }
            let s = t - shift
            if s >= 0 {
                let rebalance = rebalanceDays?[t] ?? false
                if rebalance || hasSignal(s) { fill(signal: s, at: t, useOpen: useOpen, rebalance: rebalance) }
            }
            // Until the next day that may fill, only prices move: value those days in one go
            // (held legs with price or time exits are checked every day).
            let end = advanced && holdsPriceOrTimeExits
                ? t + 1 : nextFillCandidate(after: t, shift: shift, rebalanceDays: rebalanceDays, count: count)
            var from = t
            while end - from > valuationDays {
                value(from..<(from + valuationDays))
                from += valuationDays
                try cancellation.check()
            }
            value(from..<end)
            t = end
        }
        // The last fill point's orders: the bound is exact (over it, the result is refused here).
        try recorder.checkBound()
        if useOpen && count > 0 {
            let s = count - 1
            for p in legs.indices {
                let held = quantity[p]
                if held != 0 ? legs[p].exit[s] : legs[p].entry[s] { unfilledAtEnd.append(legs[p].position.ticker) }
            }
        }
    }

    /// The first day after `t` whose fill point may act, given the positions held now: a
    /// rebalancing day, or a day whose signal day has a held leg's exit or a flat leg's entry
    /// (what `hasSignal` checks); `count` when there is none.
    private func nextFillCandidate(after t: Int, shift: Int, rebalanceDays: [Bool]?, count: Int) -> Int {
        var next = count
        for p in legs.indices {
            let held = quantity[p]
            let signal = held != 0 ? legs[p].exit : legs[p].entry
            if let day = signal.firstSet(from: t + 1 - shift).map({ $0 + shift }), day < next { next = day }
        }
        if followsCorporateActions {
            for p in legs.indices where quantity[p] != 0 {
                if let day = legs[p].ticker.actions?.days.firstSet(from: t + 1), day < next { next = day }
            }
        }
        if let rebalanceDays {
            var day = t + 1
            while day < next && !rebalanceDays[day] { day += 1 }
            next = day
        }
        return next
    }

    /// Prices as traded (`raw`): held shares follow splits and dividends are paid in cash, as in
    /// a brokerage account. Split- and dividend-adjusted prices already contain both.
    private var followsCorporateActions: Bool { market.settings.adjustment == .raw }

    /// Day `t`'s splits and dividends on the held legs, before the day's fills: shares x the split
    /// ratio, then cash + shares x the dividend (counted in the round trip's proceeds).
    private mutating func applyCorporateActions(_ t: Int) {
        for p in legs.indices where quantity[p] != 0 {
            guard let actions = legs[p].ticker.actions, actions.days[t] else { continue }
            quantity[p] *= actions.splitRatio[t]
            if advanced {
                // Stop levels follow the split, as the prices do (a 2:1 split halves them).
                entryPrice[p] /= actions.splitRatio[t]
                extreme[p] /= actions.splitRatio[t]
            }
            let paid = quantity[p] * actions.dividend[t]
            cash += paid
            tradeProceeds[p] += paid
        }
    }

    /// Records the closing equity of `days`, between whose fill points nothing trades: cash plus
    /// each held leg's quantity x its mark, summed in leg order.
    private mutating func value(_ days: Range<Int>) {
        var heldCount = 0
        var lastHeld = 0
        for p in legs.indices where quantity[p] != 0 {
            heldCount += 1
            lastHeld = p
        }
        let cash = self.cash
        switch heldCount {
        case 0:
            recorder.flatDays(days, equity: cash)
        case 1:
            daysExposed += days.count
            let held = quantity[lastHeld]
            let mark = legs[lastHeld].ticker.mark
            mark.withUnsafeBufferPointer { mark in
                recorder.days(days) { cash + held * mark[$0] }
            }
        default:
            daysExposed += days.count
            let quantity = self.quantity
            let legs = self.legs
            recorder.days(days) { t in
                var value = cash
                for p in 0..<legs.count where quantity[p] != 0 { value += quantity[p] * legs[p].ticker.mark[t] }
                return value
            }
        }
    }

    /// Whether a fill point without rebalancing would do anything: a held leg's exit or a flat
    /// leg's entry on signal day `s`. Skipping the others changes nothing.
    @inline(__always)
    private func hasSignal(_ s: Int) -> Bool {
        for p in 0..<legs.count {
            let held = quantity[p]
            if held != 0 ? legs[p].exit[s] : legs[p].entry[s] { return true }
        }
        return false
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
        for p in legs.indices where quantity[p] != 0 && legs[p].exit[s] {
            guard let reference = price(p, t, useOpen) else { drop(p, t); continue }
            if quantity[p] > 0 {
                sell(p, quantity: quantity[p], reference: reference, at: t, reason: .signal)
            } else {
                cover(p, quantity: -quantity[p], reference: reference, at: t, reason: .signal)
            }
            exited[p] = true
        }
        if rebalance {
            var targets: [(Int, Double, Double)] = []
            let total = equity(at: t, useOpen: useOpen)
            for p in legs.indices where quantity[p] != 0 && !exited[p] && legs[p].position.sizing == .weight {
                guard let reference = price(p, t, useOpen) else { continue }
                if quantity[p] > 0 {
                    targets.append((p, legs[p].position.weight * total / reference - quantity[p], reference))
                } else {
                    targets.append((p, -(legs[p].position.weight * total / reference) - quantity[p], reference))
                }
            }
            // Sells first (a long's reduction, a short's increase), then buys.
            for (p, delta, reference) in targets where delta < 0 {
                if quantity[p] > 0 {
                    sell(p, quantity: -delta, reference: reference, at: t, reason: .rebalance)
                } else {
                    sellShort(p, quantity: -delta, reference: reference, at: t, reason: .rebalance)
                }
            }
            for (p, delta, reference) in targets where delta > 0 {
                if quantity[p] > 0 {
                    buy(p, quantity: delta, reference: reference, at: t, reason: .rebalance)
                } else {
                    cover(p, quantity: delta, reference: reference, at: t, reason: .rebalance)
                }
            }
        }
        // Each entry is sized on the equity after the entries before it. The equity is summed
        // over the held legs once, at the first entry that needs it (weight or risk sizing; a
        // plain leg is weight-sized), then carried forward: an order of `amount` at `reference`
        // changes it by amount x reference (the leg, valued at the price the order was sized at,
        // negative for a short) minus what the order took from the cash (cost and commission).
        // Summing it again for every entry made a day with many entries quadratic in the number
        // of positions (60,000 short entries took 11 s).
        var equity: Double?
        for p in legs.indices where quantity[p] == 0 && !exited[p] && legs[p].entry[s] {
            guard let reference = price(p, t, useOpen) else { drop(p, t); continue }
            if advanced && forcedExitDay[p] == t { continue }
            let sizing = legs[p].position.sizing
            if equity == nil && (sizing == .weight || sizing == .risk) { equity = self.equity(at: t, useOpen: useOpen) }
            let cashBefore = cash
            let traded = advanced
                ? open(p, signal: s, reference: reference, at: t, equity: equity ?? 0)
                : buy(p, quantity: legs[p].position.weight * (equity ?? 0) / reference, reference: reference, at: t, reason: .entry)
            if traded, let total = equity { equity = total + quantity[p] * reference - (cashBefore - cash) }
        }
    }

    // MARK: Issue 15: sizing, shorts, exits by price and time (advanced only)

    /// Whether a held leg has a stop, a target or a time exit (so every day must be visited).
    private var holdsPriceOrTimeExits: Bool {
        for p in legs.indices where quantity[p] != 0 && !legs[p].position.exits.isEmpty { return true }
        return false
    }

    /// The stop distance `value` of leg `p` as a fraction of the entry's reference price: the
    /// value itself, or value x ATR on the signal day / reference (NaN when the ATR is undefined:
    /// no such exit for this trade).
    private func fraction(_ value: Double?, _ p: Int, signal s: Int, reference: Double) -> Double {
        guard let value else { return .nan }
        guard let atr = legs[p].atr else { return value }
        return value * atr[s] / reference
    }

    /// Opens leg `p` at fill day `t` with its sizing and direction, and arms its exits; `equity`
    /// is the total equity at the fill point (for weight and risk sizing). Whether it traded.
    private mutating func open(_ p: Int, signal s: Int, reference: Double, at t: Int, equity: Double) -> Bool {
        let position = legs[p].position
        let stop = fraction(position.exits.stopLoss, p, signal: s, reference: reference)
        let wanted: Double
        switch position.sizing {
        case .weight: wanted = position.weight * equity / reference
        case .cash: wanted = position.size / reference
        case .shares: wanted = position.size
        case .risk:
            // The risked fraction of equity / the stop distance per share; no stop defined
            // (ATR in warm-up): no trade.
            guard stop > 0 else { return false }
            wanted = position.size * equity / (reference * stop)
        }
        guard wanted > 0, wanted.isFinite else { return false }
        let opened = position.direction == .long
            ? buy(p, quantity: wanted, reference: reference, at: t, reason: .entry)
            : sellShort(p, quantity: wanted, reference: reference, at: t, reason: .entry)
        guard opened else { return false }
        entryDay[p] = t
        entryPrice[p] = reference
        extreme[p] = reference
        stopFraction[p] = stop
        trailFraction[p] = fraction(position.exits.trailingStop, p, signal: s, reference: reference)
        targetFraction[p] = fraction(position.exits.takeProfit, p, signal: s, reference: reference)
        return true
    }

    /// Day `t`'s stops, targets and time exits of the legs held since an earlier day, before the
    /// day's signal fills. Each level is checked against the bar: a gap through it at the open
    /// fills at the open, a touch (low/high) at the level; a stop (the tighter of stop loss and
    /// trailing stop) wins over a target in the same bar (vectorbt 1.2). Then the trailing
    /// extreme takes the bar's high (longs) or low (shorts). A time exit fills at the day's fill
    /// point (open or close) `max_bars` days after the entry's.
    private mutating func exitByPriceAndTime(_ t: Int, useOpen: Bool) {
        for p in legs.indices where quantity[p] != 0 && entryDay[p] >= 0 && entryDay[p] < t {
            let exits = legs[p].position.exits
            guard !exits.isEmpty else { continue }
            let ticker = legs[p].ticker
            let i = Int(ticker.barIndex[t])
            guard i >= 0 else { continue }
            let open = ticker.bars.open[i], high = ticker.bars.high[i], low = ticker.bars.low[i]
            let long = quantity[p] > 0
            // The stop: the tighter of stop loss and trailing stop (NaN distances: none).
            var level = long ? -Double.infinity : Double.infinity
            var reason = OrderReason.stopLoss
            let stop = entryPrice[p] * (long ? 1 - stopFraction[p] : 1 + stopFraction[p])
            if !stop.isNaN { level = stop }
            let trail = extreme[p] * (long ? 1 - trailFraction[p] : 1 + trailFraction[p])
            if !trail.isNaN && (long ? trail > level : trail < level) {
                level = trail
                reason = .trailingStop
            }
            var fill = Double.nan
            if level.isFinite {
                if long ? open <= level : open >= level {
                    fill = open
                } else if long ? low <= level : high >= level {
                    fill = level
                }
            }
            let timeDue = exits.maxBars.map { t - entryDay[p] >= $0 } ?? false
            // A time exit at the open comes before a touch later in the bar.
            if timeDue && useOpen && fill != open { fill = .nan }
            if fill.isNaN && !(timeDue && useOpen) {
                let target = entryPrice[p] * (long ? 1 + targetFraction[p] : 1 - targetFraction[p])
                if !target.isNaN {
                    reason = .takeProfit
                    if long ? open >= target : open <= target {
                        fill = open
                    } else if long ? high >= target : low <= target {
                        fill = target
                    }
                }
            }
            if fill.isNaN, timeDue, let reference = price(p, t, useOpen) {
                fill = reference
                reason = .time
            }
            if !fill.isNaN && fill > 0 {
                if long {
                    sell(p, quantity: quantity[p], reference: fill, at: t, reason: reason)
                } else {
                    cover(p, quantity: -quantity[p], reference: fill, at: t, reason: reason)
                }
                forcedExitDay[p] = t
                continue
            }
            if long ? high > extreme[p] : low < extreme[p] { extreme[p] = long ? high : low }
        }
    }

    /// Cash that buys and new shorts may use: cash less twice the open shorts' entry values
    /// (the sale's proceeds and as much again locked as collateral). Plain strategies: cash.
    @inline(__always)
    private var freeCash: Double { advanced ? cash - 2 * shortValueTotal : cash }

    /// Sells `wanted` borrowed shares of leg `p` (opening or increasing a short): fill price
    /// below the reference by the slippage; without leverage reduced so that its value plus
    /// commission fits in the free cash.
    @discardableResult
    private mutating func sellShort(_ p: Int, quantity wanted: Double, reference: Double, at t: Int, reason: OrderReason) -> Bool {
        let fillPrice = reference * (1 - slippage)
        var amount = wanted
        var proceeds = amount * fillPrice
        var commission = proceeds * commissionRate
        let free = freeCash
        if !strategy.allowLeverage && proceeds + commission > free {
            amount = max(free, 0) / (fillPrice * (1 + commissionRate))
            proceeds = amount * fillPrice
            commission = proceeds * commissionRate
        }
        guard amount > 0 else { return false }
        cash += proceeds - commission
        quantity[p] -= amount
        tradeProceeds[p] += proceeds - commission
        if shortValue[p] == 0 { openShorts += 1 }
        shortValue[p] += proceeds
        shortValueTotal += proceeds
        recorder.order(leg: p, day: t, side: .sell, quantity: amount, price: fillPrice, commission: commission, reason: reason)
        return true
    }

    /// Buys back `amount` shares of leg `p`'s short (all of it closes the round trip): fill
    /// price above the reference by the slippage; the collateral is released in proportion.
    private mutating func cover(_ p: Int, quantity amount: Double, reference: Double, at t: Int, reason: OrderReason) {
        let fillPrice = reference * (1 + slippage)
        let cost = amount * fillPrice
        let commission = cost * commissionRate
        cash -= cost + commission
        tradeCost[p] += cost + commission
        let closing = amount >= -quantity[p]
        let before = shortValue[p]
        shortValue[p] = closing ? 0 : shortValue[p] * (1 - amount / -quantity[p])
        if closing && before > 0 { openShorts -= 1 }
        shortValueTotal = openShorts == 0 ? 0 : shortValueTotal + (shortValue[p] - before)
        quantity[p] = closing ? 0 : quantity[p] + amount
        recorder.order(leg: p, day: t, side: .buy, quantity: amount, price: fillPrice, commission: commission, reason: reason)
        if closing { finishTrade(p) }
    }

    private mutating func finishTrade(_ p: Int) {
        tradeCount += 1
        recorder.closedTrade(profit: tradeProceeds[p] - tradeCost[p])
        tradeProceeds[p] = 0
        tradeCost[p] = 0
        if advanced { entryDay[p] = -1 }
    }

    private mutating func drop(_ p: Int, _ t: Int) {
        let symbol = legs[p].position.ticker
        let previous = droppedOrders[symbol] ?? (0, market.dates[t])
        droppedOrders[symbol] = (previous.count + 1, previous.first)
    }

    @discardableResult
    private mutating func buy(_ p: Int, quantity wanted: Double, reference: Double, at t: Int, reason: OrderReason) -> Bool {
        let fillPrice = reference * (1 + slippage)
        var amount = wanted
        var cost = amount * fillPrice
        var commission = cost * commissionRate
        let free = freeCash
        if !strategy.allowLeverage && cost + commission > free {
            amount = max(free, 0) / (fillPrice * (1 + commissionRate))
            cost = amount * fillPrice
            commission = cost * commissionRate
        }
        guard amount > 0 else { return false }
        cash -= cost + commission
        quantity[p] += amount
        tradeCost[p] += cost + commission
        recorder.order(leg: p, day: t, side: .buy, quantity: amount, price: fillPrice, commission: commission, reason: reason)
        return true
    }

    private mutating func sell(_ p: Int, quantity amount: Double, reference: Double, at t: Int, reason: OrderReason) {
        let fillPrice = reference * (1 - slippage)
        let proceeds = amount * fillPrice
        let commission = proceeds * commissionRate
        cash += proceeds - commission
        tradeProceeds[p] += proceeds - commission
        let closing = amount >= quantity[p]
        quantity[p] = closing ? 0 : quantity[p] - amount
        recorder.order(leg: p, day: t, side: .sell, quantity: amount, price: fillPrice, commission: commission, reason: reason)
        if closing { finishTrade(p) }
    }
}

/// One position of a portfolio loop: its ticker on the calendar and its final signals.
struct PortfolioLeg {
    let position: Position
    let ticker: AlignedTicker
    /// Signals after the conflict and missing-bar rules.
    let entry: SignalBits
    let exit: SignalBits
    /// ATR(stop_atr_period) on the calendar (NaN: undefined) when the position's stop levels are
    /// ATR multiples; nil for fractions.
    let atr: [Double]?

    /// `rawExit` nil: exit when the entry is false.
    init(position: Position, ticker: AlignedTicker, entry rawEntry: SignalBits, exit rawExit: SignalBits?, atr: [Double]? = nil) {
        self.position = position
        self.ticker = ticker
        self.atr = atr
        // Per day with a bar: entry = raw entry and not explicit exit; exit = explicit exit
        // and not raw entry (both true: nothing). Days without a bar: both false.
        let explicitExit = rawExit ?? ~rawEntry
        entry = SignalBits.andNot(rawEntry, explicitExit) & ticker.hasBar
        exit = SignalBits.andNot(explicitExit, rawEntry) & ticker.hasBar
    }
}


/// What a `PortfolioLoop` produces, as it produces it.
protocol PortfolioRecorder {
    /// The total equity at the close (after the fills) of each day of `days`, `equity(t)`. The
    /// calls cover the calendar in order, each starting where the previous one ended; no order
    /// fills within a call's days except on its first.
    mutating func days(_ days: Range<Int>, equity: (Int) -> Double)
    /// `days` with the same equity every day (nothing held: the cash).
    mutating func flatDays(_ days: Range<Int>, equity: Double)
    /// A fill of leg `leg` on day `t`: shares (positive), fill price after slippage, commission,
    /// and why it was placed.
    mutating func order(leg: Int, day t: Int, side: OrderSide, quantity: Double, price: Double, commission: Double, reason: OrderReason)
    /// A round trip closed with `profit` (net of commissions; negative for a loss).
    mutating func closedTrade(profit: Double)
    /// Throws when what was recorded already exceeds what the caller can use (RESOURCE_EXHAUSTED
    /// from `FullRecorder` past its `AnswerBound`); the loop calls it once per fill point.
    func checkBound() throws(BacktestError)
}

extension PortfolioRecorder {
    /// No bound (recorders that keep nothing per order, such as the sweep's).
    @inline(__always)
    func checkBound() throws(BacktestError) {}
}

/// Keeps everything, for a full `BacktestResult`: the equity curve, the orders and the closed
/// round trips. With an `AnswerBound` it adds up the orders' encoded size as they come, so the
/// loop stops (RESOURCE_EXHAUSTED) soon after the orders alone outgrow the frame limit, instead
/// of building an answer the server would refuse.
struct FullRecorder: PortfolioRecorder {
    let dates: [TradingDate]
    let tickers: [String]
    private(set) var equity: [Double] = []
    private(set) var orders: [Order] = []
    private(set) var closedProfits: [Double] = []
    /// The encoded orders so far (bounded only).
    private var orderBytes: OrderBytesTally
    /// Per leg, its ticker's UTF-8 length (empty without a bound).
    private let tickerBytes: [Int]

    init(dates: [TradingDate], tickers: [String], bound: AnswerBound = .none) {
        self.dates = dates
        self.tickers = tickers
        orderBytes = OrderBytesTally(bound)
        tickerBytes = bound.frameLimit == nil ? [] : tickers.map(\.utf8.count)
        equity.reserveCapacity(dates.count)
    }

    func checkBound() throws(BacktestError) {
        try orderBytes.check()
    }

    mutating func days(_ days: Range<Int>, equity value: (Int) -> Double) {
        for t in days { equity.append(value(t)) }
    }

    mutating func flatDays(_ days: Range<Int>, equity value: Double) {
        equity.append(contentsOf: repeatElement(value, count: days.count))
    }

    mutating func order(leg: Int, day t: Int, side: OrderSide, quantity: Double, price: Double, commission: Double, reason: OrderReason) {
        orders.append(Order(
            date: dates[t], ticker: tickers[leg], side: side, quantity: quantity, price: price, commission: commission, reason: reason))
        if !tickerBytes.isEmpty {
            orderBytes.add(AnswerBound.encodedSize(
                date: dates[t].yyyymmdd, tickerBytes: tickerBytes[leg], quantity: quantity, price: price,
                commission: commission, reason: reason))
        }
    }

    mutating func closedTrade(profit: Double) {
        closedProfits.append(profit)
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
