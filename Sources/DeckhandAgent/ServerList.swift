internal import DeckhandClient
internal import DeckhandCore
internal import Synchronization

/// The server replicas this agent may talk to: those it was given
/// (`--server A,B`) and those the servers name in its session (after
/// SwarmKit's managers list). One is current; when a call to it fails,
/// the next one is tried, so the agent moves to a live replica within a
/// reconnect or two.
final class ServerList: Sendable {
  private struct State {
    var endpoints: [ServerEndpoint]
    var current = 0
  }
  private let state: Mutex<State>

  /// The replicas in `text` (`HOST:PORT[,HOST:PORT…]`).
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` for an address
  ///   that is not `HOST:PORT`, or none.
  init(parsing text: String) throws {
    let endpoints = try Self.parse(text)
    state = Mutex(State(endpoints: endpoints))
  }

  /// The endpoints of `text`, in order, without repeats.
  static func parse(_ text: String) throws -> [ServerEndpoint] {
    var endpoints: [ServerEndpoint] = []
    for part in text.split(separator: ",") {
      let endpoint = try ServerEndpoint(parsing: String(part).trimmingSpaces)
      if !endpoints.contains(endpoint) { endpoints.append(endpoint) }
    }
    guard !endpoints.isEmpty else {
      throw DeckhandError(.configurationInvalid, "--server: no address (expected HOST:PORT[,HOST:PORT…])")
    }
    return endpoints
  }

  /// The replica to call now.
  var current: ServerEndpoint { state.withLock { $0.endpoints[$0.current] } }

  /// Every replica known, the current one first.
  var all: [ServerEndpoint] {
    state.withLock { state in
      Array(state.endpoints[state.current...] + state.endpoints[..<state.current])
    }
  }

  /// A call to `endpoint` failed: if it is still the current replica, the
  /// next one becomes current.
  func failed(_ endpoint: ServerEndpoint) {
    state.withLock { state in
      guard state.endpoints.count > 1, state.endpoints[state.current] == endpoint else { return }
      state.current = (state.current + 1) % state.endpoints.count
    }
  }

  /// The replicas a server named: added to the list (the current one
  /// stays current). Addresses that do not parse are ignored.
  func learned(_ addresses: [String]) {
    let named = addresses.compactMap { try? ServerEndpoint(parsing: $0) }
    state.withLock { state in
      for endpoint in named where !state.endpoints.contains(endpoint) { state.endpoints.append(endpoint) }
    }
  }
}

extension String {
  /// Without leading and trailing spaces.
  fileprivate var trimmingSpaces: String {
    String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
  }
}
