package import DeckhandCore
package import DeckhandPluginHost
internal import DeckhandRuntime
package import DeckhandTelemetry
internal import Prometheus
internal import Synchronization

/// The agent's metrics (`deckhand agent --metrics-listen`): plugin events,
/// calls, Host API calls and command-socket requests are counted as they
/// happen; plugins by state and each plugin's CPU and memory are read when
/// Prometheus scrapes. ``off`` records nothing.
///
/// Plugin names label per-plugin series: they are the installed plugins,
/// which only the agent's operator chooses.
package final class AgentMetrics: Sendable {
  /// Records nothing.
  package static let off = AgentMetrics(nil)

  let registry: MetricsRegistry?
  private let runningJobs: Gauge?
  /// Each plugin's CPU seconds as last read, to count only what was added
  /// since (a counter cannot be set); keyed by plugin, with the pid read.
  private let lastCPU = Mutex<[String: (pid: Int32, seconds: Double)]>([:])

  /// Plugin events for the server, sent with the next heartbeat (kept
  /// whether or not metrics are on).
  let reports = PluginEventReports()

  package init(_ registry: MetricsRegistry?) {
    self.registry = registry
    runningJobs = registry?.gauge("jobs_running", "Jobs this agent runs now.")
  }

  var isOn: Bool { registry != nil }

  /// A supervisor's event: restarts, health failures and exits count.
  func pluginEvent(_ event: PluginEvent) {
    reports.add(event)
    guard let registry else { return }
    let plugin = [("plugin", event.plugin)]
    switch event.event {
    case .restarting:
      registry.counter(
        "plugin_restarts_total", "Restarts of each plugin after it exited or was unhealthy.", labels: plugin
      )
      .increment()
    case .healthFailed, .unhealthy:
      registry.counter("plugin_health_failures_total", "Failed health checks of each plugin.", labels: plugin)
        .increment()
    case .exited:
      registry.counter("plugin_exits_total", "Times each plugin's process ended.", labels: plugin).increment()
    default:
      break
    }
  }

  /// What a plugin's supervisor reports of each call through it; nil when
  /// metrics are off (calls then go unwrapped). The contract's methods'
  /// series are made here, once: a call only looks its own up (no lock,
  /// no allocation), which measured 7 % of the 16-caller rate when each
  /// call asked the registry.
  package func callObserver(plugin: String) -> ObservedConnection.Observer? {
    guard let registry else { return nil }
    typealias Series = (duration: DurationHistogram, ok: Counter, error: Counter)
    func series(_ method: String) -> Series {
      let labels = [("plugin", plugin), ("method", method)]
      return (
        registry.durations(
          "plugin_call_duration_seconds", "Time of calls into plugins, by plugin and method.", labels: labels),
        registry.counter(
          "plugin_calls_total", "Calls into plugins, by plugin, method and outcome.",
          labels: labels + [("outcome", "ok")]),
        registry.counter(
          "plugin_calls_total", "Calls into plugins, by plugin, method and outcome.",
          labels: labels + [("outcome", "error")])
      )
    }
    var known: [String: Series] = [:]
    for method in ObservedConnection.methods { known[method] = series(method) }
    let made = known
    return { method, elapsed, succeeded in
      guard let series = made[method] else { return }
      series.duration.record(elapsed)
      (succeeded ? series.ok : series.error).increment()
    }
  }

  /// What a plugin's Host API reports of each call it answered.
  func hostAPIObserver(plugin: String) -> (@Sendable (String, Bool) -> Void)? {
    guard let registry else { return nil }
    return { method, succeeded in
      registry.counter(
        "host_api_calls_total", "Calls plugins made to the agent's Host API, by plugin, method and outcome.",
        labels: [("plugin", plugin), ("method", method), ("outcome", succeeded ? "ok" : "error")]
      ).increment()
    }
  }

  /// Counts command-socket requests from now on.
  func observeCommands(_ commands: CommandRegistry) {
    guard let registry else { return }
    commands.observe { command, status in
      registry.counter(
        "command_requests_total", "Requests on the command socket, by command and status.",
        labels: [("command", command.isEmpty ? "none" : command), ("status", Self.name(status))]
      ).increment()
    }
  }

  func jobStarted() { runningJobs?.increment() }
  func jobEnded() { runningJobs?.decrement() }

  /// Sets, before each scrape, plugins by state and each running plugin's
  /// CPU time and resident memory.
  func collect(_ manager: PluginManager) {
    guard let registry else { return }
    registry.onScrape { [self] in
      let entries = await manager.all
      let running = (try? await BlockingWork.run { PluginManager.usage(of: entries) }) ?? [:]
      var states: [PluginState: Int] = [:]
      var seen: Set<String> = []
      for entry in entries {
        let name = entry.record.name
        seen.insert(name)
        states[entry.runtime.snapshot.state, default: 0] += 1
        guard let (pid, usage) = running[name] else { continue }
        let labels = [("plugin", name)]
        registry.gauge("plugin_resident_memory_bytes", "Resident memory of each running plugin.", labels: labels)
          .set(usage.residentBytes)
        let added = lastCPU.withLock { last -> Double in
          defer { last[name] = (pid, usage.cpuSeconds) }
          guard let before = last[name], before.pid == pid, usage.cpuSeconds >= before.seconds else {
            return usage.cpuSeconds
          }
          return usage.cpuSeconds - before.seconds
        }
        registry.counter("plugin_cpu_seconds_total", "CPU time used by each plugin.", labels: labels)
          .increment(by: added)
      }
      for state in PluginState.allCases {
        registry.gauge("plugins", "Installed plugins by state.", labels: [("state", state.rawValue)])
          .set(Double(states[state] ?? 0))
      }
      // A removed plugin's series go with it.
      let gone = lastCPU.withLock { last in
        let gone = last.keys.filter { !seen.contains($0) }
        for name in gone { last.removeValue(forKey: name) }
        return gone
      }
      for name in gone {
        let labels = [("plugin", name)]
        registry.prometheus.unregisterGauge(
          registry.gauge("plugin_resident_memory_bytes", "Resident memory of each running plugin.", labels: labels))
        registry.prometheus.unregisterCounter(
          registry.counter("plugin_cpu_seconds_total", "CPU time used by each plugin.", labels: labels))
      }
    }
  }

  static func name(_ status: CommandStatus) -> String {
    switch status {
    case .success: "success"
    case .commandNotFound: "command_not_found"
    case .badRequest: "bad_request"
    case .connectionError: "connection_error"
    case .timeout: "timeout"
    case .handlerFailed: "handler_failed"
    case .internalError: "internal_error"
    }
  }
}
