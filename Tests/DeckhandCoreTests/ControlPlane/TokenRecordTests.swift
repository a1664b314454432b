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

@Suite("TokenRecord: the labels a joining node gets")
struct TokenLabelsTests {
  @Test(
    "the token's labels, plus asked ones whose key it allows; the token's win",
    arguments: [
      ([:], [] as [String], ["role": "web"], [:] as [String: String]),
      (["role": "web"], [], ["role": "db", "zone": "eu"], ["role": "web"]),
      (["role": "web"], ["zone"], ["role": "db", "zone": "eu", "evil": "1"], ["role": "web", "zone": "eu"]),
      ([:], ["role"], ["role": "db"], ["role": "db"]),
      (["role": "web"], ["role"], ["role": "db"], ["role": "web"]),
    ])
  func granted(labels: [String: String], allowed: [String], asked: [String: String], expected: [String: String]) {
    let token = TokenRecord(
      id: "t", role: .worker, secretHash: "h", createdMs: 0, expiresMs: 0, revoked: false, description: "",
      labels: labels, allowedLabelKeys: allowed)
    #expect(token.grantedLabels(asked: asked) == expected)
  }

  @Test(
    "label keys and values follow one rule",
    arguments: [
      ("role", "web", true), ("app.kubernetes.io", "x-1_y", true), ("zone", "", true), ("", "x", false),
      ("-bad", "x", false), ("k", "bad-", false), ("k", String(repeating: "v", count: 64), false), ("k/x", "v", false),
      ("k", "v w", false),
    ])
  func rule(key: String, value: String, valid: Bool) {
    #expect((LabelRule.problem(key: key, value: value) == nil) == valid)
  }
}
