internal import DeckhandProtocol
internal import GRPCCore

/// `grpc.health.v1.Health`: go-plugin hosts check service `plugin`.
struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
  func check(
    request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthCheckResponse {
    guard request.service.isEmpty || request.service == "plugin" else {
      throw RPCError(code: .notFound, message: "unknown service \(request.service)")
    }
    var response = Grpc_Health_V1_HealthCheckResponse()
    response.status = .serving
    return response
  }

  func watch(
    request: Grpc_Health_V1_HealthCheckRequest,
    response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
    context: ServerContext
  ) async throws {
    var message = Grpc_Health_V1_HealthCheckResponse()
    message.status = .serving
    try await response.write(message)
    // Serving does not change until the process ends.
    while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
  }
}
