internal import DeckhandCore
package import DeckhandPluginHost
internal import NIOCore

/// One connection of the command socket: reads one JSON request (within
/// the connection's deadline and the size limit), runs its handler off the
/// event loop, writes one JSON response and closes.
final class CommandConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  /// The largest request accepted.
  static let maxRequestSize = 1 << 20

  private let registry: CommandRegistry
  private let timeout: TimeAmount
  private var buffer: ByteBuffer?
  private var scanner = CommandRequestScanner()
  private var timer: Scheduled<Void>?
  private var answered = false
  private var inputClosed = false
  private var responseWritten = false

  init(registry: CommandRegistry, timeout: TimeAmount) {
    self.registry = registry
    self.timeout = timeout
  }

  func channelActive(context: ChannelHandlerContext) {
    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleTask(in: timeout) {
      let (handler, context) = bound.value
      handler.answer(context, CommandStatus.timeout.response)
    }
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard !answered else { return }
    var bytes = unwrapInboundIn(data)
    let verdict = scanner.scan(bytes.readableBytesView)
    if buffer == nil {
      buffer = bytes
    } else {
      buffer!.writeBuffer(&bytes)
    }
    switch verdict {
    case .incomplete:
      if buffer!.readableBytes > Self.maxRequestSize { answer(context, CommandStatus.badRequest.response) }
    case .invalid:
      answer(context, CommandStatus.badRequest.response)
    case .complete(let length):
      guard length <= Self.maxRequestSize else {
        answer(context, CommandStatus.badRequest.response)
        return
      }
      timer?.cancel()
      let request = buffer!.getSlice(at: buffer!.readerIndex, length: length)!
      let trailing = buffer!.readableBytes > length
      buffer = nil
      dispatch(context, request, drain: trailing)
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let event = event as? ChannelEvent, event == .inputClosed {
      inputClosed = true
      if responseWritten {
        context.close(promise: nil)
      } else {
        // The client closed its side before a whole request came.
        answer(context, CommandStatus.badRequest.response)
      }
    } else if event is ResponseWritten {
      responseWritten = true
      finish(context)
    }
    context.fireUserInboundEventTriggered(event)
  }

  /// Ends the connection once the response is out. Closing a unix socket
  /// whose receive queue still holds bytes (the rest of a refused request)
  /// resets it, and the client could lose the response to ECONNRESET: so
  /// the agent shuts down its side, reads (and drops) until the client
  /// closes its own, and closes then, or after one second at most.
  private func finish(_ context: ChannelHandlerContext) {
    if inputClosed {
      context.close(promise: nil)
      return
    }
    context.close(mode: .output, promise: nil)
    let channel = context.channel
    channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    answer(context, CommandStatus.connectionError.response)
  }

  func channelInactive(context: ChannelHandlerContext) {
    answered = true
    timer?.cancel()
    context.fireChannelInactive()
  }

  /// Runs the request's handler and writes its response. `drain`: bytes
  /// came after the request, so the connection must end gracefully.
  private func dispatch(_ context: ChannelHandlerContext, _ request: ByteBuffer, drain: Bool) {
    answeredForReading()
    let channel = context.channel
    switch registry.prepare(request) {
    case .answer(let response):
      writeAndFinish(channel, response, drain: drain)
    case .run(let command, let handler, let object):
      // The one bridge from the channel's callbacks into async code: a
      // channel handler has no task to be the parent of one. The request
      // lives no longer than its connection's deadline (command_timeout).
      let registry = self.registry
      Task { writeAndFinish(channel, await registry.run(command, handler, object), drain: drain) }
    }
  }

  /// Stops the deadline: the request is read.
  private func answeredForReading() {
    answered = true
    timer?.cancel()
    timer = nil
  }

  private func answer(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
    guard !answered else { return }
    answeredForReading()
    guard context.channel.isActive else { return }
    writeAndFinish(context.channel, bytes, drain: true)
  }
}

/// Tells the connection's handler that its response is written.
struct ResponseWritten: Sendable {}

extension CommandRegistry {
  /// What to do with a request.
  enum Preparation {
    /// Answer at once: an error, or an immediate handler's response.
    case answer([UInt8])
    /// Run a waiting handler (of the command named first) with the request.
    case run(String, Handler, [String: JSONValue])
  }

  /// Decodes the request and finds its handler; runs it if it is
  /// immediate.
  func prepare(_ request: ByteBuffer) -> Preparation {
    guard let value = try? JSONValue.parse(request.readableBytesView), case .object(let object) = value else {
      answered("", .badRequest)
      return .answer(CommandStatus.badRequest.response)
    }
    return prepare(object)
  }

  /// Finds the handler of a decoded request; runs it if it is immediate.
  func prepare(_ object: [String: JSONValue]) -> Preparation {
    let command: String
    switch object["Command"] {
    case nil, .null: command = ""
    case .string(let name): command = name
    default:
      answered("", .badRequest)
      return .answer(CommandStatus.badRequest.response)
    }
    switch handler(for: command) {
    case nil:
      answered(command.isEmpty ? "" : "unknown", .commandNotFound)
      return .answer(CommandStatus.commandNotFound.response)
    case .waiting(let handler):
      return .run(command, handler, object)
    case .immediate(let handler):
      return .answer(runImmediate(command, handler, object))
    }
  }

  /// The response to a decoded request if its handler is immediate, run
  /// now (one lookup: a handler replaced meanwhile cannot be half taken);
  /// nil, with nothing run or counted, for any other request.
  func answerIfImmediate(_ object: [String: JSONValue]) -> [UInt8]? {
    guard case .string(let command)? = object["Command"], case .immediate(let handler)? = handler(for: command)
    else { return nil }
    return runImmediate(command, handler, object)
  }

  private func runImmediate(_ command: String, _ handler: ImmediateHandler, _ object: [String: JSONValue]) -> [UInt8] {
    let result = Result { try handler(object) }
    answered(command, result.status)
    return Self.encode(result)
  }

  func run(_ command: String, _ handler: Handler, _ object: [String: JSONValue]) async -> [UInt8] {
    let result: Result<[String: JSONValue], any Error>
    do {
      result = .success(try await handler(object))
    } catch {
      result = .failure(error)
    }
    answered(command, result.status)
    return Self.encode(result)
  }

  /// The response: the handler's fields with Status 0, or Status 105 with
  /// its error's text; 106 if it cannot be encoded.
  static func encode(_ result: Result<[String: JSONValue], any Error>) -> [UInt8] {
    var response: [String: JSONValue]
    switch result {
    case .success(let fields):
      response = fields
      response["Status"] = .number(0)
      if response["StatusMessage"] == nil { response["StatusMessage"] = .string("") }
    case .failure(let error):
      response = [
        "Status": .number(Double(CommandStatus.handlerFailed.rawValue)),
        "StatusMessage": .string("\(error)"),
      ]
    }
    guard let bytes = JSONValue.object(response).serialized() else { return CommandStatus.internalError.response }
    return bytes
  }
}

extension Result<[String: JSONValue], any Error> {
  /// The status a handler's outcome is answered with.
  fileprivate var status: CommandStatus {
    if case .success = self { .success } else { .handlerFailed }
  }
}

/// Writes a response and ends the connection: at once when the whole
/// input was the request, or gracefully (see
/// `CommandConnectionHandler.finish`) when unread bytes may be left, as
/// after an early error answer.
func writeAndFinish(_ channel: any Channel, _ response: [UInt8], drain: Bool) {
  let buffer = channel.allocator.buffer(bytes: response)
  channel.writeAndFlush(buffer).whenComplete { result in
    if case .success = result, drain {
      channel.pipeline.fireUserInboundEventTriggered(ResponseWritten())
    } else {
      channel.close(promise: nil)
    }
  }
}
