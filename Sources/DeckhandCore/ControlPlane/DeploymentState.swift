/// Where a deployment's rollout stands.
///
/// Stored as one text: `rolling`, `complete`, `replaced`, or `paused: WHY`
/// (the form the store has always held).
package enum DeploymentState: Sendable, Hashable, Codable, CustomStringConvertible {
  /// Tasks are being created or replaced node by node.
  case rolling
  /// Every matching node has its task and none is starting.
  case complete
  /// Stopped: more tasks failed than the deployment allows.
  case paused(reason: String)
  /// A newer deployment of the same plugin took its place.
  case replaced

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
