package import DeckhandCore
internal import GRPCCore

/// Runs a handler body; a ``DeckhandError`` becomes the gRPC status its
/// code stands for, with its message (so the CLI and agents see why).
func mappingErrors<Result>(_ body: () async throws -> Result) async throws -> Result {
  do {
    return try await body()
  } catch let error as DeckhandError {
    throw RPCError(
      code: rpcCode(error.code), message: error.message, metadata: [errorCodeKey: .string(error.code.description)])
  }
}

/// Trailing metadata naming the ``DeckhandError`` code behind a status,
/// where one gRPC code stands for several (UNAVAILABLE: the server is away,
/// or its disk is full).
let errorCodeKey = "deckhand-error-code"

func rpcCode(_ code: DeckhandError.Code) -> RPCError.Code {
  switch code {
  case .tokenInvalid: .unauthenticated
  case .permissionDenied: .permissionDenied
  case .notFound: .notFound
  case .alreadyExists: .alreadyExists
  case .serverUnavailable, .storageUnavailable: .unavailable
  case .rateLimited: .resourceExhausted
  case .notConnected: .failedPrecondition
  case .configurationInvalid, .manifestInvalid: .invalidArgument
  default: .internalError
  }
}

extension Metadata {
  /// The `authorization` value, if any.
  var authorization: String? {
    self[stringValues: "authorization"].first { _ in true }
  }
}
