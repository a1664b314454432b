/// What a token lets its holder do. Stored as its raw text.
package enum TokenRole: String, Sendable, Hashable, Codable, CaseIterable {
  /// Joins an agent once, as a new node.
  case worker
  /// Runs the operator's API (`deckhand nodes`, `deploy`, `jobs`, …).
  case `operator`
}
