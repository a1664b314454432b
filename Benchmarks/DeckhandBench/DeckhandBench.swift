internal import ArgumentParser
internal import Foundation

/// `deckhand-bench dispatcher|jobs|commands|hostapi`: each prints
/// `name value unit` lines.
struct DeckhandBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "deckhand-bench",
    abstract: "Benchmarks of Deckhand's parts. `deckhand plugin bench` measures plugin calls.",
    subcommands: [
      CommandsBenchCommand.self, HostAPIBenchCommand.self, DispatcherBenchCommand.self, JobsBenchCommand.self,
    ]
  )

  /// The `deckhand` binary the benchmark starts servers and agents from:
  /// `path`, or `deckhand` beside this executable.
  static func deckhandExecutable(_ path: String?) throws -> String {
    if let path { return absolute(path) }
    let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let sibling = own.deletingLastPathComponent().appendingPathComponent("deckhand").path
    guard FileManager.default.isExecutableFile(atPath: sibling) else {
      throw ValidationError("no deckhand beside \(own.path); build it (swift build) or pass --deckhand PATH")
    }
    return sibling
  }

  static func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
  }
}
