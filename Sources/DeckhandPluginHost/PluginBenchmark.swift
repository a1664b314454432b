package import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import SwiftProtobuf

/// `deckhand plugin bench`: what launching and calling a plugin costs, with
/// the figure names of `../shared/peers/goplugin/run.sh` (without its
/// `goplugin.` prefix), so that the two can be compared line by line.
package struct PluginBenchmark: Sendable {
  /// What to run.
  package struct Options: Sendable {
    /// Timed launches, after one untimed warm-up launch.
    package var launches = 20
    /// Sequential GetStatus calls.
    package var calls = 20_000
    /// Untimed calls before each load phase.
    package var warmup = 500
    /// Concurrent callers in the concurrent phase.
    package var concurrency = 16
    /// Length of the concurrent phase.
    package var duration: Duration = .seconds(3)
    /// Sequential Apply calls.
    package var applyCalls = 2000
    /// Apply payload size in bytes.
    package var payload = 65_536
    /// Settle time before reading idle RSS.
    package var idleWait: Duration = .milliseconds(500)
    /// Told of every timed call, as the agent's metrics are
    /// (`--metrics`); nil: calls go unwrapped, as with metrics off.
    package var observe: ObservedConnection.Observer?
    package init() {}
  }

  /// One figure: printed as `name value unit`.
  package struct Figure: Hashable, Sendable, CustomStringConvertible {
    package var name: String
    package var value: Double
    package var unit: String

    package init(name: String, value: Double, unit: String) {
      self.name = name
      self.value = value
      self.unit = unit
    }

    package var description: String {
      let text =
        value >= 100 || value.rounded() == value ? String(format: "%.0f", value) : String(format: "%.3f", value)
      return "\(name) \(text) \(unit)"
    }
  }

  let launcher: PluginLauncher
  let transport: any PluginTransport
  let options: Options

  package init(launcher: PluginLauncher, transport: any PluginTransport = LeanPluginTransport(), options: Options) {
    self.launcher = launcher
    self.transport = transport
    self.options = options
  }

  /// Runs every phase, calling `report` with each figure as it is known.
  package func run(_ manifest: PluginManifest, report: @Sendable (Figure) -> Void) async throws {
    try await measureLaunches(manifest, report: report)
    try await measureCalls(manifest, report: report)
  }

  private func measureLaunches(_ manifest: PluginManifest, report: @Sendable (Figure) -> Void) async throws {
    let (launches, kills) = try await Self.launchTimes(
      manifest, count: options.launches, launcher: launcher, transport: transport)
    report(Figure(name: "launch_min", value: Self.ms(launches.first ?? .zero), unit: "ms"))
    report(Figure(name: "launch_median", value: Self.ms(Self.percentile(launches, 0.5)), unit: "ms"))
    report(Figure(name: "launch_max", value: Self.ms(launches.last ?? .zero), unit: "ms"))
    report(Figure(name: "kill_median", value: Self.ms(Self.percentile(kills, 0.5)), unit: "ms"))
  }

  private func measureCalls(_ manifest: PluginManifest, report: @Sendable (Figure) -> Void) async throws {
    let plugin = try await launcher.launch(manifest)
    let options = self.options
    try await transport.withConnection(to: plugin.address) { base in
      let connection: any PluginConnection = options.observe.map { ObservedConnection(base: base, observe: $0) } ?? base
      do {
        try await Self.firstStatus(connection, deadline: manifest.timeouts.start, since: plugin.launchedAt)
        try await Task.sleep(for: options.idleWait)
        report(Figure(name: "plugin_rss_idle", value: Self.rssMiB(pid: plugin.pid), unit: "MiB"))
        report(Figure(name: "host_rss_idle", value: Self.rssMiB(pid: getpid()), unit: "MiB"))

        let timeout = manifest.timeouts.call
        for _ in 0..<options.warmup { _ = try await connection.getStatus(data: nil, timeout: timeout) }
        var latencies: [Duration] = []
        latencies.reserveCapacity(options.calls)
        let clock = ContinuousClock()
        let seqBegin = clock.now
        for _ in 0..<options.calls {
          let begin = clock.now
          _ = try await connection.getStatus(data: nil, timeout: timeout)
          latencies.append(begin.duration(to: clock.now))
        }
        let seqElapsed = seqBegin.duration(to: clock.now)
        latencies.sort()
        report(Figure(name: "getstatus_seq_p50", value: Self.us(Self.percentile(latencies, 0.5)), unit: "us"))
        report(Figure(name: "getstatus_seq_p99", value: Self.us(Self.percentile(latencies, 0.99)), unit: "us"))
        report(
          Figure(name: "getstatus_seq_rate", value: Double(options.calls) / seqElapsed.inSeconds, unit: "calls/s"))

        for _ in 0..<options.warmup { _ = try await connection.getStatus(data: nil, timeout: timeout) }
        let concurrentBegin = clock.now
        let end = concurrentBegin.advanced(by: options.duration)
        let concurrent = try await withThrowingTaskGroup(of: [Duration].self) { group in
          for _ in 0..<options.concurrency {
            group.addTask {
              var mine: [Duration] = []
              while clock.now < end {
                let begin = clock.now
                _ = try await connection.getStatus(data: nil, timeout: timeout)
                mine.append(begin.duration(to: clock.now))
              }
              return mine
            }
          }
          var all: [Duration] = []
          for try await part in group { all += part }
          return all.sorted()
        }
        let concurrentElapsed = concurrentBegin.duration(to: clock.now)
        let name = "getstatus_c\(options.concurrency)"
        report(
          Figure(
            name: "\(name)_rate", value: Double(concurrent.count) / concurrentElapsed.inSeconds, unit: "calls/s"))
        report(Figure(name: "\(name)_p50", value: Self.us(Self.percentile(concurrent, 0.5)), unit: "us"))
        report(Figure(name: "\(name)_p99", value: Self.us(Self.percentile(concurrent, 0.99)), unit: "us"))
        // A stall of a few calls hides under p99 but not here.
        report(Figure(name: "\(name)_max", value: Self.us(concurrent.last ?? .zero), unit: "us"))

        var payload = Google_Protobuf_Any()
        payload.typeURL = "type.googleapis.com/deckhand.bench.Payload"
        payload.value = Data(repeating: 0x5a, count: options.payload)
        for _ in 0..<min(options.warmup, 50) { try await connection.apply(payload, timeout: timeout) }
        var applies: [Duration] = []
        applies.reserveCapacity(options.applyCalls)
        let applyBegin = clock.now
        for _ in 0..<options.applyCalls {
          let begin = clock.now
          try await connection.apply(payload, timeout: timeout)
          applies.append(begin.duration(to: clock.now))
        }
        let applyElapsed = applyBegin.duration(to: clock.now)
        applies.sort()
        let label = options.payload % 1024 == 0 ? "apply_\(options.payload / 1024)k" : "apply_\(options.payload)b"
        report(Figure(name: "\(label)_p50", value: Self.us(Self.percentile(applies, 0.5)), unit: "us"))
        report(Figure(name: "\(label)_p99", value: Self.us(Self.percentile(applies, 0.99)), unit: "us"))
        report(
          Figure(
            name: "\(label)_throughput",
            value: Double(options.payload * options.applyCalls) / 1e6 / applyElapsed.inSeconds, unit: "MB/s"))
        report(Figure(name: "plugin_rss_after_load", value: Self.rssMiB(pid: plugin.pid), unit: "MiB"))
        report(Figure(name: "host_rss_after_load", value: Self.rssMiB(pid: getpid()), unit: "MiB"))
      } catch {
        await plugin.kill()
        throw error
      }
      _ = await plugin.stop(using: connection, cleanup: false)
    }
  }

  /// Launches `manifest` `count` times (after one launch not counted):
  /// each from spawn to its first answered GetStatus, then stopped. The
  /// launch and stop durations, sorted.
  package static func launchTimes(
    _ manifest: PluginManifest, count: Int, launcher: PluginLauncher, transport: any PluginTransport
  ) async throws -> (launches: [Duration], stops: [Duration]) {
    var launches: [Duration] = []
    var stops: [Duration] = []
    for index in 0...count {
      let begin = ContinuousClock.now
      let plugin = try await launcher.launch(manifest)
      let (launch, stop) = try await transport.withConnection(to: plugin.address) { connection in
        do {
          try await firstStatus(connection, deadline: manifest.timeouts.start, since: begin)
        } catch {
          await plugin.kill()
          throw error
        }
        let launch = begin.duration(to: .now)
        let outcome = await plugin.stop(using: connection, cleanup: false)
        return (launch, outcome.elapsed)
      }
      if index > 0 {
        launches.append(launch)
        stops.append(stop)
      }
    }
    return (launches.sorted(), stops.sorted())
  }

  /// Calls GetStatus until it succeeds (the connection may still be coming
  /// up) or the deadline passes.
  static func firstStatus(_ connection: any PluginConnection, deadline: Duration, since: ContinuousClock.Instant)
    async throws
  {
    while true {
      do {
        _ = try await connection.getStatus(data: nil, timeout: .seconds(1))
        return
      } catch {
        if since.duration(to: .now) > deadline { throw error }
        try await Task.sleep(for: .milliseconds(1))
      }
    }
  }

  package static func percentile(_ sorted: [Duration], _ fraction: Double) -> Duration {
    guard !sorted.isEmpty else { return .zero }
    let index = min(sorted.count - 1, max(0, Int((Double(sorted.count) * fraction).rounded(.up)) - 1))
    return sorted[index]
  }

  static func ms(_ duration: Duration) -> Double { duration.inMilliseconds }
  package static func us(_ duration: Duration) -> Double { duration.inSeconds * 1_000_000 }

  /// VmRSS of a process in MiB, from /proc/PID/status.
  static func rssMiB(pid: Int32) -> Double { rssKiB(pid: pid) / 1024 }

  /// VmRSS of a process in KiB, from /proc/PID/status (0 if unreadable).
  package static func rssKiB(pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      return line.split(separator: " ").compactMap { Double($0) }.first ?? 0
    }
    return 0
  }
}
