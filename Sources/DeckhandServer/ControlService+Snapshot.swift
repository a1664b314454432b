internal import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
internal import GRPCCore
internal import Logging

extension ControlService {
  func saveSnapshot(request: ServerRequest<Deckhand_Control_V1_SaveSnapshotRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Control_V1_SnapshotChunk>
  {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: .operate)
      // Written to a file first: the store's transaction ends before the
      // client reads (a slow client holds no transaction open).
      let path = try temporaryFile("save")
      do {
        let records = try await ServerSnapshots.save(plane.store, to: path)
        plane.logger.info("snapshot saved", metadata: ["records": "\(records)"])
      } catch {
        try? FileManager.default.removeItem(atPath: path)
        throw error
      }
      return StreamingServerResponse { writer in
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
          throw DeckhandError(.internalError, "the snapshot file \(path) is gone")
        }
        defer { try? handle.close() }
        while let data = try await BlockingWork.run({ try handle.read(upToCount: 1 << 20) }), !data.isEmpty {
          var chunk = Deckhand_Control_V1_SnapshotChunk()
          chunk.data = data
          try await writer.write(chunk)
        }
        return [:]
      }
    }
  }

  func restoreSnapshot(
    request: StreamingServerRequest<Deckhand_Control_V1_SnapshotChunk>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Control_V1_RestoreSnapshotResponse> {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: .operate)
      let path = try temporaryFile("restore")
      defer { try? FileManager.default.removeItem(atPath: path) }
      guard let handle = FileHandle(forWritingAtPath: path) else {
        throw DeckhandError(.internalError, "cannot write \(path)")
      }
      do {
        for try await chunk in request.messages {
          let data = chunk.data
          try await BlockingWork.run { try handle.write(contentsOf: data) }
        }
        try handle.close()
      } catch {
        try? handle.close()
        throw StorageFailure.describe(error, directory: snapshots)
      }
      let records = try await ServerSnapshots.restore(plane.store, from: path, keepingCA: plane.authority.caStorePEM)
      try await plane.stateRestored()
      var response = Deckhand_Control_V1_RestoreSnapshotResponse()
      response.records = records
      return ServerResponse(message: response)
    }
  }

  /// A new file for a snapshot in transit, in the state directory (0600).
  private func temporaryFile(_ purpose: String) throws -> String {
    try FileManager.default.createDirectory(
      atPath: snapshots, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let path = "\(snapshots)/\(purpose)-\(ControlPlane.randomText(bytes: 8))"
    guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
      throw StorageFailure.describe(POSIXError(.init(rawValue: errno) ?? .EIO), directory: snapshots)
    }
    return path
  }
}
