internal import Foundation
package import Logging
internal import Synchronization

/// A swift-log handler that writes one JSON object a line to standard
/// error (`--log-format json`): `time` (RFC 3339, UTC, milliseconds),
/// `level`, `logger`, `message`, then the metadata's keys (a `trace_id`
/// among them when the entry belongs to a trace).
///
/// swift-log ships a text handler only; this is the JSON one, for log
/// shippers that read lines of JSON.
package struct JSONLogHandler: LogHandler {
  package var logLevel: Logger.Level
  package var metadata: Logger.Metadata = [:]
  /// Metadata added to every entry when it is made (the current trace's
  /// `trace_id` and `span_id`: ``TraceExport/loggingMetadataProvider``).
  package var metadataProvider: Logger.MetadataProvider?
  private let label: String
  private let write: @Sendable (String) -> Void

  /// Writes to standard error, one `write(2)` a line (lines from several
  /// threads never interleave).
  package init(label: String, level: Logger.Level) {
    self.init(label: label, level: level) { line in
      var line = line
      line.withUTF8 { bytes in _ = Foundation.write(2, bytes.baseAddress, bytes.count) }
    }
  }

  /// Writes each line (with its newline) with `write`.
  package init(label: String, level: Logger.Level, write: @escaping @Sendable (String) -> Void) {
    self.label = label
    self.logLevel = level
    self.write = write
  }

  package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  package func log(event: LogEvent) {
    var fields: [(String, String)] = [
      ("time", Self.timestamp()), ("level", event.level.rawValue), ("logger", label),
      ("message", event.message.description),
    ]
    var merged = metadata
    if let provided = metadataProvider?.get(), !provided.isEmpty { merged.merge(provided) { $1 } }
    if let own = event.metadata { merged.merge(own) { $1 } }
    for (key, value) in merged.sorted(by: { $0.key < $1.key })
    where !["time", "level", "logger", "message"].contains(key) {
      fields.append((key, value.description))
    }
    var line = "{"
    for (index, (key, value)) in fields.enumerated() {
      if index > 0 { line += "," }
      line += Self.quoted(key) + ":" + Self.quoted(value)
    }
    write(line + "}\n")
  }

  /// `text` as a JSON string: quotes, backslashes and control characters
  /// escaped (a message may hold anything a peer sent).
  static func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x2028...0x2029).contains(scalar.value):
        out += String(format: "\\u%04x", scalar.value)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }

  private static func timestamp() -> String {
    Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
  }
}
