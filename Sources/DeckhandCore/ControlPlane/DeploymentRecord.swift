/// The desired state for one plugin: a version, where (a selector), with
/// what config, and how its rollout goes (after SwarmKit's update config).
package struct DeploymentRecord: Codable, Sendable, Hashable {
  /// What a rollout does when more than `maxFailures` tasks failed.
  package enum FailureAction: String, Codable, Sendable, Hashable, CaseIterable {
    /// Stop replacing; what runs stays as it is.
    case pause
    /// Return every node of the rollout to the previous deployment.
    case rollback
  }

  package var id: String
  package var plugin: String
  package var version: String
  package var artifactDigest: String
  package var artifactSize: Int64
  package var selector: [String: String]
  package var configJSON: String
  package var maxFailures: Int
  package var state: DeploymentState
  package var createdMs: Int64
  /// Tasks replaced at once (0: all at once).
  package var parallelism: Int
  /// The wait after a replaced task settles before the next replacement.
  package var delayMs: Int64
  package var failureAction: FailureAction
  /// How long a replaced task is watched after it runs: a failure within
  /// it counts against the rollout, and the rollout waits for it.
  package var monitorMs: Int64
  /// The deployment this one replaced ("" for the first): what a rollback
  /// returns to.
  package var previousId: String
  /// The W3C trace context of the call that made the deployment
  /// (`traceparent`, `tracestate`), given to its tasks: the agents' work on
  /// them joins the operator's trace. Empty when the server exports none.
  package var traceContext: [String: String]

  package init(
    id: String, plugin: String, version: String, artifactDigest: String, artifactSize: Int64,
    selector: [String: String], configJSON: String, maxFailures: Int, state: DeploymentState, createdMs: Int64,
    parallelism: Int = 1, delayMs: Int64 = 0, failureAction: FailureAction = .pause, monitorMs: Int64 = 0,
    previousId: String = "", traceContext: [String: String] = [:]
  ) {
    self.id = id
    self.plugin = plugin
    self.version = version
    self.artifactDigest = artifactDigest
    self.artifactSize = artifactSize
    self.selector = selector
    self.configJSON = configJSON
    self.maxFailures = maxFailures
    self.state = state
    self.createdMs = createdMs
    self.parallelism = parallelism
    self.delayMs = delayMs
    self.failureAction = failureAction
    self.monitorMs = monitorMs
    self.previousId = previousId
    self.traceContext = traceContext
  }
}
