/// A plugin's answer to GetStatus.
public struct PluginStatus: Hashable, Sendable {
  /// 0 is healthy; anything else is a failure the host counts.
  public var code: Int32
  /// Free-form lines.
  public var results: [String]

  public init(code: Int32, results: [String] = []) {
    self.code = code
    self.results = results
  }
}
