/// What the server admits of its peers' connections, before any of them has
/// said who it is.
///
/// The server authenticates each call by its token, so until a connection
/// has carried one good credential it is nobody's: it costs a descriptor,
/// TLS state and, while its handshake runs, CPU on an event loop that
/// heartbeats share. These limits bound what such connections can take.
/// Peers are told apart by address (IP without port): behind one NAT many
/// agents share an address, which is why the per-address figures are large.
/// An address that has authenticated once is trusted past the global
/// unauthenticated limit (not its own), so a flood from elsewhere cannot
/// lock the fleet out.
package struct ConnectionLimits: Hashable, Sendable {
  /// Open connections, all peers together. Each holds a descriptor.
  package var maxConnections: Int
  /// Open connections from one address.
  package var maxConnectionsPerAddress: Int
  /// Connections that have not yet carried a good credential, all peers.
  package var maxUnauthenticated: Int
  /// Such connections from one address.
  package var maxUnauthenticatedPerAddress: Int
  /// New connections one address may open per second, sustained.
  package var newConnectionsPerSecond: Double
  /// New connections one address may open at once, after a quiet spell.
  package var newConnectionsBurst: Double
  /// How long a connection may stay unauthenticated (TLS handshake and a
  /// first call with a credential) before it is closed.
  package var authenticationDeadline: Duration
  /// Concurrent streams (calls) on one connection. An agent uses a handful.
  package var maxStreamsPerConnection: Int

  /// Defaults sized for a fleet of thousands of agents on a server whose
  /// descriptor limit is tens of thousands.
  package init(
    maxConnections: Int = 16_384, maxConnectionsPerAddress: Int = 4_096, maxUnauthenticated: Int = 1_024,
    maxUnauthenticatedPerAddress: Int = 64, newConnectionsPerSecond: Double = 200, newConnectionsBurst: Double = 400,
    authenticationDeadline: Duration = .seconds(10), maxStreamsPerConnection: Int = 256
  ) {
    self.maxConnections = maxConnections
    self.maxConnectionsPerAddress = maxConnectionsPerAddress
    self.maxUnauthenticated = maxUnauthenticated
    self.maxUnauthenticatedPerAddress = maxUnauthenticatedPerAddress
    self.newConnectionsPerSecond = newConnectionsPerSecond
    self.newConnectionsBurst = newConnectionsBurst
    self.authenticationDeadline = authenticationDeadline
    self.maxStreamsPerConnection = maxStreamsPerConnection
  }
}

/// The server's book of open connections: which to admit, which have
/// authenticated, which to close. No I/O; the server's connection handler
/// asks it and does what it answers.
package struct ConnectionBook: Sendable {
  /// Why a connection was refused at accept, for the log.
  package enum Refusal: Hashable, Sendable, CustomStringConvertible {
    case tooManyConnections(limit: Int)
    case tooManyFromAddress(limit: Int)
    case tooManyUnauthenticated(limit: Int)
    case tooManyUnauthenticatedFromAddress(limit: Int)
    case tooFast(perSecond: Double)

    package var description: String {
      switch self {
      case .tooManyConnections(let limit): "the server holds its limit of \(limit) connections"
      case .tooManyFromAddress(let limit): "this address holds its limit of \(limit) connections"
      case .tooManyUnauthenticated(let limit):
        "the server holds its limit of \(limit) connections that have not authenticated"
      case .tooManyUnauthenticatedFromAddress(let limit):
        "this address holds its limit of \(limit) connections that have not authenticated"
      case .tooFast(let perSecond): "this address opens connections faster than \(Int(perSecond)) a second"
      }
    }
  }

  /// What the handler does with a new connection.
  package enum Admission: Hashable, Sendable {
    /// Keep it; close it at `deadline` (nanoseconds, the caller's clock)
    /// unless it has authenticated by then.
    case admit(deadline: UInt64)
    case refuse(Refusal)
  }

  private struct Peer {
    /// A connection from here has authenticated since the server started:
    /// the global unauthenticated limit does not apply to it, so that a
    /// flood from other addresses cannot lock out the fleet's own.
    var trusted = false
    var open = 0
    var unauthenticated = 0
    var tokens: Double
    var refilledAt: UInt64
  }

  private struct Connection {
    var address: String
    var authenticated: Bool
  }

  package let limits: ConnectionLimits
  private var peers: [String: Peer] = [:]
  /// Keyed by the connection's remote `address:port`.
  private var connections: [String: Connection] = [:]
  private var unauthenticated = 0

  package init(limits: ConnectionLimits) {
    self.limits = limits
  }

  /// Open connections.
  package var count: Int { connections.count }
  /// Open connections that have not authenticated.
  package var unauthenticatedCount: Int { unauthenticated }
  /// Addresses the book remembers (open connections or a spent allowance).
  package var addressCount: Int { peers.count }

  /// A connection from `address` (its IP) known as `key` (its IP and port)
  /// was accepted at `now` (nanoseconds).
  package mutating func accept(key: String, address: String, now: UInt64) -> Admission {
    var peer = peers[address] ?? Peer(tokens: limits.newConnectionsBurst, refilledAt: now)
    let elapsed = Double(now &- peer.refilledAt) / 1e9
    peer.tokens = min(limits.newConnectionsBurst, peer.tokens + elapsed * limits.newConnectionsPerSecond)
    peer.refilledAt = now
    let refusal: Refusal? =
      if connections.count >= limits.maxConnections {
        .tooManyConnections(limit: limits.maxConnections)
      } else if peer.open >= limits.maxConnectionsPerAddress {
        .tooManyFromAddress(limit: limits.maxConnectionsPerAddress)
      } else if !peer.trusted, unauthenticated >= limits.maxUnauthenticated {
        .tooManyUnauthenticated(limit: limits.maxUnauthenticated)
      } else if peer.unauthenticated >= limits.maxUnauthenticatedPerAddress {
        .tooManyUnauthenticatedFromAddress(limit: limits.maxUnauthenticatedPerAddress)
      } else if peer.tokens < 1 {
        .tooFast(perSecond: limits.newConnectionsPerSecond)
      } else {
        nil
      }
    if let refusal {
      if peer.open > 0 || peer.tokens < limits.newConnectionsBurst { peers[address] = peer }
      return .refuse(refusal)
    }
    peer.tokens -= 1
    peer.open += 1
    peer.unauthenticated += 1
    peers[address] = peer
    // A key still booked belongs to a connection whose close was missed;
    // the new one replaces it.
    if connections[key] != nil { closed(key: key) }
    connections[key] = Connection(address: address, authenticated: false)
    unauthenticated += 1
    let deadline = UInt64(max(0, limits.authenticationDeadline.inSeconds * 1e9))
    return .admit(deadline: now &+ deadline)
  }

  /// The connection `key` carried a good credential.
  package mutating func authenticated(key: String) {
    guard var connection = connections[key], !connection.authenticated else { return }
    connection.authenticated = true
    connections[key] = connection
    unauthenticated -= 1
    peers[connection.address]?.unauthenticated -= 1
    peers[connection.address]?.trusted = true
  }

  /// Whether the connection `key` has authenticated (false if unknown).
  package func isAuthenticated(key: String) -> Bool {
    connections[key]?.authenticated ?? false
  }

  /// The connection `key` closed.
  package mutating func closed(key: String) {
    guard let connection = connections.removeValue(forKey: key) else { return }
    if !connection.authenticated { unauthenticated -= 1 }
    guard var peer = peers[connection.address] else { return }
    peer.open -= 1
    if !connection.authenticated { peer.unauthenticated -= 1 }
    peers[connection.address] = peer
  }

  /// Forgets untrusted addresses with nothing open whose rate allowance is
  /// full again at `now`, so that the book does not grow with every address
  /// ever seen.
  package mutating func forgetIdle(now: UInt64) {
    peers = peers.filter { _, peer in
      guard peer.open == 0, !peer.trusted else { return true }
      let elapsed = Double(now &- peer.refilledAt) / 1e9
      return peer.tokens + elapsed * limits.newConnectionsPerSecond < limits.newConnectionsBurst
    }
  }
}
