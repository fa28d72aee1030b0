import BacktestCore
import BacktestModel
import Dispatch

/// What the variants of a sweep share, found once before any of them runs: every unique operand
/// (price field, indicator or number, on a resolved ticker) aligned to the calendar once, every
/// unique comparison between two of them once, and each variant's conditions as trees over those
/// comparisons. A comparison used by several conditions is evaluated once into `SignalBits` and
/// shared read-only; one used once is evaluated when its variant runs, so memory stays
/// proportional to what is actually shared.
///
/// A variant the plan cannot compile (unknown ticker, bad indicator, a series of the wrong
/// length) is marked to run through `VectorEngine` instead, which reports its error exactly as
/// a single backtest would.
struct SweepPlan: @unchecked Sendable {
    /// A condition over the plan's comparisons.
    indirect enum Node: Sendable {
        case compare(Int)
        case all([Node])
        case any([Node])
        case not(Node)
    }

    struct Leg: Sendable {
        let ticker: AlignedTicker
        let entry: Node
        let exit: Node?
    }

    struct Variant: Sendable {
        let legs: [Leg]
        /// The warnings of the calendar and of every ticker the variant reads, in the full
        /// result's order.
        let warnings: [BacktestWarning]
    }

    /// One comparison: operand indices and the operator.
    struct ComparisonKey: Hashable, Sendable {
        let lhs: Int
        let op: Comparison
        let rhs: Int
    }

    let market: PreparedMarket
    let benchmark: BenchmarkMoments
    /// Unique operands on the calendar.
    private(set) var operands: [[Double]] = []
    /// Each operand's value on the calendar's previous trading day (crossings on day 0).
    private(set) var previousValues: [Double] = []
    private(set) var comparisons: [ComparisonKey] = []
    /// How many condition trees use each comparison.
    private(set) var uses: [Int] = []
    /// The signal of each comparison used more than once (nil for the others until evaluated).
    private(set) var shared: [SignalBits?] = []
    /// nil: run through `VectorEngine` (the plan could not compile it).
    private(set) var variants: [Variant?] = []

    /// Compiles `strategies` against `market` and `indicators` (single-threaded), then
    /// evaluates the shared comparisons on up to `parallelism` threads.
    init(_ strategies: [Strategy], market: PreparedMarket, indicators: IndicatorStore, parallelism: Int) {
        self.market = market
        benchmark = BenchmarkMoments(returns: market.benchmarkReturns)
        var compiler = Compiler(market: market, signals: SignalVectors(market: market, indicators: indicators))
        variants = strategies.map { compiler.compile($0) }
        operands = compiler.operands
        previousValues = compiler.previousValues
        comparisons = compiler.comparisons
        uses = compiler.uses
        shared = Array(repeating: nil, count: comparisons.count)
        let sharedIndices = comparisons.indices.filter { uses[$0] > 1 }
        guard !sharedIndices.isEmpty else { return }
        let workers = max(1, min(parallelism, sharedIndices.count))
        let results = Slots<SignalBits>(count: sharedIndices.count)
        let plan = self
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var i = worker
            while i < sharedIndices.count {
                results.buffer[i] = plan.evaluate(comparison: sharedIndices[i])
                i += workers
            }
        }
        for (i, index) in sharedIndices.enumerated() { shared[index] = results.buffer[i] }
    }

    /// The signal of comparison `index` on the calendar.
    func evaluate(comparison index: Int) -> SignalBits {
        let comparison = comparisons[index]
        return operands[comparison.lhs].withUnsafeBufferPointer { l in
            operands[comparison.rhs].withUnsafeBufferPointer { r in
                SignalBits.compare(
                    l, comparison.op, r, count: market.dates.count,
                    previous: (previousValues[comparison.lhs], previousValues[comparison.rhs]))
            }
        }
    }

    /// The signal of a condition tree: shared comparisons read, the others evaluated now.
    func evaluate(_ node: Node) -> SignalBits {
        switch node {
        case .compare(let index):
            return shared[index] ?? evaluate(comparison: index)
        case .all(let members):
            var result = SignalBits(count: market.dates.count, value: true)
            for member in members { result = result & evaluate(member) }
            return result
        case .any(let members):
            var result = SignalBits(count: market.dates.count)
            for member in members { result = result | evaluate(member) }
            return result
        case .not(let inner):
            return ~evaluate(inner)
        }
    }

    /// Interns operands and comparisons while walking the variants.
    private struct Compiler {
        let market: PreparedMarket
        let signals: SignalVectors
        var operands: [[Double]] = []
        var previousValues: [Double] = []
        var operandIndex: [Operand: Int] = [:]
        /// Operands that failed to materialize, with the error (variants using them fall back).
        var failedOperands: Set<Operand> = []
        var comparisons: [ComparisonKey] = []
        var comparisonIndex: [ComparisonKey: Int] = [:]
        var uses: [Int] = []
        var warningsByTickers: [[String]: [BacktestWarning]] = [:]

        struct Failed: Error {}

        mutating func compile(_ strategy: Strategy) -> Variant? {
            // Stops in ATR multiples need the ATR series per leg, which the plan does not
            // align: such variants take the full path (`VectorEngine`, whose summary is the
            // answer). Every other feature of issue 15 runs in the same `PortfolioLoop` here.
            if strategy.positions.contains(where: { $0.exits.atrPeriod != nil }) { return nil }
            do {
                var legs: [Leg] = []
                // Sized once: appending doubled the buffer 17 times for 95,000 positions, holding
                // up to twice its size at once (heaptrack: 28.6 MB over 34 allocations per grid).
                legs.reserveCapacity(strategy.positions.count)
                var tickers: Set<String> = []
                for position in strategy.positions {
                    tickers.insert(position.ticker)
                    guard let ticker = try? market.ticker(position.ticker, field: "") else { throw Failed() }
                    let entry = try node(position.entry, ticker: position.ticker, tickers: &tickers)
                    let exit = try position.exit.map { (condition: Condition) throws(Failed) in
                        try node(condition, ticker: position.ticker, tickers: &tickers)
                    }
                    legs.append(Leg(ticker: ticker, entry: entry, exit: exit))
                }
                let sorted = tickers.sorted()
                let warnings: [BacktestWarning]
                if let known = warningsByTickers[sorted] {
                    warnings = known
                } else {
                    var list = market.warnings
                    for symbol in sorted { list += market.aligned[symbol]?.warnings ?? [] }
                    warningsByTickers[sorted] = list
                    warnings = list
                }
                return Variant(legs: legs, warnings: warnings)
            } catch {
                return nil
            }
        }

        private mutating func node(_ condition: Condition, ticker: String, tickers: inout Set<String>) throws(Failed) -> Node {
            switch condition {
            case .compare(let lhs, let op, let rhs):
                let l = try operand(lhs, ticker: ticker, tickers: &tickers)
                let r = try operand(rhs, ticker: ticker, tickers: &tickers)
                let comparison = ComparisonKey(lhs: l, op: op, rhs: r)
                if let index = comparisonIndex[comparison] {
                    uses[index] += 1
                    return .compare(index)
                }
                comparisonIndex[comparison] = comparisons.count
                comparisons.append(comparison)
                uses.append(1)
                return .compare(comparisons.count - 1)
            case .all(let members):
                var nodes: [Node] = []
                for member in members { nodes.append(try node(member, ticker: ticker, tickers: &tickers)) }
                return .all(nodes)
            case .any(let members):
                var nodes: [Node] = []
                for member in members { nodes.append(try node(member, ticker: ticker, tickers: &tickers)) }
                return .any(nodes)
            case .not(let inner):
                return .not(try node(inner, ticker: ticker, tickers: &tickers))
            }
        }

        /// The operand with its ticker resolved (the position's when it names none), interned.
        private mutating func operand(_ operand: Operand, ticker: String, tickers: inout Set<String>) throws(Failed) -> Int {
            var resolved = operand
            if case .series(var series) = operand {
                series.ticker = series.ticker ?? ticker
                tickers.insert(series.ticker!)
                resolved = .series(series)
            }
            if let index = operandIndex[resolved] { return index }
            guard !failedOperands.contains(resolved),
                let values = try? signals.values(resolved, ticker: ticker, field: ""),
                values.count == market.dates.count
            else {
                failedOperands.insert(resolved)
                throw Failed()
            }
            operandIndex[resolved] = operands.count
            operands.append(values)
            previousValues.append((try? signals.previousValue(resolved, ticker: ticker, field: "")) ?? .nan)
            return operands.count - 1
        }
    }
}

/// One optional slot per index, written concurrently by workers that each own distinct indices
/// (so no lock is needed); read after the workers are done.
final class Slots<Value>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Value?>

    init(count: Int) {
        buffer = .allocate(capacity: count)
        buffer.initialize(repeating: nil)
    }

    deinit {
        buffer.deinitialize().deallocate()
    }
}
