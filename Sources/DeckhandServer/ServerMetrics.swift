package import DeckhandCore
package import DeckhandTelemetry
internal import Prometheus

/// The server's metrics (`deckhand server --metrics-listen`): what happens
/// is counted where it happens, what exists is read from the store when
/// Prometheus scrapes. ``off`` (no `--metrics-listen`) records nothing.
///
/// Labels are bounded sets: states, statuses, outcomes; never a node id,
/// job id or token.
package struct ServerMetrics: Sendable {
  /// Records nothing.
  package static let off = ServerMetrics(nil)

  let registry: MetricsRegistry?
  private let heartbeats: Counter?
  private let heartbeatHandling: DurationHistogram?
  private let queueWait: DurationHistogram?
  private let jobDuration: DurationHistogram?
  private let jobsFinished: [JobState: Counter]
  private let jobsQueued: Counter?

  package init(_ registry: MetricsRegistry?) {
    self.registry = registry
    heartbeats = registry?.counter("heartbeats_total", "Heartbeats received from agents.")
    heartbeatHandling = registry?.durations(
      "heartbeat_handling_seconds", "Time the server took to judge one heartbeat (in memory).")
    queueWait = registry?.durations(
      "job_queue_wait_seconds", "Time from a job's queueing to its assignment to a runner.")
    jobDuration = registry?.durations(
      "job_duration_seconds", "Time from a job's assignment to its end, by outcome.", buckets: MetricsRegistry.long)
    var finished: [JobState: Counter] = [:]
    for state in [JobState.success, .error] {
      finished[state] = registry?.counter(
        "jobs_finished_total", "Jobs that ended, by outcome.", labels: [("state", Self.name(state))])
    }
    jobsFinished = finished
    jobsQueued = registry?.counter("jobs_queued_total", "Jobs queued on this replica.")
  }

  /// A heartbeat judged in `handling`.
  func heartbeat(handling: Duration) {
    heartbeats?.increment()
    heartbeatHandling?.record(handling)
  }

  func jobQueued() { jobsQueued?.increment() }

  /// A job given to a runner: how long it waited in the queue.
  func jobAssigned(_ job: JobRecord) {
    queueWait?.record(.milliseconds(max(0, job.lifecycle.assignedMs - job.queuedMs)))
  }

  /// A job that ended with this replica recording its result.
  func jobFinished(_ job: JobRecord) {
    guard job.lifecycle.state.isEnded else { return }
    jobsFinished[job.lifecycle.state]?.increment()
    if job.lifecycle.assignedMs > 0 {
      jobDuration?.record(.milliseconds(max(0, job.lifecycle.completeMs - job.lifecycle.assignedMs)))
    }
  }

  /// Sets the gauges of what exists from `plane` and the store before each
  /// scrape: nodes by status and availability, open sessions, tasks by
  /// state, deployments by state and the nodes their rollouts have yet to
  /// reach, jobs by state, and whether this replica leads.
  func collect(_ plane: ControlPlane) {
    guard let registry else { return }
    registry.onScrape {
      let store = plane.store
      registry.gauge("sessions_open", "Agent sessions open on this replica.").set(Double(plane.openSessions))
      registry.gauge("replica_leader", "1 while this replica leads (reconciles and sweeps), else 0.")
        .set(plane.isLeader ? 1.0 : 0.0)
      guard let nodes = try? await store.nodes(),
        let tasks = try? await store.tasks(node: nil, deployment: nil, activeOnly: true),
        let deployments = try? await store.deployments(), let jobs = try? await store.jobCounts()
      else {
        registry.counter("metrics_collect_failures_total", "Scrapes whose counts could not be read from the store.")
          .increment()
        return
      }
      for status in NodeStatus.allCases {
        for availability in [NodeAvailability.active, .drain] {
          registry.gauge(
            "nodes", "Nodes by status and availability.",
            labels: [("status", status.rawValue.lowercased()), ("availability", availability.rawValue)]
          ).set(Double(nodes.count { $0.status == status && $0.availability == availability }))
        }
      }
      for state in TaskState.allCases {
        registry.gauge("tasks", "Active tasks by state.", labels: [("state", "\(state)")])
          .set(Double(tasks.count { $0.state == state }))
      }
      for state in ["rolling", "complete", "paused", "replaced", "rolled_back"] {
        registry.gauge("deployments", "Deployments by rollout state.", labels: [("state", state)])
          .set(Double(deployments.count { Self.name($0.state) == state }))
      }
      let rolling = Set(deployments.filter { $0.state == .rolling }.map(\.id))
      registry.gauge(
        "rollout_tasks_pending", "Tasks of rolling deployments that are not RUNNING yet."
      ).set(Double(tasks.count { rolling.contains($0.deploymentId) && $0.state != .running }))
      for state in JobState.allCases {
        registry.gauge("jobs", "Jobs kept, by state.", labels: [("state", Self.name(state))])
          .set(Double(jobs[state.rawValue] ?? 0))
      }
    }
  }

  static func name(_ state: JobState) -> String {
    switch state {
    case .queued: "queued"
    case .waiting: "waiting"
    case .running: "running"
    case .success: "success"
    case .error: "error"
    }
  }

  static func name(_ state: DeploymentState) -> String {
    switch state {
    case .rolling: "rolling"
    case .complete: "complete"
    case .paused: "paused"
    case .replaced: "replaced"
    case .rolledBack: "rolled_back"
    }
  }
}
