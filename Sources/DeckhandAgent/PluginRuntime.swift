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
        if let code = event.healthCode { $0.healthCode = Int(code) }
        if let results = event.healthResults { $0.healthResults = results }
        $0.healthError = event.error
      }
      if event.event == .healthy { firstOutcome.set(.success(())) }
    case .unhealthy:
      snapshotState.withLock { $0.state = .unhealthy }
      firstOutcome.set(
        .failure(DeckhandError(.callFailed, "plugin \(name) failed its health checks\(Self.why(event))")))
    case .exited:
      let exit = Self.exitText(event)
      ended(state: .exited, lastExit: exit)
      firstOutcome.set(.failure(DeckhandError(.pluginExited, "plugin \(name) \(exit)\(Self.why(event))")))
    case .launchFailed:
      let error = event.error ?? "launch failed"
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

  /// "exited with status 3", "killed by SIGKILL", from an exit event.
  static func exitText(_ event: PluginEvent) -> String {
    var text =
      switch event.exit {
      case .exited(let code)?: "exited with status \(code)"
      case .signaled(let signal)?: "killed by \(ProcessExit.signalName(signal) ?? "SIG\(signal)")"
      case .unknown?: "exited (status unknown: started by an earlier agent)"
      case nil: "exited"
      }
    if let reason = event.reason { text += " (\(reason))" }
    return text
  }

  /// "; last stderr lines: …" from an event.
  static func why(_ event: PluginEvent) -> String {
    var parts: [String] = []
    if let error = event.error { parts.append(error) }
    let text = event.lastLines.stderr.suffix(5).joined(separator: " | ")
    if !text.isEmpty { parts.append("last stderr lines: \(text)") }
    return parts.isEmpty ? "" : "; " + parts.joined(separator: "; ")
  }
}
