package import DeckhandCore
package import Logging
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
package import ServiceLifecycle
internal import Synchronization

/// Serves `GET /metrics` in the Prometheus text format on a plain HTTP/1.1
/// listener (`--metrics-listen HOST:PORT`), until graceful shutdown.
///
/// One route on NIO's HTTP/1 codec rather than a web framework: the agent
/// serves it too, and the agent's idle memory is held to 20 MiB. Whoever
/// can reach the address reads the metrics (no label carries a node id,
/// job id or token); bind it to loopback or a scrape network.
package final class MetricsEndpoint: Service, Sendable {
  /// Connections served at once; more are closed as they arrive.
  package static let maxConnections = 32
  /// A connection that sends nothing for this long is closed.
  package static let idleTimeout: Duration = .seconds(10)

  private let host: String
  private let port: Int
  private let registry: MetricsRegistry
  private let logger: Logger
  /// The bound port, or nil once binding failed.
  private let bound = OnceValue<Int?>()
  private let openConnections = Atomic<Int>(0)

  package init(host: String, port: Int, registry: MetricsRegistry, logger: Logger) {
    self.host = host
    self.port = port
    self.registry = registry
    self.logger = logger
  }

  /// The port it listens on once bound (the one chosen, for port 0); nil
  /// if binding failed (or the waiting task was cancelled).
  package var listeningPort: Int? {
    get async { await bound.wait() ?? nil }
  }

  package func run() async throws {
    let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    do {
      server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.backlog, value: 64)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: host, port: port) { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandlers([
              IdleStateHandler(readTimeout: TimeAmount(Self.idleTimeout)), CloseWhenIdle(),
            ])
            return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
              wrappingChannelSynchronously: channel)
          }
        }
    } catch {
      bound.set(nil)
      throw DeckhandError(.configurationInvalid, "cannot serve metrics on \(host):\(port): \(error)")
    }
    let port = server.channel.localAddress?.port ?? self.port
    bound.set(port)
    logger.info("metrics served", metadata: ["address": "http://\(host):\(port)/metrics"])
    try await withGracefulShutdownHandler {
      try await withThrowingDiscardingTaskGroup { group in
        try await server.executeThenClose { connections in
          for try await connection in connections {
            guard openConnections.add(1, ordering: .relaxed).newValue <= Self.maxConnections else {
              self.openConnections.subtract(1, ordering: .relaxed)
              try? await connection.channel.close()
              continue
            }
            group.addTask {
              defer { self.openConnections.subtract(1, ordering: .relaxed) }
              await self.serve(connection)
            }
          }
        }
      }
    } onGracefulShutdown: {
      server.channel.close(promise: nil)
    }
  }

  /// Answers each request on one connection until the peer closes it or
  /// sends a body (a connection idle for ``idleTimeout`` is closed by
  /// ``CloseWhenIdle``).
  private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
    do {
      try await connection.executeThenClose { inbound, outbound in
        var parts = inbound.makeAsyncIterator()
        while case .head(let head)? = try await parts.next() {
          // Nothing here takes a body: a request that sends one is
          // answered and the connection closed.
          guard case .end? = try await parts.next() else {
            try await respond(outbound, head, status: .badRequest, body: "no body expected\n", close: true)
            return
          }
          let (status, body) = await answer(head)
          try await respond(outbound, head, status: status, body: body, close: !head.isKeepAlive)
          if !head.isKeepAlive { return }
        }
      }
    } catch {
      logger.debug("metrics connection ended", metadata: ["error": "\(error)"])
    }
  }

  private func answer(_ head: HTTPRequestHead) async -> (HTTPResponseStatus, [UInt8]) {
    let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
    guard path == "/metrics" else { return (.notFound, Array("only /metrics is served here\n".utf8)) }
    guard head.method == .GET || head.method == .HEAD else { return (.methodNotAllowed, Array("use GET\n".utf8)) }
    return (.ok, await registry.scrape())
  }

  private func respond(
    _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, _ request: HTTPRequestHead,
    status: HTTPResponseStatus, body: String, close: Bool
  ) async throws {
    try await respond(outbound, request, status: status, body: Array(body.utf8), close: close)
  }

  private func respond(
    _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, _ request: HTTPRequestHead,
    status: HTTPResponseStatus, body: [UInt8], close: Bool
  ) async throws {
    var headers = HTTPHeaders()
    headers.add(
      name: "Content-Type",
      value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
    headers.add(name: "Content-Length", value: "\(body.count)")
    if close { headers.add(name: "Connection", value: "close") }
    if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
    try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
    if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
    try await outbound.write(.end(nil))
  }
}

/// Closes a connection that sent nothing for its `IdleStateHandler`'s read
/// timeout (a slow or silent client holds no connection for long).
private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
  typealias InboundIn = HTTPServerRequestPart

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is IdleStateHandler.IdleStateEvent {
      context.close(promise: nil)
    } else {
      context.fireUserInboundEventTriggered(event)
    }
  }
}
