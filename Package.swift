// swift-tools-version:6.1
import PackageDescription

let defaultSwiftSettings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

/// The folder this manifest is in: linker inputs kept in the repository are
/// named from it, as the linker does not run in a known folder.
let packageRoot = String(#filePath.dropLast("/Package.swift".count))

/// Links the functions that starting and serving run next to each other, in
/// the order of `Linker/plugin.order` (section names, for gold), written by
/// `scripts/order-code.sh` from callgrind profiles. A fault on a file-backed
/// page maps the pages around it too (64 KiB, more with large folios), so
/// code spread over the binary becomes resident memory: the echo plugin ran
/// about 2,700 functions (0.7 MB) but kept 5.4 MiB of its text resident
/// (3.5 MiB once ordered). Functions have sections of their own only in
/// builds with `-Xfrontend -function-sections` (scripts/build-release.sh);
/// elsewhere the file orders what it can and changes nothing else.
let pluginCodeOrdering: LinkerSetting = .unsafeFlags(
  ["-Xlinker", "--section-ordering-file=\(packageRoot)/Linker/plugin.order"],
  .when(platforms: [.linux], configuration: .release))

/// How `deckhand` links in release builds: with lld, for its packed
/// relative relocations (`-z pack-relative-relocs`: 33 KB of them instead of
/// 3.9 MB of `.rela.dyn` that the loader read and applied at every start,
/// so the agent stays position-independent, with its code at a random
/// address, for 4 MiB less memory) and its symbol ordering
/// (`Linker/deckhand.order`, symbol names, as pluginCodeOrdering); and
/// without exporting its symbols (a `--static-swift-stdlib` build exports
/// all of them: 3.5 MiB of symbol tables that nothing looks up; the executor
/// hook is linked directly). An idle agent: 41.6 MiB before, 21.5 MiB after,
/// with `scripts/build-release.sh`.
let deckhandLinkerSettings: [LinkerSetting] = [
  .unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(platforms: [.linux])),
  .unsafeFlags(
    [
      "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
      "-Xlinker", "--symbol-ordering-file=\(packageRoot)/Linker/deckhand.order",
      "-Xlinker", "--no-warn-symbol-ordering",
    ], .when(platforms: [.linux], configuration: .release)),
]

/// How Deckhand's plugin executables link (and how a plugin author should
/// link theirs): as a position-dependent executable, as Go links by default,
/// so the loader has no relocations to apply to it at start (1.6 MB of them
/// in a `--static-swift-stdlib` build), and without exporting its symbols
/// (2.6 MB of symbol tables the loader would search). Measured on the echo
/// example: about 1.5 ms faster to start and 2.8 MiB less resident memory.
let pluginLinkerSettings: [LinkerSetting] = [
  .unsafeFlags(["-Xclang-linker", "-no-pie", "-Xlinker", "--no-export-dynamic"], .when(platforms: [.linux])),
  pluginCodeOrdering,
]

let package = Package(
  name: "Deckhand",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "deckhand", targets: ["deckhand"]),
    .library(name: "DeckhandPlugin", targets: ["DeckhandPlugin"]),
    .library(name: "DeckhandPluginTracing", targets: ["DeckhandPluginTracing"]),
    .executable(name: "deckhand-example-echo", targets: ["deckhand-example-echo"]),
    .executable(name: "deckhand-example-counter", targets: ["deckhand-example-counter"]),
    .executable(name: "deckhand-bench", targets: ["deckhand-bench"]),
  ],
  dependencies: [
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    // No default traits asked for here: BinaryDelimitedStreams pulls full
    // Foundation into SwiftProtobuf. swift-otel (below) asks for them, and a
    // package's traits are the union of what its dependents ask, so they are
    // on: measured on the static echo example, +0.9 MB of binary, +0.12 MiB
    // resident (12.90 → 13.02 MiB) and no change in launch time (three
    // rounds each, `deckhand plugin bench`).
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    // 2.101: NIOCore's TimeAmount(Duration), which the lean gRPC path uses.
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-http2", from: "1.36.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    // Tests only: reads back the Kubernetes YAML that the core writes.
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    // The PostgreSQL store (issue 17): a maintained client, not a
    // hand-written protocol.
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    // Metrics (issue 18): the Prometheus text format from a maintained
    // registry, not written here.
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    // Traces (issue 18): spans through swift-distributed-tracing, exported
    // over OTLP/gRPC by swift-otel. Only the gRPC exporter: everything here
    // already speaks gRPC, and the HTTP one would add async-http-client.
    .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
    .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPGRPC"]),
    // The web UI (issue 19): HTTPS pages and server-sent events on NIO.
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
  ],
  targets: [
    // Models, manifest parsing, the go-plugin handshake and the supervisor's
    // state machine. No I/O.
    .target(
      name: "DeckhandCore",
      swiftSettings: defaultSwiftSettings
    ),
    // The messages a plugin speaks (plugin_comm, grpc.health.v1, go-plugin's
    // controller, the Host API), generated without gRPC stubs
    // (scripts/generate-protos.sh): all the plugin SDK needs.
    .target(
      name: "DeckhandPluginProtocol",
      dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
      swiftSettings: defaultSwiftSettings
    ),
    // Generated protobuf and gRPC code (scripts/generate-protos.sh): every
    // service's gRPC stubs, Deckhand's own messages, and the plugin messages
    // re-exported.
    .target(
      name: "DeckhandProtocol",
      dependencies: [
        "DeckhandPluginProtocol",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // A lean gRPC path on swift-nio-http2: unary calls handled on the
    // connection's event loop, standard gRPC on the wire.
    .target(
      name: "DeckhandGRPC",
      dependencies: [
        "CDeckhandExecutorHook",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // posix_spawn into a new process group, pidfd: what Swift cannot call.
    .target(name: "CDeckhandSystem"),
    // zlib's inflate, for unpacking plugin packages in process
    // (PackageArchive); Debian's zlib1g-dev.
    .target(name: "CDeckhandInflate", linkerSettings: [.linkedLibrary("z")]),
    // Swift concurrency's global enqueue hook, linked directly (the SDK's
    // event-loop executor and deckhand's, in static builds too).
    .target(name: "CDeckhandExecutorHook"),
    // Processes, sockets and gRPC: launching and supervising plugins.
    .target(
      name: "DeckhandPluginHost",
      dependencies: [
        "DeckhandCore",
        "DeckhandRuntime",
        "DeckhandProtocol",
        "DeckhandGRPC",
        "CDeckhandSystem",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The plugin SDK for Swift authors: one protocol, one function. Lean on
    // purpose: no grpc-swift-2, no NIOSSL, no full Foundation.
    .target(
      name: "DeckhandPlugin",
      dependencies: [
        "DeckhandCore",
        "DeckhandPluginProtocol",
        "DeckhandGRPC",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        // The API only (no exporter): a plugin continues the host's trace
        // when its author bootstraps a tracer (DeckhandPluginTracing does).
        .product(name: "Tracing", package: "swift-distributed-tracing"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // Opt-in tracing for SDK plugins: exports the plugin's spans over OTLP
    // with swift-otel when the host passes OTEL_EXPORTER_OTLP_ENDPOINT.
    // Apart from the SDK so that plugins without it stay small.
    .target(
      name: "DeckhandPluginTracing",
      dependencies: [
        "DeckhandPlugin",
        .product(name: "OTel", package: "swift-otel"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The SDK's service on grpc-swift-2, for the side-by-side benchmark.
    .target(
      name: "DeckhandPluginGRPCSwift",
      dependencies: [
        "DeckhandPlugin",
        "DeckhandProtocol",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
      ],
      path: "Benchmarks/DeckhandPluginGRPCSwift",
      swiftSettings: defaultSwiftSettings
    ),
    .executableTarget(
      name: "deckhand-bench-plugin-grpc-swift",
      dependencies: ["DeckhandPlugin", "DeckhandPluginGRPCSwift"],
      path: "Benchmarks/GRPCSwiftEcho",
      swiftSettings: defaultSwiftSettings,
      linkerSettings: pluginLinkerSettings
    ),
    // Metrics for the server and the agent: the registry, the /metrics
    // endpoint and the gRPC interceptor that counts calls.
    .target(
      name: "DeckhandTelemetry",
      dependencies: [
        "DeckhandCore",
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
        .product(name: "OTel", package: "swift-otel"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The node agent: installed plugins kept in SQLite and re-attached
    // across restarts, and the JSON command socket.
    .target(
      name: "DeckhandAgent",
      dependencies: [
        "DeckhandCore",
        "DeckhandGRPC",
        "DeckhandPluginHost",
        "DeckhandProtocol",
        "DeckhandClient",
        "DeckhandRuntime",
        "DeckhandTelemetry",
        "CDeckhandSystem",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "TOMLKit", package: "TOMLKit"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // What the server and the agent share at run time: the bounded pool
    // that blocking work (SQLite, tar, files) runs on.
    .target(
      name: "DeckhandRuntime",
      dependencies: [
        "DeckhandCore",
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "GRDB", package: "GRDB.swift"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // What a client of the server needs (agents and the CLI): the TLS
    // client that trusts a server by its token, endpoints, the CLI's
    // settings file, plugin packages, display names of proto states.
    .target(
      name: "DeckhandClient",
      dependencies: [
        "DeckhandCore",
        "CDeckhandInflate",
        "DeckhandProtocol",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The control plane: `deckhand server` (dispatcher for agents, the
    // operator's API, SQLite state, its own CA).
    .target(
      name: "DeckhandServer",
      dependencies: [
        "DeckhandCore",
        "DeckhandClient",
        "DeckhandRuntime",
        "DeckhandTelemetry",
        "DeckhandProtocol",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "TOMLKit", package: "TOMLKit"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdTLS", package: "hummingbird"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The `deckhand` command's subcommands.
    .target(
      name: "DeckhandCLI",
      dependencies: [
        "DeckhandCore",
        "DeckhandClient",
        "DeckhandRuntime",
        "DeckhandAgent",
        "DeckhandServer",
        "DeckhandPluginHost",
        "DeckhandProtocol",
        "DeckhandTelemetry",
        "CDeckhandSystem",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .executableTarget(
      name: "deckhand",
      dependencies: [
        "DeckhandCLI",
        "DeckhandGRPC",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: defaultSwiftSettings,
      linkerSettings: deckhandLinkerSettings
    ),
    // Deckhand's benchmarks (dispatcher, jobs, command socket, Host API),
    // apart from the product: nothing in Sources depends on them.
    .target(
      name: "DeckhandBenchmarks",
      dependencies: [
        "DeckhandCore",
        "DeckhandAgent",
        "DeckhandClient",
        "DeckhandGRPC",
        "DeckhandPluginHost",
        "DeckhandProtocol",
        "DeckhandTestSupport",
        "CDeckhandSystem",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Benchmarks/DeckhandBenchmarks",
      swiftSettings: defaultSwiftSettings
    ),
    .executableTarget(
      name: "deckhand-bench",
      dependencies: [
        "DeckhandBenchmarks",
        "DeckhandCore",
        "DeckhandGRPC",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Benchmarks/DeckhandBench",
      swiftSettings: defaultSwiftSettings
    ),
    // Helpers the test targets and benchmarks share: workspaces, fixtures,
    // server and agent processes, free ports, `eventually`.
    .target(
      name: "DeckhandTestSupport",
      dependencies: [
        "DeckhandCore",
        "DeckhandAgent",
        "DeckhandPluginHost",
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .executableTarget(
      name: "deckhand-example-echo",
      dependencies: ["DeckhandPlugin"],
      path: "Examples/Echo/Sources",
      swiftSettings: defaultSwiftSettings,
      linkerSettings: pluginLinkerSettings
    ),
    // Counts Apply calls in its Host API key-value store.
    .executableTarget(
      name: "deckhand-example-counter",
      dependencies: ["DeckhandPlugin"],
      path: "Examples/Counter/Sources",
      swiftSettings: defaultSwiftSettings,
      linkerSettings: pluginLinkerSettings
    ),
    // A plugin that misbehaves on request (crash, ignore Stop, slow start,
    // stdout chatter), for the integration tests.
    .executableTarget(
      name: "deckhand-test-plugin",
      dependencies: ["DeckhandPlugin"],
      path: "Tests/Fixtures/TestPlugin",
      swiftSettings: defaultSwiftSettings,
      linkerSettings: pluginLinkerSettings
    ),
    // An SDK plugin with DeckhandPluginTracing, for the traces tests.
    .executableTarget(
      name: "deckhand-test-traced-plugin",
      dependencies: [
        "DeckhandPlugin", "DeckhandPluginTracing", .product(name: "Tracing", package: "swift-distributed-tracing"),
      ],
      path: "Tests/Fixtures/TracedPlugin",
      swiftSettings: defaultSwiftSettings,
      linkerSettings: pluginLinkerSettings
    ),
    .testTarget(
      name: "DeckhandCoreTests",
      dependencies: ["DeckhandCore", "DeckhandTestSupport", .product(name: "Yams", package: "Yams")],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandGRPCTests",
      dependencies: [
        "DeckhandGRPC", .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandPluginHostTests",
      dependencies: [
        "DeckhandCore", "DeckhandGRPC", "DeckhandPluginHost", "DeckhandProtocol", "DeckhandTestSupport",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandTelemetryTests",
      dependencies: [
        "DeckhandTelemetry", "DeckhandCore", "DeckhandTestSupport",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "Prometheus", package: "swift-prometheus"), .product(name: "Logging", package: "swift-log"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
        .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandClientTests",
      dependencies: [
        "DeckhandClient", "DeckhandCore", "DeckhandProtocol", "DeckhandTestSupport",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandServerTests",
      dependencies: [
        "DeckhandServer", "DeckhandCore", "DeckhandProtocol", "DeckhandTestSupport",
        .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandAgentTests",
      dependencies: [
        "DeckhandAgent", "DeckhandClient", "DeckhandCore", "DeckhandPluginHost", "DeckhandTestSupport",
        "DeckhandTelemetry",
        "CDeckhandSystem",
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandRuntimeTests",
      dependencies: ["DeckhandRuntime", "DeckhandCore"],
      swiftSettings: defaultSwiftSettings
    ),
    .testTarget(
      name: "DeckhandIntegrationTests",
      dependencies: [
        "DeckhandCore",
        "DeckhandClient",
        "DeckhandTestSupport",
        "DeckhandAgent",
        "DeckhandServer",
        "DeckhandGRPC",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        "DeckhandPluginHost",
        "DeckhandProtocol",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
  ]
)
