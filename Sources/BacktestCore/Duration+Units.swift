extension Duration {
    /// The duration in (fractional) milliseconds, as run statistics report it.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
