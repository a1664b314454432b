internal import DeckhandAgent
internal import DeckhandCore
internal import DeckhandGRPC
package import DeckhandPluginHost
internal import DeckhandProtocol
internal import Foundation
internal import Logging
internal import SwiftProtobuf

/// `deckhand bench hostapi`: Host API round trips as a plugin makes them
/// (KV get, KV set, CallPlugin to another plugin's GetStatus) with one
/// caller and with many on one connection, and what limits and namespaces
/// add to a plugin's launch.
///
/// Runs a plugin manager of its own on a throw-away state directory (the
/// same SQLite store, Host API servers and plugin processes as the agent),
/// with two copies of the echo example: `caller` (allowed to call
/// `target`) and `target`.
package struct HostAPIBenchmark: Sendable {
  /// What to run.
  package struct Options: Sendable {
    /// The plugin binary (the echo example).
    package var plugin: String
    /// Sequential calls for each 1-caller figure.
    package var calls = 3000
    /// Concurrent callers.
    package var callers = 16
    /// Length of each concurrent phase.
    package var duration: Duration = .seconds(2)
    /// Launches measured for each of plain and contained.
    package var launches = 15
    package init(plugin: String) {
      self.plugin = plugin
    }
  }

  let options: Options

  package init(options: Options) {
    self.options = options
  }

  package func run(report: @escaping @Sendable (PluginBenchmark.Figure) -> Void) async throws {
    let folder = FileManager.default.temporaryDirectory.path + "/deckhand-bench-hostapi-\(getpid())"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var logger = Logger(label: "deckhand.bench")
    logger.logLevel = .warning
    let paths = HostPaths(stateDirectory: "\(folder)/state", runtimeDirectory: "\(folder)/run")
    let store = try AgentStore(stateDirectory: paths.stateDirectory)
    let launcher = PluginLauncher(paths: paths)
    // This process calls the Host API in the plugin's place.
    let manager = PluginManager(
      store: store, launcher: launcher, shutdownBehaviour: .stopPlugin, hostAPIAlsoAdmits: getpid(), logger: logger)

    func manifestFile(_ fields: [String: JSONValue]) throws -> String {
      guard case .string(let name) = fields["name"], let bytes = JSONValue.object(fields).serialized() else {
        throw DeckhandError(.internalError, "benchmark manifest")
      }
      let path = "\(folder)/\(name).json"
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      return path
    }
    let base: [String: JSONValue] = ["version": "1.0.0", "entrypoint": .string(options.plugin)]
    // The supervisors run as children of this task group; shutdown ends it.
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await manager.run() }
      do {
        try await measureCalls(manager: manager, manifestFile: manifestFile, base: base, paths: paths, report: report)
      } catch {
        await manager.shutdown()
        throw error
      }
      await manager.shutdown()
      try await group.waitForAll()
    }
    try await measureLaunches(folder: folder, launcher: launcher, base: base, report: report)
  }

  /// Host API round trips against two installed copies of the plugin.
  private func measureCalls(
    manager: PluginManager, manifestFile: ([String: JSONValue]) throws -> String, base: [String: JSONValue],
    paths: HostPaths, report: @escaping @Sendable (PluginBenchmark.Figure) -> Void
  ) async throws {
    _ = try await manager.install(manifestPath: try manifestFile(base.merging(["name": "target"]) { $1 }))
    _ = try await manager.install(
      manifestPath: try manifestFile(
        base.merging(["name": "caller", "permissions": .object(["call": .array(["target"])])]) { $1 }))

    let client = try await LeanGRPCClient.connect(unixSocket: "\(paths.runtimeDirectory)/caller.host.sock")
    var set = Deckhand_Host_V1_KVSetRequest()
    set.key = "bench"
    set.value = Data(repeating: 0x61, count: 64)
    var get = Deckhand_Host_V1_KVGetRequest()
    get.key = "bench"
    var call = Deckhand_Host_V1_CallPluginRequest()
    call.plugin = "target"
    call.status = ""
    try await measure("hostapi_kv_set", client, "KVSet", set, as: Deckhand_Host_V1_KVSetResponse.self, report)
    try await measure("hostapi_kv_get", client, "KVGet", get, as: Deckhand_Host_V1_KVGetResponse.self, report)
    try await measure(
      "hostapi_call_plugin", client, "CallPlugin", call, as: Deckhand_Host_V1_CallPluginResponse.self, report)
    await client.close()
  }

  /// `NAME_c1_{p50,p99,rate}` and `NAME_cN_{p50,p99,rate}`.
  private func measure<Response: SwiftProtobuf.Message>(
    _ name: String, _ client: LeanGRPCClient, _ method: String, _ request: some SwiftProtobuf.Message,
    as: Response.Type, _ report: @Sendable (PluginBenchmark.Figure) -> Void
  ) async throws {
    let path = "/deckhand.host.v1.Host/\(method)"
    let clock = ContinuousClock()
    for _ in 0..<100 { let _: Response = try await client.message(path, request, timeout: .seconds(10)) }
    var sequential: [Duration] = []
    sequential.reserveCapacity(options.calls)
    let begin = clock.now
    for _ in 0..<options.calls {
      let start = clock.now
      let _: Response = try await client.message(path, request, timeout: .seconds(10))
      sequential.append(start.duration(to: clock.now))
    }
    Self.report("\(name)_c1", sequential.sorted(), elapsed: begin.duration(to: clock.now), report)

    let concurrentBegin = clock.now
    let end = concurrentBegin.advanced(by: options.duration)
    let concurrent = try await withThrowingTaskGroup(of: [Duration].self) { group in
      for _ in 0..<options.callers {
        group.addTask {
          var mine: [Duration] = []
          while clock.now < end {
            let start = clock.now
            let _: Response = try await client.message(path, request, timeout: .seconds(10))
            mine.append(start.duration(to: clock.now))
          }
          return mine
        }
      }
      var all: [Duration] = []
      for try await part in group { all += part }
      return all.sorted()
    }
    Self.report("\(name)_c\(options.callers)", concurrent, elapsed: concurrentBegin.duration(to: clock.now), report)
  }

  private static func report(
    _ name: String, _ sorted: [Duration], elapsed: Duration, _ report: @Sendable (PluginBenchmark.Figure) -> Void
  ) {
    report(.init(name: "\(name)_p50", value: PluginBenchmark.us(PluginBenchmark.percentile(sorted, 0.5)), unit: "us"))
    report(.init(name: "\(name)_p99", value: PluginBenchmark.us(PluginBenchmark.percentile(sorted, 0.99)), unit: "us"))
    report(.init(name: "\(name)_rate", value: Double(sorted.count) / elapsed.inSeconds, unit: "calls/s"))
  }

  /// Launch to first GetStatus of the echo plugin plain, and with memory,
  /// pids and CPU limits plus network, pid and mount namespaces and
  /// no_new_privileges (optional, so a machine without them still runs).
  private func measureLaunches(
    folder: String, launcher: PluginLauncher, base: [String: JSONValue],
    report: @Sendable (PluginBenchmark.Figure) -> Void
  ) async throws {
    let contained: [String: JSONValue] = [
      "limits": .object(["memory_mb": 256, "pids": 64, "cpu_percent": 100]),
      "isolation": .object([
        "network": "none", "pid_namespace": true, "mount_namespace": true, "no_new_privileges": true,
        "optional": true,
      ]),
    ]
    var medians: [String: Duration] = [:]
    for (label, extra) in [("plain", [String: JSONValue]()), ("contained", contained)] {
      var fields = base.merging(extra) { $1 }
      fields["name"] = .string("launch-\(label)")
      guard let bytes = JSONValue.object(fields).serialized() else { continue }
      let path = "\(folder)/launch-\(label).json"
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      let manifest = try PluginManifest.load(path: path)
      let (launches, _) = try await PluginBenchmark.launchTimes(
        manifest, count: options.launches, launcher: launcher, transport: LeanPluginTransport())
      let median = PluginBenchmark.percentile(launches, 0.5)
      medians[label] = median
      report(.init(name: "launch_\(label)_median", value: median.inMilliseconds, unit: "ms"))
    }
    if let plain = medians["plain"], let contained = medians["contained"], plain > .zero {
      report(.init(name: "launch_contained_vs_plain", value: contained / plain, unit: "x"))
      report(.init(name: "launch_contained_extra", value: (contained - plain).inMilliseconds, unit: "ms"))
    }
  }
}
