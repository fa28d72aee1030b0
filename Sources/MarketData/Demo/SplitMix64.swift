import BacktestCore
import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast generator with good statistical quality,
/// and, unlike `SystemRandomNumberGenerator`, reproducible from a seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    /// A generator for one named stream: FNV-1a of the bytes of `name` mixed with `seed`.
    /// Stable across runs and machines, unlike Swift's per-process randomized `Hasher`.
    init(seed: UInt64, stream name: String) {
        self.init(seed: FNV1a64.hash(name.utf8) ^ (seed &* 0x9E37_79B9_7F4A_7C15))
        _ = next()
    }

    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * unit()
    }

    /// Standard normal (Box-Muller; one value per call keeps the stream simple to reason about).
    mutating func normal() -> Double {
        let u1 = max(unit(), 0x1.0p-53)
        let u2 = unit()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}
