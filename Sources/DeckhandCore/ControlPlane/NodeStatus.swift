/// Whether a node is up, as the server sees it. Stored as its raw text.
package enum NodeStatus: String, Sendable, Hashable, Codable, CaseIterable {
  /// Not heard from since this server started.
  case unknown = "UNKNOWN"
  /// Its session is open and its heartbeats arrive.
  case ready = "READY"
  /// Its heartbeats stopped (3 periods).
  case down = "DOWN"
}
