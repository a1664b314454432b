/// Where an installed plugin stands, as the agent shows it
/// (`plugins.list`'s `State`), taken from its supervisor's events. The
/// supervisor's own ``SupervisorStateMachine/State`` says what it does next;
/// this says what an operator sees: it keeps how the last run ended
/// (exited, failed) and whether the agent let go of it (detached).
package enum PluginState: String, Sendable, Hashable, CaseIterable {
  /// Launched or attached; not yet answering.
  case starting
  /// Ready, and its last health check passed.
  case running
  /// Failed its health checks in a row; it is killed and restarted.
  case unhealthy
  /// Its process ended; a restart may follow.
  case exited
  /// Its launch failed before it was ready.
  case failed
  /// Waiting out its backoff before the next launch.
  case restarting
  /// Stopped by the agent (remove, or the agent's shutdown).
  case stopped
  /// Left running by an agent that stopped.
  case detached
}
