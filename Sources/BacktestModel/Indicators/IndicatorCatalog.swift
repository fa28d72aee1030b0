import BacktestCore

/// What the engine knows about one indicator type: its parameters (with defaults), its outputs
/// and which bar columns it reads. The catalog is the single place validation, canonical keys and
/// computation agree on.
public struct IndicatorDefinition: Sendable {
    public enum Parameter: Sendable {
        /// A whole number of bars, at least `minimum`.
        case period(name: String, minimum: Int, defaultValue: Int)
        /// A positive real number (a multiple of a standard deviation).
        case positive(name: String, defaultValue: Double)

        public var name: String {
            switch self {
            case .period(let name, _, _), .positive(let name, _): name
            }
        }

        var defaultValue: Double {
            switch self {
            case .period(_, _, let value): Double(value)
            case .positive(_, let value): value
            }
        }
    }

    public var type: String
    public var parameters: [Parameter]
    /// The first is the primary output. Single-output indicators list one.
    public var outputs: [String]
    public var summary: String
}

public enum IndicatorCatalog {
    public static let definitions: [String: IndicatorDefinition] = {
        func period(_ value: Int, min: Int = 1) -> IndicatorDefinition.Parameter {
            .period(name: "period", minimum: min, defaultValue: value)
        }
        func period(_ name: String, _ value: Int, min: Int = 1) -> IndicatorDefinition.Parameter {
            .period(name: name, minimum: min, defaultValue: value)
        }
        let all: [IndicatorDefinition] = [
            .init(type: "sma", parameters: [period(30)], outputs: ["value"], summary: "simple moving average of close"),
            .init(type: "ema", parameters: [period(30)], outputs: ["value"], summary: "exponential moving average of close, seeded with the SMA (TA-Lib)"),
            .init(type: "wma", parameters: [period(30)], outputs: ["value"], summary: "linearly weighted moving average of close"),
            .init(type: "rsi", parameters: [period(14, min: 2)], outputs: ["value"], summary: "Wilder's relative strength index"),
            .init(
                type: "macd", parameters: [period("fast", 12, min: 2), period("slow", 26, min: 2), period("signal", 9)],
                outputs: ["macd", "signal", "hist"], summary: "MACD line, signal line and histogram (TA-Lib)"),
            .init(
                type: "bbands", parameters: [period(20, min: 2), .positive(name: "deviations", defaultValue: 2)],
                outputs: ["middle", "upper", "lower", "percent_b"], summary: "Bollinger bands on the SMA, population stddev; percent_b = (close-lower)/(upper-lower)"),
            .init(type: "atr", parameters: [period(14)], outputs: ["value"], summary: "Wilder's average true range"),
            .init(type: "stddev", parameters: [period(20, min: 2)], outputs: ["value"], summary: "population standard deviation of close"),
            .init(type: "roc", parameters: [period(10)], outputs: ["value"], summary: "rate of change in percent"),
            .init(
                type: "stoch", parameters: [period("fastk", 5), period("slowk", 3), period("slowd", 3)],
                outputs: ["k", "d"], summary: "slow stochastic %K and %D (SMA smoothing, TA-Lib STOCH)"),
            .init(type: "adx", parameters: [period(14, min: 2)], outputs: ["value"], summary: "Wilder's average directional index"),
            .init(type: "obv", parameters: [], outputs: ["value"], summary: "on-balance volume"),
            .init(type: "highest", parameters: [period(20)], outputs: ["value"], summary: "highest close of the last N bars (TA-Lib MAX)"),
            .init(type: "lowest", parameters: [period(20)], outputs: ["value"], summary: "lowest close of the last N bars (TA-Lib MIN)"),
            .init(type: "return_mean", parameters: [period(20)], outputs: ["value"], summary: "mean of the last N daily returns"),
            .init(type: "return_stddev", parameters: [period(20, min: 2)], outputs: ["value"], summary: "population stddev of the last N daily returns"),
            .init(type: "cumulative_return", parameters: [period(20)], outputs: ["value"], summary: "close[t] / close[t-N] - 1"),
            .init(type: "max_drawdown", parameters: [period(20, min: 2)], outputs: ["value"], summary: "largest peak-to-trough fall within the last N closes, positive fraction"),
        ]
        return Dictionary(uniqueKeysWithValues: all.map { ($0.type, $0) })
    }()

    /// Largest period accepted: longer than any daily history we hold, so a typo like 20000 is
    /// caught instead of silently producing an all-undefined series.
    public static let maximumPeriod = 10_000

    public static func definition(_ type: String) -> IndicatorDefinition? {
        definitions[type] ?? definitions[type.lowercased()]
    }

    /// The spec with its type lowercased, missing trailing parameters set to their defaults and an
    /// empty output replaced by the primary one. Two specs denote the same series exactly when
    /// their normalized forms are equal. Throws INVALID_ARGUMENT naming `field` (the spec's path),
    /// which is evaluated only then: a valid spec builds no path text.
    public static func normalize(_ spec: IndicatorSpec, field: @autoclosure () -> String) throws(BacktestError) -> IndicatorSpec {
        // Types and outputs are lower-case ASCII: a spec that matches as it is (every spec the
        // engine normalizes more than once does) needs no lower-cased copy.
        var type = spec.type
        var found = definitions[type]
        if found == nil {
            type = type.lowercased()
            found = definitions[type]
        }
        guard let definition = found else {
            let known = definitions.keys.sorted().joined(separator: ", ")
            throw .invalidArgument("unknown indicator \(quotedInput(spec.type)) (known: \(known))", field: field() + ".type")
        }
        guard spec.params.count <= definition.parameters.count else {
            throw .invalidArgument(
                "\(type) takes \(definition.parameters.count) parameter(s), got \(spec.params.count)",
                field: field() + ".params")
        }
        // The spec's own array when it lists every parameter (the usual case: no copy).
        var params = spec.params
        for (index, parameter) in definition.parameters.enumerated() {
            let value = index < spec.params.count ? spec.params[index] : parameter.defaultValue
            switch parameter {
            case .period(let name, let minimum, _):
                guard value.isFinite, value == value.rounded(), value >= Double(minimum), value <= Double(maximumPeriod) else {
                    throw .invalidArgument(
                        "\(type) \(name) must be a whole number of bars in \(minimum)...\(maximumPeriod), got \(format(value))",
                        field: "\(field()).params[\(index)]")
                }
            case .positive(let name, _):
                guard value.isFinite, value > 0 else {
                    throw .invalidArgument("\(type) \(name) must be a positive number, got \(format(value))", field: "\(field()).params[\(index)]")
                }
            }
            if index >= spec.params.count { params.append(value) }
        }
        if type == "macd", params[0] >= params[1] {
            throw .invalidArgument("macd fast period (\(format(params[0]))) must be below the slow period (\(format(params[1])))", field: field() + ".params")
        }
        let output = spec.output.isEmpty ? definition.outputs[0]
            : definition.outputs.contains(spec.output) ? spec.output : spec.output.lowercased()
        guard definition.outputs.contains(output) else {
            throw .invalidArgument(
                "\(type) has no output \(quotedInput(spec.output)) (outputs: \(definition.outputs.joined(separator: ", ")))",
                field: field() + ".output")
        }
        return IndicatorSpec(type: type, params: params, output: output)
    }

    /// A request names every parameter of an indicator: `sma` without a period is an error, not
    /// `sma:30` (the defaults serve the CLI's key shorthand only, e.g. "rsi" = rsi:14).
    /// - Throws: INVALID_ARGUMENT on `field.params` saying which parameters are missing (`field` is
    ///   evaluated only then).
    public static func requireParameters(_ spec: IndicatorSpec, field: @autoclosure () -> String) throws(BacktestError) {
        guard let definition = definition(spec.type), spec.params.count < definition.parameters.count else { return }
        let missing = definition.parameters[spec.params.count...].map(\.name)
        throw .invalidArgument(
            "\(definition.type) needs \(definition.parameters.count) parameter(s) (\(definition.parameters.map(\.name).joined(separator: ", "))), got \(spec.params.count): \(missing.joined(separator: ", ")) missing; e.g. params \(example(definition))",
            field: field() + ".params")
    }

    /// The parameters of `definition` with their usual values, as a request would list them:
    /// "[12, 26, 9]" for macd, "[]" for obv (error messages show it as an example).
    public static func example(_ definition: IndicatorDefinition) -> String {
        "[" + definition.parameters.map { format($0.defaultValue) }.joined(separator: ", ") + "]"
    }

    /// A number as it appears in canonical keys: no trailing ".0" ("20", "2.5").
    public static func format(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
