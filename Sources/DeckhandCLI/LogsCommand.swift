internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore

/// `deckhand logs NODE PLUGIN`: a plugin's output through the server.
struct LogsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "logs",
    abstract: "Show a plugin's stdout, stderr and error log on a node, through the server.",
    discussion: """
      Stdout lines go to stdout, stderr lines to stderr, error-log lines to stderr after "error log: ". \
      Works while the plugin runs and after it crashed. Control characters a plugin wrote are shown as \
      escapes. With replicas, ask the one the node is connected to.
      """)

  @OptionGroup var options: OperatorOptions
  @Argument(help: "The node's name or id.") var node: String
  @Argument(help: "The plugin's name.") var plugin: String
  @Flag(name: .shortAndLong, help: "Keep following: print each new line as the plugin writes it.") var follow = false
  @Option(help: "Lines of backlog from each log (default 100, at most 10000).") var tail: Int?
  @Option(help: "Leave out the backlog of a log last written longer ago than this (e.g. 10m).") var since: String?

  func run() async throws {
    var request = Deckhand_Control_V1_GetLogStreamRequest()
    request.node = node
    request.plugin = plugin
    request.follow = follow
    if let tail {
      guard (1...10_000).contains(tail) else { throw ValidationError("--tail \(tail): expected 1 to 10000") }
      request.tail = Int32(tail)
    }
    if let since {
      guard let period = DurationText.parse(since), period > .zero else {
        throw ValidationError("--since \(since): expected a duration such as 10m or 2h")
      }
      request.sinceMs = Int64(Date().timeIntervalSince1970 * 1000) - Int64(period.inMilliseconds)
    }
    try await options.withControl { control, metadata in
      try await control.getLogStream(request, metadata: metadata) { response in
        for try await line in response.messages {
          let text = EventsCommand.printable(line.text) + "\n"
          switch line.stream {
          case "stdout": FileHandle.standardOutput.write(Data(text.utf8))
          case "errors": FileHandle.standardError.write(Data(("error log: " + text).utf8))
          default: FileHandle.standardError.write(Data(text.utf8))
          }
        }
      }
    }
  }
}
