/// Where a deployment's rollout stands.
///
/// Stored as one text: `rolling`, `complete`, `replaced`, `paused: WHY` or
/// `rolled back: WHY` (the form the store has always held).
package enum DeploymentState: Sendable, Hashable, Codable, CustomStringConvertible {
  /// Tasks are being created or replaced node by node.
  case rolling
  /// Every matching node has its task and none is starting.
  case complete
  /// Stopped: more tasks failed than the deployment allows.
  case paused(reason: String)
  /// A newer deployment of the same plugin took its place.
  case replaced
  /// Its rollout failed and the previous deployment took its place again
  /// (`--failure-action rollback`).
  case rolledBack(reason: String)

  /// Whether the deployment still places tasks (neither replaced nor
  /// rolled back).
  package var isLive: Bool {
    switch self {
    case .replaced, .rolledBack: false
    case .rolling, .complete, .paused: true
    }
  }

  /// Reads the stored text; anything unknown is a pause that says so, so
  /// a damaged row stops its rollout instead of driving it.
  package init(text: String) {
    switch text {
    case "rolling": self = .rolling
    case "complete": self = .complete
    case "replaced": self = .replaced
    default:
      if text.hasPrefix("paused: ") {
        self = .paused(reason: String(text.dropFirst("paused: ".count)))
      } else if text.hasPrefix("rolled back: ") {
        self = .rolledBack(reason: String(text.dropFirst("rolled back: ".count)))
      } else {
        self = .paused(reason: "unknown state \"\(text)\" in the store")
      }
    }
  }

  /// The stored and displayed text.
  package var text: String {
    switch self {
    case .rolling: "rolling"
    case .complete: "complete"
    case .replaced: "replaced"
    case .paused(let reason): "paused: \(reason)"
    case .rolledBack(let reason): "rolled back: \(reason)"
    }
  }

  package var description: String { text }

  package init(from decoder: any Decoder) throws {
    self.init(text: try decoder.singleValueContainer().decode(String.self))
  }

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(text)
  }
}
