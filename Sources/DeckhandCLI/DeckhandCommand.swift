package import ArgumentParser
internal import DeckhandCore

/// `deckhand`: the fleet agent, plugin runtime and control plane.
package struct DeckhandCommand: AsyncParsableCommand {
  package static let configuration = CommandConfiguration(
    commandName: "deckhand",
    abstract: "Deckhand: a fleet agent, an out-of-process plugin runtime and the control plane that drives them.",
    version: DeckhandVersion.current,
    subcommands: [
      DevCommand.self, AgentCommand.self, ServerCommand.self, PluginsCommand.self, CmdCommand.self,
      PluginCommand.self, KeysCommand.self, TokensCommand.self, NodesCommand.self, TasksCommand.self,
      DeployCommand.self, DeploymentsCommand.self, ArtifactsCommand.self, JobsCommand.self, ConfigCommand.self,
      ExecCommand.self, SnapshotCommand.self, EventsCommand.self, LogsCommand.self, LoginCommand.self,
    ]
  )

  package init() {}
}
