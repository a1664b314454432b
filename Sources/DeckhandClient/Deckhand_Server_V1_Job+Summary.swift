package import DeckhandCore
package import DeckhandProtocol

extension Deckhand_Server_V1_Job {
  /// What the job does, in a few words (`exec uname -a`, `plugin.apply
  /// echo`): the CLI's tables and the web UI.
  package var operationSummary: String {
    switch operation {
    case .exec(let exec): "exec " + exec.argv.joined(separator: " ")
    case .pluginApply(let apply): "plugin.apply \(apply.plugin)"
    case .pluginStatus(let status): "plugin.status \(status.plugin)"
    case .noop: "noop"
    case nil: "-"
    }
  }
}

extension Deckhand_Server_V1_JobState {
  /// ``DeckhandCore/JobState/displayName``, `UNKNOWN` for a state this
  /// build does not know.
  package var displayName: String {
    JobState(rawValue: rawValue)?.displayName ?? "UNKNOWN"
  }
}
