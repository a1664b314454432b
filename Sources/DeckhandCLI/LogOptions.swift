internal import ArgumentParser
internal import DeckhandTelemetry
internal import Logging
internal import Synchronization

/// `--log-format` and `--log-level`, on every long-running command.
struct LogOptions: ParsableArguments {
  enum Format: String, ExpressibleByArgument, CaseIterable {
    case text, json
  }

  @Option(help: "How log lines look on standard error: text or json (one object a line).")
  var logFormat: Format = .text

  @Option(help: "The least severe entries logged: trace, debug, info, notice, warning, error or critical.")
  var logLevel: String?

  /// Sends every logger of the process to the chosen format and level
  /// (once a process; later calls keep the first), and returns one
  /// labelled `label`.
  func logger(_ label: String, defaultLevel: Logger.Level) throws -> Logger {
    let level: Logger.Level
    if let logLevel {
      guard let parsed = Logger.Level(rawValue: logLevel.lowercased()) else {
        throw ValidationError(
          "--log-level \(logLevel): expected one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      level = parsed
    } else {
      level = defaultLevel
    }
    let format = logFormat
    Self.bootstrapped.withLock { done in
      guard !done else { return }
      done = true
      // Entries made inside a span carry its trace_id and span_id.
      LoggingSystem.bootstrap(
        { label, provider in
          switch format {
          case .text:
            var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
            handler.logLevel = level
            return handler
          case .json:
            var handler = JSONLogHandler(label: label, level: level)
            handler.metadataProvider = provider
            return handler
          }
        }, metadataProvider: TraceExport.loggingMetadataProvider)
    }
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
  }

  private static let bootstrapped = Mutex(false)
}
