package import NIOCore
internal import NIOHPACK
internal import NIOHTTP2
internal import NIOPosix
internal import Synchronization

/// A lean gRPC client for unary calls over one HTTP/2 connection.
///
/// Each call is one HTTP/2 stream whose handler runs on the connection's
/// event loop and completes a promise: the only thread hop is the caller's
/// `await`. It speaks standard gRPC: length-prefixed messages, `te:
/// trailers`, `grpc-timeout`, status and message in trailers (or in a
/// trailers-only response), custom metadata, a receive size limit, no
/// compression. Flow control, PING and GOAWAY are handled by NIOHTTP2.
package final class LeanGRPCClient: Sendable {
  private let channel: any Channel
  private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
  private let authority: String
  /// The largest response message accepted.
  package let maxReceiveMessageSize: Int

  private init(
    channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, authority: String,
    maxReceiveMessageSize: Int
  ) {
    self.channel = channel
    self.multiplexer = multiplexer
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
    ]
  }

  /// NIO's default (200 control frames in 30 s) is a server's guard
  /// against floods. grpc-go servers send a PING with each response to
  /// estimate bandwidth, so a busy client would trip it within a second;
  /// the peer here is a local plugin the host supervises.
  static var controlFrameRateLimit: NIOHTTP2Handler.ControlFrameRateLimitConfiguration {
    var limit = NIOHTTP2Handler.ControlFrameRateLimitConfiguration()
    limit.maximumCount = 1_000_000
    limit.windowLength = .seconds(1)
    return limit
  }

  /// Connects to a unix socket (or `host:port` when `port` is given).
  package static func connect(
    unixSocket path: String,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20
  ) async throws -> LeanGRPCClient {
    try await connect(
      group: group, authority: "localhost", maxReceiveMessageSize: maxReceiveMessageSize
    ) { bootstrap in
      bootstrap.connect(unixDomainSocketPath: path)
    }
  }

  /// Connects to `host:port` over TCP.
  package static func connect(
    host: String, port: Int,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20
  ) async throws -> LeanGRPCClient {
    try await connect(group: group, authority: "\(host):\(port)", maxReceiveMessageSize: maxReceiveMessageSize) {
      bootstrap in
      bootstrap.connect(host: host, port: port)
    }
  }

  private static func connect(
    group: any EventLoopGroup, authority: String, maxReceiveMessageSize: Int,
    _ connect: (ClientBootstrap) -> EventLoopFuture<any Channel>
  ) async throws -> LeanGRPCClient {
    // The HTTP/2 handler must be in place before the connection is up, or
    // the server's SETTINGS could arrive first and be lost.
    let multiplexerPromise = group.any().makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
    let bootstrap = ClientBootstrap(group: group)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          var connection = NIOHTTP2Handler.ConnectionConfiguration()
          connection.initialSettings = http2Settings
          connection.controlFrameRateLimit = controlFrameRateLimit
          // Header-block and content-length checks cost about 10 % of the CPU
          // of a call under load; the messages themselves are length-checked
          // by the gRPC deframer, and the peer is a local host or plugin.
          connection.headerBlockValidation = .disabled
          connection.contentLengthValidation = .disabled
          var stream = NIOHTTP2Handler.StreamConfiguration()
          stream.targetWindowSize = windowSize
          let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client, connectionConfiguration: connection, streamConfiguration: stream
          ) { channel in
            channel.eventLoop.makeSucceededVoidFuture()
          }
          try channel.pipeline.syncOperations.addHandler(ConnectionErrorHandler())
          multiplexerPromise.succeed(multiplexer)
        }
      }
    let channel: any Channel
    do {
      channel = try await connect(bootstrap).get()
    } catch {
      multiplexerPromise.fail(error)
      throw error
    }
    let multiplexer = try await multiplexerPromise.futureResult.get()
    return LeanGRPCClient(
      channel: channel, multiplexer: multiplexer, authority: authority,
      maxReceiveMessageSize: maxReceiveMessageSize)
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
    let requestHeaders = headers
    let message = channel.allocator.framedMessage(request.readableBytesView)
    let cancel = CallCanceller()
    let maxReceive = maxReceiveMessageSize
    let multiplexer = self.multiplexer
    let start: @Sendable () -> Void = {
      let streamPromise = eventLoop.makePromise(of: (any Channel).self)
      streamPromise.futureResult.whenFailure { error in
        promise.fail(GRPCCallError(.unavailable, "cannot open a stream: \(error)"))
      }
      multiplexer.createStreamChannel(promise: streamPromise) { stream in
        stream.eventLoop.makeCompletedFuture {
          let handler = UnaryClientStreamHandler(
            headers: requestHeaders, message: message, timeout: timeout, maxReceiveMessageSize: maxReceive,
            promise: promise)
          try stream.pipeline.syncOperations.addHandler(handler)
          let bound = NIOLoopBound(handler, eventLoop: stream.eventLoop)
          cancel.install { stream.eventLoop.execute { bound.value.cancelFromOutside(stream) } }
        }
      }
    }
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
