// swift-tools-version:6.1
//
// backtestd: a backtesting service over a length-prefixed protobuf protocol.
//
// Dependencies point one way, from the edges to the core (arrows: "imports"; every import is a
// declared dependency, checked by `swift build --explicit-target-dependency-import-check error`;
// the direct edges to BacktestModel and BacktestCore that most targets also have are left out):
//
//   backtestd (exe) ─▶ BacktestServer ─▶ BacktestService ─┬─▶ BacktestEngine ─────────▶ BacktestModel ─▶ BacktestCore
//                      (NIO transport)    (application)   ├─▶ BacktestCache ─▶ MarketData ─▶ BacktestCore
//                             │                           │      └─▶ CHiredis      └─▶ CCurlShim ─▶ CCurl
//                             └───────────────────────────┴─▶ BacktestProtocol ─▶ BacktestModel
//                                                                └─▶ CBacktestProto ─▶ CProtobufC
//   backtest (exe) ─┬─▶ BacktestCommandLine ─▶ BacktestClient ─▶ BacktestProtocol
//                   ├─▶ BacktestClient
//                   └─▶ BacktestReporting (tables, charts, CSV/JSON/HTML) ─▶ BacktestModel
//   backtest-bench (exe) ─▶ BacktestBench ─▶ BacktestClient, BacktestProtocol, BacktestRawClient, FakeAlpaca, BacktestTestSupport, BacktestReporting
//   BacktestRawClient (raw frames: the server tests and `loadtest --hostile`) ─▶ BacktestProtocol
//   engine-bench (exe)   ─▶ BacktestEngine, BacktestProtocol (the `prepare` mode decodes a request), BacktestTestSupport
//   backtestd (exe) ─▶ BacktestWeb (--http-port: dashboard, HTTP/JSON, Hummingbird) ─▶ BacktestService, BacktestReporting
//
// BacktestServer and BacktestWeb know the application only through the `BacktestService` protocol. The client
// library's closure (BacktestClient, BacktestProtocol, BacktestModel, BacktestCore, the protobuf-c
// bridge, NIO) has no engine, cache, market data, hiredis or curl.
//
// BacktestCore holds what market data and the model share (dates, bars, the market calendar,
// BacktestError); BacktestModel the request and result types every side exchanges. The C targets
// are thin: system libraries, one shim for libcurl's variadic calls, and the committed protoc-c
// output (scripts/generate-proto.sh regenerates it). docs/architecture.md follows a call through.
import PackageDescription

let package = Package(
    name: "backtestd",
    // macOS 15: swift-configuration's availability floor.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "backtestd", targets: ["backtestd"]),
        .executable(name: "backtest", targets: ["backtest"]),
        .executable(name: "backtest-bench", targets: ["backtest-bench"]),
        .library(name: "BacktestClient", targets: ["BacktestClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // backtestd's configuration reader (flags, then environment, then defaults).
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        // backtestd's web dashboard (--http-port): HTTP/JSON and server-sent events.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
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

        // MARK: Core and model
        .target(name: "BacktestCore"),
        .target(name: "BacktestModel", dependencies: ["BacktestCore"]),

        // MARK: Domain
        .target(name: "BacktestEngine", dependencies: ["BacktestCore", "BacktestModel"]),
        .target(
            name: "MarketData",
            dependencies: [
                "BacktestCore", "CCurlShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
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

        // MARK: Wire protocol, application, server, client
        .target(
            name: "BacktestProtocol",
            dependencies: [
                "BacktestCore", "BacktestModel", "CBacktestProto", "CProtobufC",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        // The application behind the wire: the `BacktestService` protocol and CallContext, the
        // engine-backed service, the pipeline (analysis, data, indicators, engine), batch jobs and
        // the scheduled cache purge.
        .target(
            name: "BacktestService",
            dependencies: [
                "BacktestCore", "BacktestModel", "BacktestEngine", "BacktestProtocol", "MarketData", "BacktestCache",
                .product(name: "NIOCore", package: "swift-nio"),
                // NIOThreadPool only (ComputeThreads: simulations off the cooperative pool).
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The NIO transport only: framing, streams, limits, timers, shutdown. It reaches the
        // application through the `BacktestService` protocol alone.
        .target(
            name: "BacktestServer",
            dependencies: [
                "BacktestCore", "BacktestModel", "BacktestProtocol", "BacktestService",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .target(
            name: "BacktestClient",
            dependencies: [
                "BacktestCore", "BacktestModel", "BacktestProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]),

        // The web dashboard (`backtestd --http-port`): one page, a small HTTP/JSON API and a
        // server-sent-event stream, over the same `BacktestService` the TCP server calls. The
        // page's HTML, JS and CSS are embedded in the binary (no build step, nothing fetched).
        .target(
            name: "BacktestWeb",
            dependencies: [
                "BacktestCore", "BacktestModel", "BacktestProtocol", "BacktestService", "BacktestReporting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [
                .embedInCode("Assets/index.html"), .embedInCode("Assets/dashboard.js"), .embedInCode("Assets/dashboard.css"),
            ]),

        // What the `backtest` CLI prints and writes (tables, charts, JSON, HTML, CSV, --vary): no
        // networking, so all of it is unit-tested without a server.
        .target(name: "BacktestReporting", dependencies: ["BacktestCore", "BacktestModel"]),
        // What `backtest` and `backtest-bench` share: --host/--port and how errors are printed.
        .target(
            name: "BacktestCommandLine",
            dependencies: [
                "BacktestCore", "BacktestClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // What backtestd is made of, as a library so it is tested: the one configuration reader
        // (every flag and BACKTESTD_* variable parsed in one place) and the domain setup.
        .target(
            name: "BacktestDaemon",
            dependencies: [
                "BacktestServer", "BacktestService", "BacktestEngine", "BacktestCore", "MarketData", "BacktestCache",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        // MARK: Executables
        .executableTarget(
            name: "backtestd",
            dependencies: [
                "BacktestDaemon", "BacktestServer", "BacktestWeb",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "backtest",
            dependencies: [
                "BacktestClient", "BacktestCommandLine", "BacktestModel", "BacktestCore", "BacktestReporting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Benchmarks and load tests, apart from `backtest` so the user's client links no fake
        // servers or test support.
        .executableTarget(
            name: "backtest-bench",
            dependencies: [
                "BacktestBench", "BacktestClient", "BacktestCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // `backtest-bench bench` and `backtest-bench loadtest`: orchestration (fake Alpaca,
        // redis-server, backtestd children), workloads, result checking and reports.
        // `loadtest --hostile` speaks the protocol itself (raw frames, BacktestRawClient) to send what
        // the client library never would.
        .target(
            name: "BacktestBench",
            dependencies: [
                "BacktestClient", "BacktestModel", "BacktestCore", "BacktestReporting", "BacktestTestSupport", "FakeAlpaca",
                "BacktestProtocol", "BacktestRawClient",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),

        // The one raw-frame client: a bare TCP connection that writes exactly the bytes it is
        // given (bad prefaces, partial frames, protocol violations) and reads the frames and the
        // close the server answers with. The server tests and `loadtest --hostile` share it; a
        // target of its own because the bench is a product tool (it must not link a test target)
        // and BacktestTestSupport and BacktestProtocol need no NIOPosix or client bootstrap.
        .target(
            name: "BacktestRawClient",
            dependencies: [
                "BacktestProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        // Measures the engine alone on shared data in memory: `swift run -c release engine-bench`.
        .executableTarget(
            name: "engine-bench",
            dependencies: [
                "BacktestEngine", "BacktestModel", "BacktestCore", "BacktestTestSupport", "BacktestProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),

        // libFuzzer target for the frame and message decoders (scripts/run-fuzzer.sh).
        .executableTarget(
            name: "FrameFuzzer",
            dependencies: [
                "BacktestProtocol", "BacktestModel",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),

        // MARK: Tests
        // Test helpers shared by the test targets (locating ../shared, starting redis-server).
        .target(
            name: "BacktestTestSupport",
            dependencies: ["BacktestCore", .product(name: "Logging", package: "swift-log")]),
        // A stand-in for a test process that gets killed (ChildProcessLifetimeTests).
        .executableTarget(name: "child-lifetime-probe", dependencies: ["BacktestTestSupport"]),
        // A stand-in for Alpaca's bars API on 127.0.0.1 (tests and `backtest-bench bench`).
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
            name: "BacktestEngineTests",
            dependencies: ["BacktestTestSupport", "BacktestEngine", "BacktestModel", "BacktestCore"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "MarketDataTests",
            dependencies: ["BacktestTestSupport", "FakeAlpaca", "MarketData", "BacktestCore"]),
        .testTarget(
            name: "BacktestCacheTests",
            dependencies: [
                "BacktestTestSupport", "BacktestCache", "MarketData", "BacktestCore",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "BacktestProtocolTests",
            dependencies: [
                "BacktestProtocol", "BacktestModel", "BacktestCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]),
        .testTarget(
            name: "BacktestReportingTests",
            dependencies: ["BacktestTestSupport", "BacktestReporting", "BacktestEngine", "BacktestModel", "BacktestCore"]),
        .testTarget(
            name: "BacktestBenchTests",
            dependencies: [
                "BacktestBench", "BacktestModel", "BacktestCore", "BacktestReporting",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),
        .testTarget(
            name: "BacktestDaemonTests",
            dependencies: [
                "BacktestDaemon", "BacktestServer", "BacktestCache", "MarketData", "BacktestCore", "BacktestCommandLine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(
            name: "BacktestWebTests",
            dependencies: [
                "BacktestWeb", "BacktestProtocol", "BacktestService", "BacktestEngine", "BacktestModel", "BacktestCore", "MarketData",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(
            name: "BacktestServerTests",
            dependencies: [
                "BacktestTestSupport", "BacktestRawClient",
                "BacktestServer", "BacktestService", "BacktestClient", "BacktestProtocol", "BacktestEngine",
                "BacktestModel", "BacktestCore", "MarketData", "BacktestCache",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
    ]
)
