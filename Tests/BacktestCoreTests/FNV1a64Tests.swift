import BacktestCore
import Testing

@Suite("FNV-1a 64")
struct FNV1a64Tests {
    @Test("the reference vectors", arguments: [
        ("", 0xcbf2_9ce4_8422_2325 as UInt64), ("a", 0xaf63_dc4c_8601_ec8c), ("foobar", 0x8594_4171_f739_67e8),
    ])
    func vectors(text: String, expected: UInt64) {
        #expect(FNV1a64.hash(Array(text.utf8)) == expected)
        #expect(FNV1a64.hash(text.utf8) == expected, "non-contiguous input hashes the same")
    }

    @Test("a word is its little-endian bytes")
    func words() {
        var byWord = FNV1a64()
        byWord.add(0x0807_0605_0403_0201 as UInt64)
        #expect(byWord.value == FNV1a64.hash([1, 2, 3, 4, 5, 6, 7, 8] as [UInt8]))
    }
}
