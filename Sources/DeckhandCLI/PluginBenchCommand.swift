internal import ArgumentParser
internal import DeckhandAgent
internal import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandTelemetry
internal import Foundation

/// `deckhand plugin bench MANIFEST`: launch and call costs, as
/// `name value unit` lines.
struct PluginBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure launch, call and memory costs of a plugin.",
    discussion: """
      Prints `name value unit` lines with the names of ../shared/peers/goplugin/run.sh (without \
      its `goplugin.` prefix): launch_min/median/max, kill_median, plugin_rss_idle, host_rss_idle, \
      getstatus_seq_p50/p99/rate, getstatus_c16_rate/p50/p99/max, apply_64k_p50/p99/throughput. \
      Benchmark release builds only (swift build -c release).
      """
  )

  @OptionGroup var host: HostOptions

  @Option(help: "Timed launches (after one untimed warm-up launch).")
  var launches = 20

  @Option(help: "Sequential GetStatus calls.")
  var calls = 20_000

  @Option(help: "Concurrent callers on one connection.")
  var concurrency = 16

  @Option(help: "Seconds of the concurrent phase.")
  var duration: Double = 3

  @Option(help: "Apply payload size in bytes.")
  var payload = 65_536

  @Option(help: "Sequential Apply calls.")
  var applyCalls = 2000

  @Option(help: "Untimed calls before each load phase.")
  var warmup = 500

  @Option(help: "A prefix for every figure's name, e.g. \"deckhand.\".")
  var prefix = ""

  @Flag(help: "Count and time every call as the agent does with --metrics-listen.")
  var metrics = false

  func validate() throws {
    guard launches >= 1, calls >= 1, concurrency >= 1, duration > 0, payload >= 0, applyCalls >= 1, warmup >= 0 else {
      throw ValidationError("--launches, --calls, --concurrency, --duration and --apply-calls must be positive")
    }
  }

  func run() async throws {
    let manifest = try host.loadManifest()
    var options = PluginBenchmark.Options()
    options.launches = launches
    options.calls = calls
    options.concurrency = concurrency
    options.duration = .milliseconds(Int64(duration * 1000))
    options.payload = payload
    options.applyCalls = applyCalls
    options.warmup = warmup
    if metrics { options.observe = AgentMetrics(MetricsRegistry()).callObserver(plugin: manifest.name) }
    let benchmark = PluginBenchmark(
      launcher: PluginLauncher(paths: host.paths), transport: host.transport.transport, options: options)
    print(
      "# deckhand \(DeckhandVersion.current), plugin \(manifest.name) \(manifest.version) (\(manifest.launchProtocol.rawValue)), \(ProcessInfo.processInfo.activeProcessorCount) cpus"
    )
    let prefix = self.prefix
    do {
      try await benchmark.run(manifest) { figure in
        var figure = figure
        figure.name = prefix + figure.name
        print(figure)
        fflush(nil)
      }
    } catch {
      FileHandle.standardError.write(Data("deckhand: benchmark failed: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}
