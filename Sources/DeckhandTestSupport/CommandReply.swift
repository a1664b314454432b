package import DeckhandCore

/// A command socket reply's `Status`, or -1 when it has none.
package func status(_ response: [String: JSONValue]) -> Int {
  if case .number(let status) = response["Status"] { return Int(status) }
  return -1
}

/// A command socket reply's `StatusMessage`, or "".
package func message(_ response: [String: JSONValue]) -> String {
  if case .string(let text) = response["StatusMessage"] { return text }
  return ""
}
