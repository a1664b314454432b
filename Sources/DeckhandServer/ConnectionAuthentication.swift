internal import GRPCCore

/// Marks a connection authenticated in the ``ConnectionGate`` once a call
/// on it carries a good credential.
///
/// Only a connection's calls before that pay for the extra check; the
/// services still authenticate every call themselves (and say why one
/// fails), so this interceptor refuses nothing.
struct ConnectionAuthentication: ServerInterceptor {
  let plane: ControlPlane
  let gate: ConnectionGate

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    if !gate.isAuthenticated(key: context.remotePeer),
      (try? await plane.authenticate(request.metadata.authorization)) != nil
    {
      gate.authenticated(peer: context.remotePeer)
    }
    return try await next(request, context)
  }
}
