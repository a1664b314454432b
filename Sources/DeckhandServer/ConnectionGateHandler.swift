internal import DeckhandCore
internal import NIOCore

/// The gate at both ends of an accept.
///
/// ``Acceptor`` sits on the listening channel and sees each accepted
/// connection before anything is set up for it: one the ``ConnectionGate``
/// refuses is closed there, at the cost of an accept and a close (no TLS,
/// no HTTP/2 state). ``ConnectionGateHandler`` itself is the first handler
/// of each admitted connection: it closes the connection at its deadline
/// if it has not authenticated by then, and tells the gate when it closes.
final class ConnectionGateHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = NIOAny

  /// On the listening channel: admits or refuses each accepted connection.
  final class Acceptor: ChannelInboundHandler {
    typealias InboundIn = any Channel

    private let gate: ConnectionGate

    init(gate: ConnectionGate) {
      self.gate = gate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      let accepted = unwrapInboundIn(data)
      if let peer = ConnectionGate.peer(of: accepted), case .refuse = gate.accept(key: peer.key, address: peer.address)
      {
        accepted.close(promise: nil)
        return
      }
      context.fireChannelRead(data)
    }
  }

  private let gate: ConnectionGate
  private let key: String
  private var deadline: Scheduled<Void>?
  private var ended = false

  /// The handler of an admitted connection (nil for one the gate does not
  /// know: not an IP peer).
  static func admitted(_ channel: any Channel, gate: ConnectionGate) -> ConnectionGateHandler? {
    ConnectionGate.peer(of: channel).map { ConnectionGateHandler(gate: gate, key: $0.key) }
  }

  private init(gate: ConnectionGate, key: String) {
    self.gate = gate
    self.key = key
  }

  func handlerAdded(context: ChannelHandlerContext) {
    let gate = self.gate
    let key = self.key
    let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
    let wait = gate.limits.authenticationDeadline.inSeconds
    deadline = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(wait * 1e9))) {
      if !gate.isAuthenticated(key: key) { loopBound.value.close(promise: nil) }
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    end()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    end()
  }

  private func end() {
    guard !ended else { return }
    ended = true
    deadline?.cancel()
    deadline = nil
    gate.closed(key: key)
  }
}
