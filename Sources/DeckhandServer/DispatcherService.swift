package import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
internal import GRPCCore
internal import SwiftProtobuf

/// `deckhand.dispatcher.v1.Dispatcher`: agents' sessions, heartbeats, task
/// status, assignments and artifact downloads, over ``ControlPlane``.
struct DispatcherService: Deckhand_Dispatcher_V1_Dispatcher.ServiceProtocol {
  let plane: ControlPlane
  /// Log requests for agents, and their answers.
  let logs: LogRelay

  /// The calling node; any other principal is refused.
  func node(_ metadata: Metadata) async throws -> String {
    let principal = try await plane.authenticate(metadata.authorization)
    guard case .node(let id) = principal else {
      throw DeckhandError(
        .permissionDenied, "this call is for joined agents (workers); a \(principal.role) cannot make it")
    }
    return id
  }

  func getCA(request: ServerRequest<Deckhand_Dispatcher_V1_GetCARequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Dispatcher_V1_GetCAResponse>
  {
    var response = Deckhand_Dispatcher_V1_GetCAResponse()
    response.caCertificate = plane.authority.caPEM
    return ServerResponse(message: response)
  }

  func join(request: ServerRequest<Deckhand_Dispatcher_V1_JoinRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Dispatcher_V1_JoinResponse>
  {
    try await mappingErrors {
      let principal = try await plane.authenticate(request.metadata.authorization)
      guard case .joinToken(let tokenId) = principal else {
        throw DeckhandError(.permissionDenied, "Join needs a worker join token, not a \(principal.role)")
      }
      let message = request.message
      let (node, credential) = try await plane.join(
        name: message.nodeName, description: message.description_p, tokenId: tokenId)
      var response = Deckhand_Dispatcher_V1_JoinResponse()
      response.nodeID = node.id
      response.credential = credential
      return ServerResponse(message: response)
    }
  }

  func session(request: ServerRequest<Deckhand_Dispatcher_V1_SessionRequest>, context: ServerContext) async throws
    -> StreamingServerResponse<Deckhand_Dispatcher_V1_SessionMessage>
  {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let asked = request.message
      let (sessionId, node, period, ended) = try await plane.openSession(
        nodeId, description: asked.description_p, resume: asked.sessionID)
      var first = Deckhand_Dispatcher_V1_SessionMessage()
      first.sessionID = sessionId
      first.node = ProtoMapping.node(node, status: .ready)
      first.managers = Self.peers(plane.managers)
      first.caCertificate = plane.authority.caPEM
      first.heartbeatPeriodMs = Int64(period.inMilliseconds)
      let message = first
      return StreamingServerResponse { [plane] writer in
        try await mappingErrors {
          try await plane.whileJoined(nodeId) {
            try await writer.write(message)
            // Until a newer session replaces this one: the replicas'
            // list again whenever it changes.
            let (changes, token) = plane.managerChanges.watch(0)
            defer { plane.managerChanges.unwatch(0, token) }
            let first = message.managers
            try await withThrowingTaskGroup(of: Void.self) { group in
              group.addTask { for await _ in ended {} }
              group.addTask {
                var sent = first
                for await _ in changes {
                  let now = Self.peers(plane.managers)
                  guard now != sent else { continue }
                  var update = Deckhand_Dispatcher_V1_SessionMessage()
                  update.sessionID = message.sessionID
                  update.managers = now
                  try await writer.write(update)
                  sent = now
                }
              }
              try await group.next()
              group.cancelAll()
            }
            return [:]
          }
        }
      }
    }
  }

  func heartbeat(request: ServerRequest<Deckhand_Dispatcher_V1_HeartbeatRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Dispatcher_V1_HeartbeatResponse>
  {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let period = try plane.heartbeat(
        nodeId, sessionId: request.message.sessionID, usage: request.message.plugins.map(ProtoMapping.usage),
        reported: request.message.events, dropped: Int(request.message.droppedEvents))
      var response = Deckhand_Dispatcher_V1_HeartbeatResponse()
      response.periodMs = Int64(period.inMilliseconds.rounded())
      return ServerResponse(message: response)
    }
  }

  /// Heartbeats as messages on one stream: the node is authenticated once,
  /// when the stream opens; each message is judged in memory and answered
  /// with the next period. The stream ends (NOT_FOUND) once the session is
  /// not the node's current one, as the unary call would answer.
  func heartbeats(
    request: StreamingServerRequest<Deckhand_Dispatcher_V1_HeartbeatRequest>, context: ServerContext
  ) async throws -> StreamingServerResponse<Deckhand_Dispatcher_V1_HeartbeatResponse> {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          var response = Deckhand_Dispatcher_V1_HeartbeatResponse()
          for try await beat in request.messages {
            let period = try plane.heartbeat(
              nodeId, sessionId: beat.sessionID, usage: beat.plugins.map(ProtoMapping.usage), reported: beat.events,
              dropped: Int(beat.droppedEvents))
            response.periodMs = Int64(period.inMilliseconds.rounded())
            try await writer.write(response)
          }
          return [:]
        }
      }
    }
  }

  func updateTaskStatus(
    request: ServerRequest<Deckhand_Dispatcher_V1_UpdateTaskStatusRequest>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Dispatcher_V1_UpdateTaskStatusResponse> {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let updates = request.message.updates
      try await plane.updateTaskStatus(nodeId, updates)
      return ServerResponse(message: Deckhand_Dispatcher_V1_UpdateTaskStatusResponse())
    }
  }

  func assignments(request: ServerRequest<Deckhand_Dispatcher_V1_AssignmentsRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Dispatcher_V1_AssignmentsMessage>
  {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await plane.whileJoined(nodeId) { try await Self.sendAssignments(nodeId, plane: plane, writer: writer) }
        }
      }
    }
  }

  /// The assignments stream: the node's tasks, then each change.
  private static func sendAssignments(
    _ nodeId: String, plane: ControlPlane, writer: RPCWriter<Deckhand_Dispatcher_V1_AssignmentsMessage>
  ) async throws -> Metadata {
    let (changes, token) = plane.assignmentChanges.watch(nodeId)
    defer { plane.assignmentChanges.unwatch(nodeId, token) }
    var sender = AssignmentChain.Sender<TaskRecord>(batchSize: plane.timing.assignmentBatch)
    let initial = try await plane.assignments(nodeId)
    try await writer.write(
      ProtoMapping.assignments(sender.start(initial, version: ControlPlane.randomText(bytes: 8))))
    try await plane.markAssigned(initial)
    for await _ in changes {
      try? await Task.sleep(for: plane.timing.assignmentDebounce)
      let current = try await plane.assignments(nodeId)
      let messages = sender.next(current) { ControlPlane.randomText(bytes: 8) }
      guard !messages.isEmpty else { continue }
      for message in messages { try await writer.write(ProtoMapping.assignments(message)) }
      try await plane.markAssigned(current)
    }
    return [:]
  }

  func tasks(request: ServerRequest<Deckhand_Dispatcher_V1_TasksRequest>, context: ServerContext) async throws
    -> StreamingServerResponse<Deckhand_Dispatcher_V1_TasksMessage>
  {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await plane.whileJoined(nodeId) {
            let (changes, token) = plane.assignmentChanges.watch(nodeId)
            defer { plane.assignmentChanges.unwatch(nodeId, token) }
            repeat {
              var message = Deckhand_Dispatcher_V1_TasksMessage()
              message.tasks = try await plane.assignments(nodeId).map(ProtoMapping.task)
              try await writer.write(message)
            } while await changes.first(where: { _ in true }) != nil
            return [:]
          }
        }
      }
    }
  }

  /// `addresses` as the session's managers, equal weights.
  static func peers(_ addresses: [String]) -> [Deckhand_Dispatcher_V1_WeightedPeer] {
    addresses.map { address in
      var peer = Deckhand_Dispatcher_V1_WeightedPeer()
      peer.address = address
      peer.weight = 10
      return peer
    }
  }

  /// The size of a download's chunks (1 MiB).
  static let chunkSize = 1 << 20

  func downloadArtifact(
    request: ServerRequest<Deckhand_Dispatcher_V1_DownloadArtifactRequest>, context: ServerContext
  ) async throws -> StreamingServerResponse<Deckhand_Dispatcher_V1_ArtifactChunk> {
    try await mappingErrors {
      let principal = try await plane.authenticate(request.metadata.authorization)
      let digest = request.message.digest
      try await plane.checkDownload(digest, by: principal)
      let store = plane.store
      guard let record = try await store.artifact(digest: digest),
        let first = try await store.artifactContent(digest: digest, offset: 0, count: Self.chunkSize)
      else {
        throw DeckhandError(.notFound, "no artifact \(digest)")
      }
      return StreamingServerResponse { writer in
        var data = first
        var offset: Int64 = 0
        while !data.isEmpty {
          var chunk = Deckhand_Dispatcher_V1_ArtifactChunk()
          chunk.data = data
          if offset == 0 { chunk.totalSize = record.size }
          offset += Int64(data.count)
          try await writer.write(chunk)
          guard offset < record.size else { break }
          guard let next = try await store.artifactContent(digest: digest, offset: offset, count: Self.chunkSize)
          else { throw DeckhandError(.notFound, "artifact \(digest) was removed while it was sent") }
          data = next
        }
        return [:]
      }
    }
  }
}
