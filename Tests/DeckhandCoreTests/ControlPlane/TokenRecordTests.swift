import DeckhandCore
import Testing

@Suite("TokenRecord: when a token may be used")
struct TokenRecordTests {
  private func token(expiresMs: Int64, revoked: Bool = false) -> TokenRecord {
    TokenRecord(
      id: "abc", role: .operator, secretHash: "h", createdMs: 1_000, expiresMs: expiresMs, revoked: revoked,
      description: "")
  }

  @Test(
    "expiry: 0 never expires; usable up to its expiry, refused after it",
    arguments: [
      (Int64(0), Int64(9_999_999), nil as String?), (5_000, 4_999, nil), (5_000, 5_000, nil),
      (5_000, 5_001, "token abc expired"),
    ])
  func expiry(expiresMs: Int64, nowMs: Int64, refusal: String?) {
    #expect(token(expiresMs: expiresMs).refusal(atMs: nowMs) == refusal)
  }

  @Test("a revoked token is refused as revoked, whether or not it expired")
  func revoked() {
    #expect(token(expiresMs: 0, revoked: true).refusal(atMs: 2_000) == "token abc was revoked")
    #expect(token(expiresMs: 1_500, revoked: true).refusal(atMs: 2_000) == "token abc was revoked")
  }
}
