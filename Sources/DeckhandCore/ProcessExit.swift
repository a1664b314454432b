/// How a process ended.
package enum ProcessExit: Hashable, Sendable, CustomStringConvertible {
  /// It called exit with this status.
  case exited(code: Int32)
  /// A signal ended it.
  case signaled(signal: Int32)
  /// It ended, but how is unknown: it was not this host's child (a plugin
  /// re-attached after an agent restart), so its status went to init.
  case unknown

  /// Whether it exited with status 0.
  package var isSuccess: Bool { self == .exited(code: 0) }

  package var description: String {
    switch self {
    case .exited(let code): "exited with status \(code)"
    case .signaled(let signal): "killed by signal \(signal)\(Self.signalName(signal).map { " (\($0))" } ?? "")"
    case .unknown: "exited (status unknown: not a child of this host)"
    }
  }

  /// "SIGKILL" for 9, for the signals a plugin is likely to die of.
  package static func signalName(_ signal: Int32) -> String? {
    switch signal {
    case 1: "SIGHUP"
    case 2: "SIGINT"
    case 3: "SIGQUIT"
    case 4: "SIGILL"
    case 6: "SIGABRT"
    case 7: "SIGBUS"
    case 8: "SIGFPE"
    case 9: "SIGKILL"
    case 11: "SIGSEGV"
    case 13: "SIGPIPE"
    case 15: "SIGTERM"
    default: nil
    }
  }
}
