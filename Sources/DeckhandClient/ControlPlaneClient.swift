package import DeckhandCore
package import DeckhandProtocol
internal import Foundation
package import GRPCCore
package import GRPCNIOTransportHTTP2Posix

/// A TLS connection to a server, for agents and the CLI.
///
/// Trust comes from the token: ``trustedCA(at:token:)`` fetches the CA over
/// an unverified connection and accepts it only if its SHA-256 equals the
/// digest in the token (SwarmKit's join), after which every connection
/// verifies the server against that CA.
package enum ControlPlaneClient {
  package typealias Client = GRPCClient<HTTP2ClientTransport.Posix>

  /// `authorization: Bearer CREDENTIAL`.
  package static func metadata(_ credential: String) -> Metadata {
    ["authorization": "Bearer \(credential)"]
  }

  /// The server's CA, checked against the digest `token` carries.
  ///
  /// - Throws: ``DeckhandError`` `serverUntrusted` when its CA is not the
  ///   token's, `serverUnavailable` when the server cannot
  ///   be reached or its CA is not the token's.
  package static func trustedCA(at endpoint: ServerEndpoint, token: String) async throws -> String {
    guard case .token(let digest, _, _) = try Credential.parse(token) else {
      throw DeckhandError(.tokenInvalid, "a join or operator token (DHTKN-1-…) is needed to trust a new server")
    }
    let pem: String
    do {
      pem = try await withClient(endpoint, caPEM: nil) { client in
        try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).getCA(
          Deckhand_Dispatcher_V1_GetCARequest(), options: options(.seconds(10))
        ).caCertificate
      }
    } catch let error as RPCError {
      throw DeckhandError(.serverUnavailable, "cannot reach the server at \(endpoint): \(error.message)", cause: error)
    }
    guard try CertificateDigest.of(pem: pem) == digest else {
      throw DeckhandError(
        .serverUntrusted,
        "the server at \(endpoint) is not the one the token was made for (its CA digest differs); refusing to trust it")
    }
    return pem
  }

  /// Runs `body` with a client to `endpoint` that trusts `caPEM` (nil: no
  /// verification, only for fetching the CA).
  package static func withClient<Result: Sendable>(
    _ endpoint: ServerEndpoint, caPEM: String?, interceptors: [any ClientInterceptor] = [],
    _ body: (Client) async throws -> Result
  ) async throws -> Result {
    try await withGRPCClient(transport: try transport(endpoint, caPEM: caPEM), interceptors: interceptors) { client in
      try await body(client)
    }
  }

  /// A TLS transport to `endpoint` that trusts `caPEM` (nil: no
  /// verification, only for fetching the CA).
  package static func transport(_ endpoint: ServerEndpoint, caPEM: String?) throws -> HTTP2ClientTransport.Posix {
    // An IP literal must not become the TLS server name (SNI forbids it).
    var v4 = in_addr()
    var v6 = in6_addr()
    let target: any ResolvableTarget =
      if inet_pton(AF_INET, endpoint.host, &v4) == 1 {
        .ipv4(host: endpoint.host, port: endpoint.port)
      } else if inet_pton(AF_INET6, endpoint.host, &v6) == 1 {
        .ipv6(host: endpoint.host, port: endpoint.port)
      } else {
        .dns(host: endpoint.host, port: endpoint.port)
      }
    return try HTTP2ClientTransport.Posix(
      target: target,
      transportSecurity: .tls { tls in
        if let caPEM {
          tls.trustRoots = .certificates([.bytes(Array(caPEM.utf8), format: .pem)])
          // The CA is this cluster's own: any certificate it signed is the
          // server, whatever address the agent dialled.
          tls.serverCertificateVerification = .noHostnameVerification
        } else {
          tls.serverCertificateVerification = .noVerification
        }
      },
      config: .defaults { config in
        config.backoff = .init(initial: .milliseconds(50), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
      })
  }

  /// Options with a deadline.
  package static func options(_ timeout: Duration) -> CallOptions {
    var options = CallOptions.defaults
    options.timeout = timeout
    return options
  }

  /// A gRPC error as a ``DeckhandError`` with the server's message.
  package static func describe(_ error: any Error, endpoint: ServerEndpoint) -> DeckhandError {
    if let error = error as? DeckhandError { return error }
    guard let rpc = error as? RPCError else {
      return DeckhandError(.serverUnavailable, "talking to \(endpoint) failed: \(error)", cause: error)
    }
    if rpc.metadata[stringValues: "deckhand-error-code"].contains("\(DeckhandError.Code.storageUnavailable)") {
      return DeckhandError(.storageUnavailable, "the server at \(endpoint) cannot store this: \(rpc.message)")
    }
    let code: DeckhandError.Code =
      switch rpc.code {
      case .unauthenticated: .tokenInvalid
      case .permissionDenied: .permissionDenied
      case .notFound: .notFound
      case .invalidArgument: .configurationInvalid
      case .unavailable, .deadlineExceeded: .serverUnavailable
      case .resourceExhausted: .rateLimited
      case .failedPrecondition: .notConnected
      default: .internalError
      }
    return DeckhandError(code, rpc.code == .unavailable ? "cannot reach \(endpoint): \(rpc.message)" : rpc.message)
  }
}
