public import SwiftProtobuf

/// What Start brings.
public struct StartContext: Sendable {
  /// The plugin's own folder, kept across restarts and new versions.
  public var stateDirectory: String
  /// The manifest's `config`.
  public var config: Config

  /// The configuration the host sent.
  public enum Config: Sendable {
    case none
    case string(String)
    case structure(Google_Protobuf_Struct)
  }

  public init(stateDirectory: String, config: Config) {
    self.stateDirectory = stateDirectory
    self.config = config
  }
}
