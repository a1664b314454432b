internal import Crypto
internal import DeckhandClient
package import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
internal import GRPCCore
internal import SwiftProtobuf

/// `deckhand.control.v1.Control`: the operator's API. Every call needs an
/// operator token, or a viewer token for those that only read; anything
/// else is refused with PERMISSION_DENIED.
struct ControlService: Deckhand_Control_V1_Control.ServiceProtocol {
  let plane: ControlPlane
  /// Where snapshots in transit are written (`STATE/snapshots`).
  let snapshots: String
  /// `deckhand logs` requests to agents.
  let logs: LogRelay

  /// An operator-side call of `access`: checked, then run as blocking
  /// work (every body reads or writes the store). ``Principal/may(_:)``
  /// says who may make it.
  private func unary<Request: Sendable, Response: Sendable>(
    _ request: ServerRequest<Request>, _ access: Principal.Access,
    _ body: @escaping @Sendable (Request) async throws -> Response
  ) async throws -> ServerResponse<Response> {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: access)
      let message = request.message
      return ServerResponse(message: try await body(message))
    }
  }

  func createToken(request: ServerRequest<Deckhand_Control_V1_CreateTokenRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_CreateTokenResponse>
  {
    try await unary(request, .operate) { message in
      let role: TokenRole
      switch message.role.tokenRole {
      case let made? where [.worker, .operator, .viewer].contains(made): role = made
      case .operatorInvite?, .viewerInvite?:
        throw DeckhandError(.configurationInvalid, "make invites with CreateInvite")
      case .operatorSession?, .viewerSession?:
        throw DeckhandError(.configurationInvalid, "web sessions are made by signing in to the web UI")
      default: throw DeckhandError(.configurationInvalid, "unknown token role \(message.role.rawValue)")
      }
      return Self.created(
        try await plane.createToken(
          role: role, ttl: Self.ttl(message.ttlMs),
          description: message.description_p, labels: message.labels, allowedLabelKeys: message.allowedLabelKeys))
    }
  }

  func listTokens(request: ServerRequest<Deckhand_Control_V1_ListTokensRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_ListTokensResponse>
  {
    try await unary(request, .operate) { _ in
      var response = Deckhand_Control_V1_ListTokensResponse()
      response.tokens = try await plane.store.tokens().map(ProtoMapping.token)
      return response
    }
  }

  func createInvite(request: ServerRequest<Deckhand_Control_V1_CreateInviteRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_CreateTokenResponse>
  {
    try await unary(request, .operate) { message in
      guard let role = message.role.tokenRole, role.invite != nil else {
        throw DeckhandError(.configurationInvalid, "an invite's role is operator or viewer")
      }
      return Self.created(
        try await plane.createInvite(
          role: role, ttl: Self.ttl(message.ttlMs),
          description: message.description_p))
    }
  }

  /// Not through ``unary(_:_:_:)``: the caller holds an invite, which
  /// nothing else accepts.
  func convertInvite(request: ServerRequest<Deckhand_Control_V1_ConvertInviteRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_CreateTokenResponse>
  {
    try await mappingErrors {
      let principal = try await plane.authenticate(request.metadata.authorization)
      guard case .inviteToken(let id, let role) = principal else {
        throw DeckhandError(
          .permissionDenied, "ConvertInvite takes an invite token (deckhand tokens invite); this is a \(principal.role)"
        )
      }
      return ServerResponse(
        message: Self.created(
          try await plane.convertInvite(id: id, role: role, description: request.message.description_p)))
    }
  }

  func createLoginToken(
    request: ServerRequest<Deckhand_Control_V1_CreateLoginTokenRequest>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Control_V1_CreateTokenResponse> {
    try await mappingErrors {
      let principal = try await plane.authorize(request.metadata.authorization, for: .read)
      let message = request.message
      return ServerResponse(
        message: Self.created(
          try await plane.createLoginToken(
            for: principal, ttl: Self.ttl(message.ttlMs),
            description: message.description_p)))
    }
  }

  /// A request's `ttl_ms`: 0 is none.
  static func ttl(_ milliseconds: Int64) -> Duration? {
    milliseconds > 0 ? .milliseconds(milliseconds) : nil
  }

  static func created(_ made: (TokenRecord, String)) -> Deckhand_Control_V1_CreateTokenResponse {
    var response = Deckhand_Control_V1_CreateTokenResponse()
    response.token = ProtoMapping.token(made.0)
    response.secret = made.1
    return response
  }

  func revokeToken(request: ServerRequest<Deckhand_Control_V1_RevokeTokenRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_RevokeTokenResponse>
  {
    try await unary(request, .operate) { message in
      var response = Deckhand_Control_V1_RevokeTokenResponse()
      response.removedNodes = try await plane.revokeToken(id: message.id, removingNodes: message.nodes)
        .map(ProtoMapping.removal)
      return response
    }
  }

  func removeNode(request: ServerRequest<Deckhand_Control_V1_RemoveNodeRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_RemoveNodeResponse>
  {
    try await unary(request, .operate) { message in ProtoMapping.removal(try await plane.removeNode(message.node)) }
  }

  func listNodes(request: ServerRequest<Deckhand_Control_V1_ListNodesRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_ListNodesResponse>
  {
    try await unary(request, .read) { _ in
      var response = Deckhand_Control_V1_ListNodesResponse()
      response.nodes = try await plane.store.nodes().map { ProtoMapping.node($0) }
      return response
    }
  }

  func getNode(request: ServerRequest<Deckhand_Control_V1_GetNodeRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Dispatcher_V1_Node>
  {
    try await unary(request, .read) { message in
      let record = try await plane.findNode(message.node)
      var node = ProtoMapping.node(record)
      if let usage = try await plane.pluginUsage(record.id) {
        node.pluginUsage = usage.plugins.map(ProtoMapping.usage)
        node.pluginUsageMs = usage.atMs
      }
      return node
    }
  }

  func setNodeLabels(request: ServerRequest<Deckhand_Control_V1_SetNodeLabelsRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Dispatcher_V1_Node>
  {
    try await unary(request, .operate) { message in
      ProtoMapping.node(try await plane.setNodeLabels(message.node, set: message.set, remove: message.remove))
    }
  }

  func setNodeAvailability(
    request: ServerRequest<Deckhand_Control_V1_SetNodeAvailabilityRequest>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Dispatcher_V1_Node> {
    try await unary(request, .operate) { message in
      ProtoMapping.node(
        try await plane.setNodeAvailability(message.node, message.availability == .drain ? .drain : .active))
    }
  }

  func listTasks(request: ServerRequest<Deckhand_Control_V1_ListTasksRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_ListTasksResponse>
  {
    try await unary(request, .read) { message in
      let node = message.node.isEmpty ? nil : try await plane.findNode(message.node).id
      var response = Deckhand_Control_V1_ListTasksResponse()
      response.tasks = try await plane.store.tasks(
        node: node, deployment: message.deploymentID.isEmpty ? nil : message.deploymentID, activeOnly: false
      ).map(ProtoMapping.task)
      return response
    }
  }

  func createDeployment(
    request: ServerRequest<Deckhand_Control_V1_CreateDeploymentRequest>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Control_V1_Deployment> {
    try await unary(request, .operate) { message in
      guard
        let action = DeploymentRecord.FailureAction(
          rawValue: message.failureAction.isEmpty ? "pause" : message.failureAction)
      else {
        throw DeckhandError(
          .configurationInvalid, "failure action \(message.failureAction) is not one of pause, rollback")
      }
      guard message.delayMs >= 0, message.monitorMs >= 0 else {
        throw DeckhandError(.configurationInvalid, "a rollout's delay and monitor period must not be negative")
      }
      let rollout = ControlPlane.Rollout(
        parallelism: message.parallelism == 0 ? 1 : max(0, Int(message.parallelism)), delayMs: message.delayMs,
        failureAction: action, monitorMs: message.monitorMs)
      let record = try await plane.deploy(
        plugin: message.plugin, version: message.version, selector: message.selector,
        configJSON: message.configJson, maxFailures: Int(message.maxFailures), rollout: rollout)
      return ProtoMapping.deployment(
        record, tasks: try await plane.store.tasks(node: nil, deployment: record.id, activeOnly: false))
    }
  }

  func listDeployments(
    request: ServerRequest<Deckhand_Control_V1_ListDeploymentsRequest>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Control_V1_ListDeploymentsResponse> {
    try await unary(request, .read) { _ in
      let tasks = try await plane.store.tasks(node: nil, deployment: nil, activeOnly: false)
      var response = Deckhand_Control_V1_ListDeploymentsResponse()
      response.deployments = try await plane.store.deployments().map { ProtoMapping.deployment($0, tasks: tasks) }
      return response
    }
  }

  func getDeployment(request: ServerRequest<Deckhand_Control_V1_GetDeploymentRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_Deployment>
  {
    try await unary(request, .read) { message in
      guard let record = try await plane.store.deployment(id: message.id) else {
        throw DeckhandError(.notFound, "no deployment \(message.id); `deckhand deployments ls` shows them")
      }
      return ProtoMapping.deployment(
        record, tasks: try await plane.store.tasks(node: nil, deployment: record.id, activeOnly: false))
    }
  }

  func listArtifacts(request: ServerRequest<Deckhand_Control_V1_ListArtifactsRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Control_V1_ListArtifactsResponse>
  {
    try await unary(request, .read) { _ in
      var response = Deckhand_Control_V1_ListArtifactsResponse()
      response.artifacts = try await plane.store.artifacts().map(ProtoMapping.artifact)
      return response
    }
  }

  func pushArtifact(
    request: StreamingServerRequest<Deckhand_Control_V1_PushArtifactChunk>, context: ServerContext
  ) async throws -> ServerResponse<Deckhand_Control_V1_Artifact> {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: .operate)
      let temporary = "\(plane.artifactsDirectory)/upload-\(ControlPlane.randomText(bytes: 8))"
      _ = FileManager.default.createFile(atPath: temporary, contents: nil)
      defer { try? FileManager.default.removeItem(atPath: temporary) }
      guard let handle = FileHandle(forWritingAtPath: temporary) else {
        throw DeckhandError(
          .internalError,
          "cannot write \(temporary) to take the upload: \(String(cString: strerror(errno))); check the free space and permissions of the server's state directory"
        )
      }
      var hasher = SHA256()
      var size: Int64 = 0
      var name = ""
      var version = ""
      var platform = ""
      do {
        for try await chunk in request.messages {
          if name.isEmpty {
            name = chunk.name
            version = chunk.version
            platform = chunk.platform
          }
          hasher.update(data: chunk.data)
          let data = chunk.data
          try await BlockingWork.run { try handle.write(contentsOf: data) }
          size += Int64(chunk.data.count)
        }
        try handle.close()
      } catch {
        try? handle.close()
        throw StorageFailure.describe(error, directory: plane.artifactsDirectory)
      }
      guard !name.isEmpty, !version.isEmpty else {
        throw DeckhandError(.configurationInvalid, "the first chunk must name the plugin and its version")
      }
      let digest = HexText.encode(hasher.finalize())
      let (plane, upload) = (plane, (name: name, version: version, platform: platform, size: size))
      let record = try await plane.addArtifact(
        at: temporary, digest: digest, size: upload.size, name: upload.name, version: upload.version,
        platform: upload.platform)
      return ServerResponse(message: ProtoMapping.artifact(record))
    }
  }
}
