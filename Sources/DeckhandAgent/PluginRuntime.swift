internal import CDeckhandSystem
package import DeckhandCore
internal import DeckhandPluginHost
internal import Logging
internal import Synchronization

/// What the agent knows of one supervised plugin process, kept up to date
/// from its supervisor's events and written through to the database where
/// the next agent needs it (where the process is, restarts, last exit).
package final class PluginRuntime: Sendable {
  /// A copy of the plugin's state, for `plugins.list`.
  package struct Snapshot: Sendable {
    package var state = PluginState.starting
    package var pid: Int32?
    package var restarts = 0
    package var lastExit: String?
    package var healthCode: Int?
    package var healthResults: [String] = []
    package var healthError: String?
  }

  let name: String
  private let store: AgentStore
  private let logger: Logger
  private let snapshotState: Mutex<Snapshot>
  private let supervisorRef = Mutex<PluginSupervisor?>(nil)
  /// The end of the first launch: healthy, or why not.
  let firstOutcome = OnceValue<Result<Void, DeckhandError>>()

  init(name: String, restarts: Int, lastExit: String?, store: AgentStore, logger: Logger) {
    self.name = name
    self.store = store
    self.logger = logger
    self.snapshotState = Mutex(Snapshot(restarts: restarts, lastExit: lastExit))
  }

  package var snapshot: Snapshot { snapshotState.withLock { $0 } }

  func bind(_ supervisor: PluginSupervisor) {
    supervisorRef.withLock { $0 = supervisor }
  }

  /// Counts a restart the agent made (`plugins.restart`).
  func countRestart() {
    let restarts = snapshotState.withLock {
      $0.restarts += 1
      return $0.restarts
    }
    persist { $0.restarts = restarts }
  }

  /// Takes in one supervisor event.
  func handle(_ event: PluginEvent) {
    let details = event.details
    switch event.event {
    case .launched, .attached:
      snapshotState.withLock {
        $0.state = .starting
        $0.pid = event.pid
      }
    case .ready:
      snapshotState.withLock { $0.state = .running }
      if let attachment = supervisorRef.withLock({ $0 })?.runningPlugin?.attachment {
        persist { $0.attachment = attachment }
      }
    case .healthy, .healthFailed:
      snapshotState.withLock {
        if event.event == .healthy { $0.state = .running }
        if case .number(let code) = details["code"] { $0.healthCode = Int(code) }
        if case .array(let results) = details["results"] {
          $0.healthResults = results.compactMap { if case .string(let text) = $0 { text } else { nil } }
        }
        if case .string(let error) = details["error"] { $0.healthError = error } else { $0.healthError = nil }
      }
      if event.event == .healthy { firstOutcome.set(.success(())) }
    case .unhealthy:
      snapshotState.withLock { $0.state = .unhealthy }
      firstOutcome.set(
        .failure(DeckhandError(.callFailed, "plugin \(name) failed its health checks\(Self.why(details))")))
    case .exited:
      let exit = Self.exitText(details)
      ended(state: .exited, lastExit: exit)
      firstOutcome.set(.failure(DeckhandError(.pluginExited, "plugin \(name) \(exit)\(Self.why(details))")))
    case .launchFailed:
      let error = Self.string(details["error"]) ?? "launch failed"
      ended(state: .failed, lastExit: error)
      firstOutcome.set(.failure(DeckhandError(.launchFailed, error)))
    case .restarting:
      let restarts = snapshotState.withLock {
        $0.state = .restarting
        $0.restarts += 1
        return $0.restarts
      }
      persist { $0.restarts = restarts }
    case .stopped:
      snapshotState.withLock {
        $0.state = .stopped
        $0.pid = nil
      }
      persist { $0.attachment = nil }
      firstOutcome.set(.failure(DeckhandError(.pluginExited, "plugin \(name) was stopped")))
    case .detached:
      snapshotState.withLock { $0.state = .detached }
    }
  }

  /// The process is gone: no pid, no attachment, and how it ended.
  private func ended(state: PluginState, lastExit: String) {
    snapshotState.withLock {
      $0.state = state
      $0.pid = nil
      $0.lastExit = lastExit
    }
    persist {
      $0.attachment = nil
      $0.lastExit = lastExit
    }
  }

  private func persist(_ change: @escaping @Sendable (inout InstalledPlugin) -> Void) {
    do {
      try store.update(name, change)
    } catch {
      logger.error("cannot record the state of plugin \(name): \(error)")
    }
  }

  static func string(_ value: JSONValue?) -> String? {
    if case .string(let text) = value { return text }
    return nil
  }

  /// "exited with status 3", "killed by SIGKILL", from an exit event.
  static func exitText(_ details: [String: JSONValue]) -> String {
    var text: String
    if case .number(let code) = details["exit_code"] {
      text = "exited with status \(Int(code))"
    } else if let signal = string(details["signal_name"]) {
      text = "killed by \(signal)"
    } else if string(details["exit_status"]) == "unknown" {
      text = "exited (status unknown: started by an earlier agent)"
    } else {
      text = "exited"
    }
    if let reason = string(details["reason"]) { text += " (\(reason))" }
    return text
  }

  /// "; last stderr lines: …" from an event's details.
  static func why(_ details: [String: JSONValue]) -> String {
    var parts: [String] = []
    if let error = string(details["error"]) { parts.append(error) }
    if case .array(let lines) = details["stderr_tail"] {
      let text = lines.suffix(5).compactMap(string).joined(separator: " | ")
      if !text.isEmpty { parts.append("last stderr lines: \(text)") }
    }
    return parts.isEmpty ? "" : "; " + parts.joined(separator: "; ")
  }
}
