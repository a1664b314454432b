internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import Synchronization

/// What happened to the node's plugins since the last heartbeat, for the
/// server's fleet events: crashes, restarts, unhealthy plugins and OOM
/// kills. At most ``FleetEvent/maxReportedPerHeartbeat`` wait; more are
/// counted as dropped (the server logs the count).
final class PluginEventReports: Sendable {
  private let state = Mutex<(reports: [Deckhand_Dispatcher_V1_PluginEventReport], dropped: Int)>(([], 0))

  /// Keeps `event` if it is one the server records.
  func add(_ event: PluginEvent) {
    var report = Deckhand_Dispatcher_V1_PluginEventReport()
    report.plugin = event.plugin
    report.atMs = Int64(event.time * 1000)
    switch event.event {
    case .exited where event.outOfMemory:
      report.kind = FleetEvent.Kind.pluginOOM.rawValue
      report.message = "killed for going over its memory limit"
    case .exited:
      report.kind = FleetEvent.Kind.pluginCrashed.rawValue
      report.message = event.exit.map { "\($0)" } ?? "its process ended"
      if let last = event.lastLines.stderr.last { report.message += "; stderr: \(last)" }
    case .restarting:
      report.kind = FleetEvent.Kind.pluginRestarted.rawValue
      report.message = event.attempt.map { "attempt \($0)" } ?? ""
    case .unhealthy:
      report.kind = FleetEvent.Kind.pluginUnhealthy.rawValue
      report.message = event.error ?? event.reason ?? ""
    default:
      return
    }
    state.withLock { state in
      if state.reports.count < FleetEvent.maxReportedPerHeartbeat {
        state.reports.append(report)
      } else {
        state.dropped += 1
      }
    }
  }

  /// The reports waiting, and how many were dropped; both start again.
  func take() -> (reports: [Deckhand_Dispatcher_V1_PluginEventReport], dropped: Int) {
    state.withLock { state in
      defer { state = ([], 0) }
      return state
    }
  }
}
