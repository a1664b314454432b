internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore

/// `deckhand events`: what happened in the fleet.
struct EventsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "events",
    abstract: "Show what happened in the fleet: nodes, tasks, plugins, rollouts and jobs.",
    discussion: """
      Kinds: node.joined, node.ready, node.down, node.drained, node.activated, node.removed, task.state, \
      plugin.crashed, plugin.restarted, plugin.unhealthy, plugin.oom, rollout.started, rollout.paused, \
      rollout.rolled_back, rollout.done, job.queued, job.assigned, job.finished. Kept for the server's \
      --event-retention (7 days by default), on every replica.
      """)

  @OptionGroup var options: OperatorOptions
  @Flag(name: .shortAndLong, help: "Keep following: print each new event as it happens.") var follow = false
  @Option(help: "Only this node's events (its name or id).") var node: String?
  @Option(help: "Only this plugin's events.") var plugin: String?
  @Option(help: "Only events in this past period (e.g. 10m, 2h).") var since: String?
  @Option(help: "At most this many past events, the newest (default 1000).") var limit: Int?

  func run() async throws {
    var request = Deckhand_Control_V1_StreamEventsRequest()
    request.follow = follow
    request.node = node ?? ""
    request.plugin = plugin ?? ""
    if let since {
      guard let period = DurationText.parse(since), period > .zero else {
        throw ValidationError("--since \(since): expected a duration such as 10m or 2h")
      }
      request.sinceMs = Int64(Date().timeIntervalSince1970 * 1000) - Int64(period.inMilliseconds)
    }
    if let limit {
      guard limit >= 1 else { throw ValidationError("--limit \(limit): expected at least 1") }
      request.limit = Int32(clamping: limit)
    }
    let json = options.json
    try await options.withControl { control, metadata in
      try await control.streamEvents(request, metadata: metadata) { response in
        for try await event in response.messages {
          // One write a line: a follower sees each event as it comes.
          let line = json ? try ProtoJSON.server.text(of: [event], single: true) : Self.line(event)
          FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
      }
    }
  }

  /// One event as a line: time, kind, node, plugin, subject, message.
  static func line(_ event: Deckhand_Control_V1_FleetEvent) -> String {
    let time = Date(timeIntervalSince1970: Double(event.atMs) / 1000)
      .formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
    var parts = [time, event.kind.padding(toLength: 19, withPad: " ", startingAt: 0)]
    if !event.nodeName.isEmpty || !event.nodeID.isEmpty {
      parts.append("node=\(event.nodeName.isEmpty ? event.nodeID : event.nodeName)")
    }
    if !event.plugin.isEmpty { parts.append("plugin=\(event.plugin)") }
    if !event.subject.isEmpty { parts.append("id=\(event.subject)") }
    if !event.message.isEmpty { parts.append(Self.printable(event.message)) }
    return parts.joined(separator: " ")
  }

  /// Control characters (a hostile node's message) shown as escapes, not
  /// sent to the terminal.
  static func printable(_ text: String) -> String {
    String(
      text.unicodeScalars.map { scalar -> String in
        (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F
          ? String(format: "\\u{%02x}", scalar.value) : String(scalar)
      }.joined())
  }
}
