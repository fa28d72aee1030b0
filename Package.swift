// swift-tools-version:6.1
//
// backtestd: a backtesting service over a length-prefixed protobuf protocol.
//
// Dependencies point one way, from the edges to the core:
//
//   backtestd (exe) ─▶ BacktestServer ─▶ BacktestProtocol ─▶ BacktestEngine ─▶ BacktestCore
//                         │   │                 └─▶ CBacktestProto ─▶ CProtobufC
//                         │   └─▶ BacktestCache ─▶ MarketData ─▶ BacktestCore
//                         │          └─▶ CHiredis      └─▶ CCurlShim ─▶ CCurl
//   backtest (exe)  ─▶ BacktestClient ─▶ BacktestProtocol
//                   └─▶ BacktestReporting (tables, charts, CSV/JSON/HTML) ─▶ BacktestProtocol
//
// BacktestCore holds the value types every layer shares (dates, bars, the market calendar,
// errors). The C targets are thin: system libraries, one shim for libcurl's variadic calls, and
// the committed protoc-c output (scripts/generate-proto.sh regenerates it).
import PackageDescription

let package = Package(
    name: "backtestd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "backtestd", targets: ["backtestd"]),
        .executable(name: "backtest", targets: ["backtest"]),
        .library(name: "BacktestClient", targets: ["BacktestClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // MARK: C libraries
        .systemLibrary(
            name: "CHiredis", pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CProtobufC", pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]),
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        .target(name: "CBacktestProto", dependencies: ["CProtobufC"]),

        // MARK: Core and domain
        .target(name: "BacktestCore"),
        .target(name: "BacktestEngine", dependencies: ["BacktestCore"]),
        .target(
            name: "MarketData",
            dependencies: [
                "BacktestCore", "CCurlShim",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BacktestCache",
            dependencies: [
                "BacktestCore", "MarketData", "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),

        // MARK: Wire protocol, server, client
        .target(
            name: "BacktestProtocol",
            dependencies: [
                "BacktestCore", "BacktestEngine", "CBacktestProto", "CProtobufC",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .target(
            name: "BacktestServer",
            dependencies: [
                "BacktestCore", "BacktestEngine", "BacktestProtocol", "MarketData", "BacktestCache",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "BacktestClient",
            dependencies: [
                "BacktestCore", "BacktestProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // What the `backtest` CLI prints and writes (tables, charts, JSON, HTML, CSV, --vary): no
        // networking, so all of it is unit-tested without a server.
        .target(name: "BacktestReporting", dependencies: ["BacktestCore", "BacktestEngine", "BacktestProtocol"]),

        // MARK: Executables
        .executableTarget(
            name: "backtestd",
            dependencies: [
                "BacktestServer", "BacktestEngine", "BacktestCore", "MarketData", "BacktestCache",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "backtest",
            dependencies: [
                "BacktestClient", "BacktestEngine", "BacktestReporting", "BacktestBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),

        // `backtest bench` and `backtest loadtest`: orchestration (fake Alpaca, redis-server,
        // backtestd children), workloads, result checking and reports.
        .target(
            name: "BacktestBench",
            dependencies: [
                "BacktestClient", "BacktestProtocol", "BacktestEngine", "BacktestCore", "BacktestTestSupport", "FakeAlpaca",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),

        // Measures the engine alone on shared data in memory: `swift run -c release engine-bench`.
        .executableTarget(
            name: "engine-bench", dependencies: ["BacktestEngine", "BacktestCore", "BacktestTestSupport"]),

        // libFuzzer target for the frame and message decoders (scripts/run-fuzzer.sh).
        .executableTarget(
            name: "FrameFuzzer",
            dependencies: [
                "BacktestProtocol", "BacktestEngine",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),

        // MARK: Tests
        // Test helpers shared by the test targets (locating ../shared, starting redis-server).
        .target(
            name: "BacktestTestSupport",
            dependencies: ["BacktestCore", .product(name: "Logging", package: "swift-log")]),
        // A stand-in for Alpaca's bars API on 127.0.0.1 (tests and `backtest bench`).
        .target(
            name: "FakeAlpaca",
            dependencies: [
                "BacktestCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .testTarget(name: "BacktestCoreTests", dependencies: ["BacktestTestSupport", "BacktestCore"]),
        .testTarget(
            name: "BacktestEngineTests", dependencies: ["BacktestTestSupport", "BacktestEngine", "BacktestCore"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "MarketDataTests",
            dependencies: [
                "BacktestTestSupport", "FakeAlpaca",
                "MarketData", "BacktestCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "BacktestCacheTests",
            dependencies: [
                "BacktestTestSupport", "BacktestCache", "MarketData", "BacktestCore",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "BacktestProtocolTests", dependencies: ["BacktestTestSupport", "BacktestProtocol", "BacktestEngine"]),
        .testTarget(
            name: "BacktestReportingTests",
            dependencies: ["BacktestTestSupport", "BacktestReporting", "BacktestEngine", "BacktestProtocol", "BacktestCore"]),
        .testTarget(
            name: "BacktestBenchTests",
            dependencies: [
                "BacktestBench", "BacktestEngine", "BacktestCore",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),
        .testTarget(
            name: "BacktestServerTests",
            dependencies: [
                "BacktestTestSupport",
                "BacktestServer", "BacktestClient", "BacktestProtocol", "BacktestEngine",
                "MarketData", "BacktestCache",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
    ]
)
