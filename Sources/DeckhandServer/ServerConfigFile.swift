package import DeckhandCore
internal import Foundation
internal import TOMLKit

/// `deckhand server --config FILE`: the server's settings in TOML, keyed
/// by the flags' names with underscores (`database_url`, `listen`, …).
/// Values are kept as the text a flag would take (numbers too), so a flag,
/// the environment and the file are parsed by one set of rules, and flags
/// win.
package struct ServerConfigFile: Sendable, Hashable {
  /// The keys a file may hold.
  package static let keys = [
    "listen", "advertise", "state_dir", "database_url", "heartbeat_period", "job_ack_timeout", "job_heartbeat_interval",
    "job_heartbeat_timeout", "job_output_limit", "job_retention", "max_connections",
    "max_unauthenticated_connections", "max_unauthenticated_per_address", "authentication_deadline",
    "max_heartbeats_per_second", "metrics_listen", "event_retention", "otlp_endpoint", "http_listen",
  ]

  /// Key → value, as text.
  package var values: [String: String] = [:]

  package init(values: [String: String] = [:]) { self.values = values }

  /// Reads the file at `path`.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` naming the file
  ///   and the key that is unknown or not a string or number.
  package init(path: String) throws {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw DeckhandError(.configurationInvalid, "\(path): config file cannot be read")
    }
    let table: TOMLTable
    do {
      table = try TOMLTable(string: String(decoding: data, as: UTF8.self))
    } catch {
      throw DeckhandError(.configurationInvalid, "\(path): not valid TOML: \(error)", cause: error)
    }
    for (key, value) in table {
      guard Self.keys.contains(key) else {
        throw DeckhandError(
          .configurationInvalid, "\(path): unknown key \(key); known: \(Self.keys.joined(separator: ", "))")
      }
      if let text = value.string {
        values[key] = text
      } else if let number = value.int {
        values[key] = String(number)
      } else {
        throw DeckhandError(.configurationInvalid, "\(path): \(key) must be a string or a number")
      }
    }
  }

  package subscript(key: String) -> String? { values[key] }
}
