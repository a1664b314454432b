public import ArgumentParser

/// `deckhand`: the fleet agent, plugin runtime and control plane.
public struct DeckhandCommand: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "deckhand",
    abstract: "Deckhand: a fleet agent, an out-of-process plugin runtime and the control plane that drives them.",
    version: DeckhandVersion.current,
    subcommands: [PluginCommand.self]
  )

  public init() {}
}

/// The version of this build.
public enum DeckhandVersion {
  public static let current = "0.1.0"
}
