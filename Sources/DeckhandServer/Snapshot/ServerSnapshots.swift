package import DeckhandCore
internal import DeckhandRuntime
internal import Foundation

/// Saving and restoring a store's whole state as a snapshot file.
package enum ServerSnapshots {
  /// Writes `store`'s state to a new snapshot at `path` (consistent: one
  /// transaction); returns the number of records.
  @discardableResult
  package static func save(_ store: any ServerStore, to path: String) async throws -> UInt64 {
    let writer = try SnapshotWriter(path: path, source: store is PostgresServerStore ? "postgresql" : "sqlite")
    do {
      try await store.export(to: writer)
      try await BlockingWork.run { try writer.finish() }
      return writer.records
    } catch {
      writer.abandon()
      try? FileManager.default.removeItem(atPath: path)
      throw error
    }
  }

  /// Replaces `store`'s state with the snapshot at `path`, after checking
  /// all of it (a bad, truncated or newer-format snapshot changes
  /// nothing). With `keepingCA`, the snapshot must hold that CA: a server
  /// that keeps serving cannot change the CA its agents trust.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` saying why the
  ///   snapshot was refused.
  @discardableResult
  package static func restore(_ store: any ServerStore, from path: String, keepingCA: String? = nil) async throws
    -> UInt64
  {
    let summary = try await BlockingWork.run { try SnapshotReader.verify(path: path) }
    if let keepingCA, summary.secrets[CertificateAuthority.secretName] != keepingCA {
      throw DeckhandError(
        .configurationInvalid,
        "the snapshot holds another CA than this server's (it was taken from another fleet's server): "
          + "agents joined to one do not trust the other. Restore it offline into the server that will serve it: "
          + "deckhand server restore FILE [--state-dir DIR | --database-url URL], then start that server")
    }
    let reader = try SnapshotReader(path: path)
    return try await store.restore(from: reader)
  }
}
