internal import DeckhandCore
internal import Foundation
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
      buffer = nil
      dispatch(context, request)
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    // The client closed its side before a whole request came.
    if let event = event as? ChannelEvent, event == .inputClosed {
      answer(context, CommandStatus.badRequest.response)
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    answer(context, CommandStatus.connectionError.response)
  }

  func channelInactive(context: ChannelHandlerContext) {
    answered = true
    timer?.cancel()
    context.fireChannelInactive()
  }

  private func dispatch(_ context: ChannelHandlerContext, _ request: ByteBuffer) {
    answeredForReading()
    let registry = self.registry
    let channel = context.channel
    Task {
      let response = await registry.respond(to: request)
      let buffer = channel.allocator.buffer(bytes: response)
      channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
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
    let buffer = context.channel.allocator.buffer(bytes: bytes)
    let written = context.eventLoop.makePromise(of: Void.self)
    context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
    let channel = context.channel
    written.futureResult.whenComplete { _ in channel.close(promise: nil) }
  }
}

extension CommandRegistry {
  /// Decodes the request, runs its handler, encodes the response.
  func respond(to request: ByteBuffer) async -> [UInt8] {
    let object: [String: JSONValue]
    do {
      guard case .object(let decoded) = try JSONDecoder().decode(JSONValue.self, from: Data(request.readableBytesView))
      else { return CommandStatus.badRequest.response }
      object = decoded
    } catch {
      return CommandStatus.badRequest.response
    }
    let command: String
    switch object["Command"] {
    case nil, .null: command = ""
    case .string(let name): command = name
    default: return CommandStatus.badRequest.response
    }
    guard let handler = handler(for: command) else { return CommandStatus.commandNotFound.response }
    var response: [String: JSONValue]
    do {
      response = try await handler(object)
      response["Status"] = .number(0)
      if response["StatusMessage"] == nil { response["StatusMessage"] = .string("") }
    } catch {
      response = [
        "Status": .number(Double(CommandStatus.handlerFailed.rawValue)),
        "StatusMessage": .string("\(error)"),
      ]
    }
    do {
      return Array(try JSONEncoder().encode(response))
    } catch {
      return CommandStatus.internalError.response
    }
  }

}
