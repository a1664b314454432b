import DeckhandCore
import Testing

@Suite("ConnectionBook: which connections the server admits before they authenticate")
struct ConnectionLimitsTests {
  static let second: UInt64 = 1_000_000_000

  static func limits() -> ConnectionLimits {
    ConnectionLimits(
      maxConnections: 10, maxConnectionsPerAddress: 6, maxUnauthenticated: 5, maxUnauthenticatedPerAddress: 3,
      newConnectionsPerSecond: 2, newConnectionsBurst: 4, authenticationDeadline: .seconds(10))
  }

  static func admitted(_ admission: ConnectionBook.Admission) -> Bool {
    if case .admit = admission { return true }
    return false
  }

  @Test("an admitted connection is due to authenticate by the deadline")
  func deadline() {
    var book = ConnectionBook(limits: Self.limits())
    #expect(book.accept(key: "a:1", address: "a", now: 5 * Self.second) == .admit(deadline: 15 * Self.second))
    #expect(book.unauthenticatedCount == 1)
    #expect(!book.isAuthenticated(key: "a:1"))
    book.authenticated(key: "a:1")
    #expect(book.isAuthenticated(key: "a:1"))
    #expect(book.unauthenticatedCount == 0)
    #expect(book.count == 1)
  }

  @Test("one address holds at most its share of unauthenticated connections; others still get in")
  func unauthenticatedPerAddress() {
    var book = ConnectionBook(limits: Self.limits())
    for port in 0..<3 { #expect(Self.admitted(book.accept(key: "a:\(port)", address: "a", now: 0))) }
    #expect(book.accept(key: "a:9", address: "a", now: 0) == .refuse(.tooManyUnauthenticatedFromAddress(limit: 3)))
    #expect(Self.admitted(book.accept(key: "b:1", address: "b", now: 0)))
    // Authenticating frees the slot.
    book.authenticated(key: "a:0")
    #expect(Self.admitted(book.accept(key: "a:9", address: "a", now: Self.second)))
  }

  @Test("all addresses together hold at most the unauthenticated limit; authenticated peers are not counted")
  func unauthenticatedTotal() {
    var book = ConnectionBook(limits: Self.limits())
    for address in ["a", "b", "c", "d", "e"] {
      #expect(Self.admitted(book.accept(key: "\(address):1", address: address, now: 0)))
    }
    #expect(book.accept(key: "f:1", address: "f", now: 0) == .refuse(.tooManyUnauthenticated(limit: 5)))
    book.authenticated(key: "a:1")
    #expect(Self.admitted(book.accept(key: "f:1", address: "f", now: 0)))
    book.closed(key: "b:1")
    #expect(book.unauthenticatedCount == 4)
    #expect(book.count == 5)
    // Full again; "a" has authenticated before, so its new connections
    // are still admitted (up to its own limit).
    #expect(Self.admitted(book.accept(key: "g:1", address: "g", now: 0)))
    #expect(book.accept(key: "h:1", address: "h", now: 0) == .refuse(.tooManyUnauthenticated(limit: 5)))
    #expect(Self.admitted(book.accept(key: "a:2", address: "a", now: 0)))
  }

  @Test("an address that opens connections too fast is refused until its allowance refills")
  func rate() {
    var book = ConnectionBook(limits: Self.limits())
    for port in 0..<4 {
      #expect(Self.admitted(book.accept(key: "a:\(port)", address: "a", now: 0)))
      book.authenticated(key: "a:\(port)")
    }
    #expect(book.accept(key: "a:4", address: "a", now: 0) == .refuse(.tooFast(perSecond: 2)))
    // Two a second: after half a second, one more.
    #expect(Self.admitted(book.accept(key: "a:4", address: "a", now: Self.second / 2)))
    #expect(book.accept(key: "a:5", address: "a", now: Self.second / 2) == .refuse(.tooFast(perSecond: 2)))
    // Another address is not slowed by it.
    #expect(Self.admitted(book.accept(key: "b:1", address: "b", now: Self.second / 2)))
  }

  @Test("per-address and total connection limits count authenticated connections too")
  func totals() {
    var book = ConnectionBook(limits: Self.limits())
    var now: UInt64 = 0
    for port in 0..<6 {
      now += Self.second
      #expect(Self.admitted(book.accept(key: "a:\(port)", address: "a", now: now)))
      book.authenticated(key: "a:\(port)")
    }
    #expect(book.accept(key: "a:6", address: "a", now: now + Self.second) == .refuse(.tooManyFromAddress(limit: 6)))
    for port in 0..<4 {
      now += Self.second
      #expect(Self.admitted(book.accept(key: "b:\(port)", address: "b", now: now)))
      book.authenticated(key: "b:\(port)")
    }
    #expect(book.accept(key: "c:1", address: "c", now: now) == .refuse(.tooManyConnections(limit: 10)))
    book.closed(key: "a:0")
    book.closed(key: "a:0")  // twice: counted once
    #expect(book.count == 9)
    #expect(Self.admitted(book.accept(key: "c:1", address: "c", now: now)))
  }

  @Test("a refusal says which limit in words")
  func refusalText() {
    #expect(
      "\(ConnectionBook.Refusal.tooManyUnauthenticatedFromAddress(limit: 64))"
        == "this address holds its limit of 64 connections that have not authenticated")
  }

  @Test("addresses with nothing open and a full allowance are forgotten")
  func forget() {
    var book = ConnectionBook(limits: Self.limits())
    _ = book.accept(key: "a:1", address: "a", now: 0)
    book.closed(key: "a:1")
    _ = book.accept(key: "b:1", address: "b", now: 0)
    #expect(book.addressCount == 2)
    // Half a second later "a" has not yet refilled its allowance.
    book.forgetIdle(now: Self.second / 4)
    #expect(book.addressCount == 2)
    book.forgetIdle(now: 10 * Self.second)
    #expect(book.addressCount == 1)
  }
}
