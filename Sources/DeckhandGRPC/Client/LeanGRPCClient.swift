package import NIOCore
internal import NIOHPACK
internal import NIOHTTP2
internal import NIOPosix
internal import Synchronization

/// A lean gRPC client for unary calls over one HTTP/2 connection.
///
/// Each call is one HTTP/2 stream, handled on the connection's event loop
/// by ``ClientConnectionHandler``, which completes the call's promise. It
/// speaks standard gRPC: length-prefixed messages, `te: trailers`,
/// `grpc-timeout`, status and message in trailers (or in a trailers-only
/// response), custom metadata, a receive size limit, no compression.
/// NIOHTTP2 answers PINGs and holds back DATA the peer's windows do not
/// allow; the handler keeps this side's windows open and stops new calls
/// after a GOAWAY.
package final class LeanGRPCClient: Sendable {
  private let channel: any Channel
  private let handler: NIOLoopBound<ClientConnectionHandler>
  private let authority: String
  /// The largest response message accepted.
  package let maxReceiveMessageSize: Int

  private init(
    channel: any Channel, handler: NIOLoopBound<ClientConnectionHandler>, authority: String,
    maxReceiveMessageSize: Int
  ) {
    self.channel = channel
    self.handler = handler
    self.authority = authority
    self.maxReceiveMessageSize = maxReceiveMessageSize
  }

  /// The settings both lean ends use: a 1 MiB window so that a 64 KiB
  /// message needs no WINDOW_UPDATE round trip.
  package static let windowSize = 1 << 20

  static var http2Settings: HTTP2Settings {
    [
      HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
      HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoder.defaultMaxHeaderListSize),
      HTTP2Setting(parameter: .initialWindowSize, value: windowSize),
      // A 64 KiB message in one DATA frame, not four: each frame is a pass
      // through the HTTP/2 state machine and flow control on both ends.
      HTTP2Setting(parameter: .maxFrameSize, value: maxFrameSize),
    ]
  }

  /// The largest DATA frame a lean end accepts (HTTP/2's default is 16 KiB).
  static let maxFrameSize = 1 << 20

  /// How lean connections read: buffers that grow to 1 MiB (NIO's default
  /// stops at 64 KiB), so a large message comes in with fewer reads.
  static var receiveAllocator: AdaptiveRecvByteBufferAllocator {
    AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: maxFrameSize)
  }

  /// What both lean ends give `NIOHTTP2Handler`.
  ///
  /// NIO's default control-frame limit (200 in 30 s) is a server's guard
  /// against floods. grpc-go servers send a PING with each response to
  /// estimate bandwidth, so a busy client would trip it within a second;
  /// the peer here is a local plugin the host supervises. Header-block and
  /// content-length checks cost about 10 % of the CPU of a call under load;
  /// the messages themselves are length-checked by the gRPC deframer.
  static var connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration {
    var connection = NIOHTTP2Handler.ConnectionConfiguration()
    connection.initialSettings = http2Settings
    connection.controlFrameRateLimit.maximumCount = 1_000_000
    connection.controlFrameRateLimit.windowLength = .seconds(1)
    connection.headerBlockValidation = .disabled
    connection.contentLengthValidation = .disabled
    return connection
  }

  /// Connects to a unix socket (or `host:port` when `port` is given).
  package static func connect(
    unixSocket path: String,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20,
    spin: LoopSpinner.Policy = .default
  ) async throws -> LeanGRPCClient {
    try await connect(
      group: group, authority: "localhost", maxReceiveMessageSize: maxReceiveMessageSize, spin: spin
    ) { bootstrap in
      bootstrap.connect(unixDomainSocketPath: path)
    }
  }

  /// Connects to `host:port` over TCP.
  package static func connect(
    host: String, port: Int,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20,
    spin: LoopSpinner.Policy = .default
  ) async throws -> LeanGRPCClient {
    try await connect(
      group: group, authority: "\(host):\(port)", maxReceiveMessageSize: maxReceiveMessageSize, spin: spin
    ) {
      bootstrap in
      bootstrap.connect(host: host, port: port)
    }
  }

  private static func connect(
    group: any EventLoopGroup, authority: String, maxReceiveMessageSize: Int, spin: LoopSpinner.Policy,
    _ connect: (ClientBootstrap) -> EventLoopFuture<any Channel>
  ) async throws -> LeanGRPCClient {
    // The HTTP/2 handler must be in place before the connection is up, or
    // the server's SETTINGS could arrive first and be lost.
    let handlerPromise = group.any().makePromise(of: NIOLoopBound<ClientConnectionHandler>.self)
    let bootstrap = ClientBootstrap(group: group)
      .channelOption(.recvAllocator, value: receiveAllocator)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let handler = ClientConnectionHandler(windowSize: windowSize, spin: spin)
          try channel.pipeline.syncOperations.addHandlers([
            NIOHTTP2Handler(mode: .client, connectionConfiguration: connectionConfiguration), handler,
          ])
          handlerPromise.succeed(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }
      }
    let channel: any Channel
    do {
      channel = try await connect(bootstrap).get()
    } catch {
      handlerPromise.fail(error)
      throw error
    }
    let handler = try await handlerPromise.futureResult.get()
    return LeanGRPCClient(
      channel: channel, handler: handler, authority: authority, maxReceiveMessageSize: maxReceiveMessageSize)
  }

  /// The process serving the other end (a unix socket's `SO_PEERCRED`,
  /// recorded when the server listened); nil over TCP.
  package func peerCredentials() async -> PeerCredentials? {
    try? await PeerCredentials.of(channel).get()
  }

  /// Makes a unary call.
  ///
  /// - Parameters:
  ///   - path: `/package.Service/Method`.
  ///   - request: The serialized request message.
  ///   - timeout: The deadline, sent as `grpc-timeout` and enforced here.
  ///   - metadata: Extra request headers (lowercase names).
  /// - Returns: The serialized response message.
  /// - Throws: ``GRPCCallError`` with the server's status, or `unavailable`
  ///   / `deadlineExceeded` / `cancelled` from this side.
  package func unary(
    path: String, request: ByteBuffer, timeout: Duration, metadata: [(String, String)] = []
  ) async throws -> ByteBuffer {
    let eventLoop = channel.eventLoop
    let promise = eventLoop.makePromise(of: ByteBuffer.self)
    var headers: HPACKHeaders = [
      ":method": "POST", ":scheme": "http", ":path": path, ":authority": authority,
      "content-type": "application/grpc", "te": "trailers", "user-agent": "deckhand-lean-grpc/1",
      "grpc-timeout": GRPCTimeout.encode(timeout),
    ]
    for (name, value) in metadata { headers.add(name: name, value: value) }
    let message = ByteBuffer.framed(request, allocator: channel.allocator)
    let handler = self.handler
    let maxReceive = maxReceiveMessageSize
    let cancel = CallCanceller()
    let requestHeaders = headers
    let start: @Sendable () -> Void = {
      let id = handler.value.start(
        headers: requestHeaders, message: message, timeout: timeout, maxReceiveMessageSize: maxReceive,
        promise: promise)
      if let id { cancel.install { eventLoop.execute { handler.value.cancel(id) } } }
    }
    // The common case is a caller on this loop (NIO is the global
    // executor): the call starts without a hop.
    if eventLoop.inEventLoop { start() } else { eventLoop.execute(start) }
    return try await withTaskCancellationHandler {
      try await promise.futureResult.get()
    } onCancel: {
      cancel.cancel()
    }
  }

  /// Closes the connection.
  package func close() async {
    try? await channel.close().get()
  }
}

/// Lets a cancelled task reach its call's handler on the event loop.
final class CallCanceller: Sendable {
  private let state = Mutex<(cancelled: Bool, action: (@Sendable () -> Void)?)>((false, nil))

  func install(_ action: @escaping @Sendable () -> Void) {
    let cancelled = state.withLock {
      $0.action = action
      return $0.cancelled
    }
    if cancelled { action() }
  }

  func cancel() {
    let action = state.withLock {
      $0.cancelled = true
      return $0.action
    }
    action?()
  }
}
