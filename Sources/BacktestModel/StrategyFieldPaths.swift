import BacktestCore

// Field paths inside a strategy, in the proto's field names (proto/backtest.proto): the one place
// the shape of Condition, Compare, Operand and Series is spelled for error paths. Decoding,
// validation, analysis and the engines build their paths with these, so every layer names a
// field the same way: `….entry.compare.lhs.series.indicator.params[0]`,
// `….exit.all.conditions[1].not.compare.op`.

extension FieldPath {
    /// Position `index` of the strategy at this path.
    public func position(_ index: Int) -> FieldPath { child("positions", index: index) }

    // `compareOperand` and `member` add their two proto levels as one `FieldPath` level (a dotted
    // name renders exactly as two levels): one allocation instead of two, per operand and member
    // of every condition walked.

    /// `compare.lhs` / `compare.rhs` of the condition at this path.
    public func compareOperand(lhs: Bool) -> FieldPath { child(lhs ? "compare.lhs" : "compare.rhs") }

    /// Member `index` of the `all` (or `any`) list of the condition at this path:
    /// `all.conditions[index]`.
    public func member(_ index: Int, ofAll all: Bool) -> FieldPath {
        child(all ? "all.conditions" : "any.conditions", index: index)
    }

    /// The negated condition of the `not` condition at this path.
    public var negated: FieldPath { child("not") }

    /// The series of the operand at this path: `series`.
    public var series: FieldPath { child("series") }
}

extension Strategy {
    /// Every indicator the strategy's conditions read, with its path under `root`
    /// (`root.positions[0].entry.compare.lhs.series.indicator`), in order.
    public func indicatorSpecs(root: FieldPath) -> [(spec: IndicatorSpec, path: FieldPath)] {
        var found: [(spec: IndicatorSpec, path: FieldPath)] = []
        func walk(_ condition: Condition, _ path: FieldPath) {
            switch condition {
            case .compare(let lhs, _, let rhs):
                for (operand, isLHS) in [(lhs, true), (rhs, false)] {
                    if case .series(let series) = operand, case .indicator(let spec) = series.source {
                        found.append((spec, path.compareOperand(lhs: isLHS).series.child("indicator")))
                    }
                }
            case .all(let members), .any(let members):
                let isAll = if case .all = condition { true } else { false }
                for (i, member) in members.enumerated() { walk(member, path.member(i, ofAll: isAll)) }
            case .not(let inner):
                walk(inner, path.negated)
            }
        }
        for (p, position) in positions.enumerated() {
            walk(position.entry, root.position(p).child("entry"))
            if let exit = position.exit { walk(exit, root.position(p).child("exit")) }
        }
        return found
    }
}
