internal import ArgumentParser
internal import DeckhandBenchmarks
internal import DeckhandCore
internal import Foundation

/// `deckhand-bench hostapi`: Host API round trips and the launch cost of limits.
struct HostAPIBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hostapi",
    abstract: "Host API round trips (KV get/set, CallPlugin) with 1 and 16 callers, and launch cost of limits.",
    discussion: """
      Runs a plugin manager on a throw-away state directory with two copies of the echo example, calls \
      the Host API on one plugin's socket as that plugin would, then launches the echo example plain and \
      with limits and namespaces. Prints `name value unit` lines.
      """
  )

  @Option(help: "The echo plugin binary. Default: deckhand-example-echo beside deckhand-bench.")
  var plugin: String?
  @Option(help: "Sequential calls for each 1-caller figure.") var calls = 3000
  @Option(help: "Concurrent callers on one connection.") var callers = 16
  @Option(help: "Seconds of each concurrent phase.") var seconds = 2.0
  @Option(help: "Launches measured for plain and for contained.") var launches = 15

  func run() async throws {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let sibling = executable.deletingLastPathComponent().appendingPathComponent("deckhand-example-echo").path
    var options = HostAPIBenchmark.Options(plugin: plugin.map(DeckhandBench.absolute) ?? sibling)
    options.calls = calls
    options.callers = callers
    options.duration = .nanoseconds(Int64(seconds * 1e9))
    options.launches = launches
    DeckhandBench.header("host api")
    try await HostAPIBenchmark(options: options).run(report: DeckhandBench.report)
  }
}
