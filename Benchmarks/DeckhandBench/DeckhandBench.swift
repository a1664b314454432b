internal import ArgumentParser
internal import DeckhandCore
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

  /// Prints the run's header line: `# deckhand VERSION, WHAT, N cpus`.
  static func header(_ what: String) {
    FileHandle.standardOutput.write(
      Data(
        "# deckhand \(DeckhandVersion.current), \(what), \(ProcessInfo.processInfo.activeProcessorCount) cpus\n".utf8))
  }

  /// Prints one figure as a `name value unit` line.
  @Sendable static func report(_ figure: some CustomStringConvertible) {
    FileHandle.standardOutput.write(Data("\(figure)\n".utf8))
  }
}
