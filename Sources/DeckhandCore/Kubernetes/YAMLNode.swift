/// A YAML value with ordered keys, and its block-style text: what
/// ``KubernetesManifest`` prints. Strings are always double-quoted (JSON
/// escapes are valid YAML), so no value is read back as another type
/// (`no`, `1.0`, `0700`).
package indirect enum YAMLNode: Hashable, Sendable {
  case string(String)
  case integer(Int)
  case bool(Bool)
  case sequence([YAMLNode])
  case mapping([(String, YAMLNode)])

  package static func == (left: YAMLNode, right: YAMLNode) -> Bool {
    switch (left, right) {
    case (.string(let a), .string(let b)): a == b
    case (.integer(let a), .integer(let b)): a == b
    case (.bool(let a), .bool(let b)): a == b
    case (.sequence(let a), .sequence(let b)): a == b
    case (.mapping(let a), .mapping(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
    default: false
    }
  }

  package func hash(into hasher: inout Hasher) {
    hasher.combine(text())
  }

  /// The value as one YAML document (no `---`), ending in a newline.
  package func text() -> String {
    var output = ""
    switch self {
    case .mapping(let pairs) where !pairs.isEmpty: Self.writeMapping(pairs, indent: 0, to: &output)
    case .sequence(let items) where !items.isEmpty: Self.writeSequence(items, indent: 0, to: &output)
    default: output = scalar + "\n"
    }
    return output
  }

  /// Several documents separated by `---`.
  package static func stream(_ documents: [YAMLNode]) -> String {
    documents.map { $0.text() }.joined(separator: "---\n")
  }

  private var isBlock: Bool {
    switch self {
    case .mapping(let pairs): !pairs.isEmpty
    case .sequence(let items): !items.isEmpty
    default: false
    }
  }

  private var scalar: String {
    switch self {
    case .string(let text): Self.quoted(text)
    case .integer(let number): String(number)
    case .bool(let flag): flag ? "true" : "false"
    case .sequence: "[]"
    case .mapping: "{}"
    }
  }

  private static func writeMapping(_ pairs: [(String, YAMLNode)], indent: Int, to output: inout String) {
    let pad = String(repeating: " ", count: indent)
    for (key, value) in pairs {
      output += pad + Self.key(key) + ":"
      write(value, indent: indent, to: &output)
    }
  }

  private static func writeSequence(_ items: [YAMLNode], indent: Int, to output: inout String) {
    let pad = String(repeating: " ", count: indent)
    for item in items {
      switch item {
      case .mapping(let pairs) where !pairs.isEmpty:
        // "- first: x" then the other keys aligned under "first".
        var nested = ""
        writeMapping(pairs, indent: indent + 2, to: &nested)
        output += pad + "- " + nested.dropFirst(indent + 2)
      case .sequence(let inner) where !inner.isEmpty:
        output += pad + "-\n"
        writeSequence(inner, indent: indent + 2, to: &output)
      default:
        output += pad + "- " + item.scalar + "\n"
      }
    }
  }

  private static func write(_ value: YAMLNode, indent: Int, to output: inout String) {
    switch value {
    case .mapping(let pairs) where !pairs.isEmpty:
      output += "\n"
      writeMapping(pairs, indent: indent + 2, to: &output)
    case .sequence(let items) where !items.isEmpty:
      output += "\n"
      writeSequence(items, indent: indent, to: &output)
    default:
      output += " " + value.scalar + "\n"
    }
  }

  /// A key is plain when it is a simple name; quoted otherwise.
  private static func key(_ text: String) -> String {
    let plain =
      !text.isEmpty
      && text.utf8.allSatisfy { byte in
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
          || byte == 0x2E || byte == 0x2F || byte == 0x5F || byte == 0x2D
      }
      && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"].contains(text.lowercased())
      && text.first != "-"
    return plain ? text : quoted(text)
  }

  private static func quoted(_ text: String) -> String {
    // A JSON string literal is a YAML double-quoted scalar.
    String(decoding: JSONValue.string(text).serialized() ?? Array("\"\"".utf8), as: UTF8.self)
  }
}
