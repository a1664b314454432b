/// The status codes of the command socket, as Google's guest agent command
/// monitor defines them: 0 is success, 101 to 106 are the monitor's own.
package enum CommandStatus: Int, Hashable, Sendable, CaseIterable {
  case success = 0
  /// No handler is registered under the request's `Command`.
  case commandNotFound = 101
  /// The request is not JSON, not an object, too large, or ended early.
  case badRequest = 102
  /// Reading the request failed.
  case connectionError = 103
  /// No complete request arrived within the connection's deadline.
  case timeout = 104
  /// The handler failed; the message is its error text.
  case handlerFailed = 105
  /// The response could not be encoded.
  case internalError = 106

  /// The monitor's standard message for this status.
  package var message: String {
    switch self {
    case .success: ""
    case .commandNotFound: "Could not find a handler for the requested command"
    case .badRequest: "Could not parse valid JSON from request"
    case .connectionError: "Connection error"
    case .timeout: "Connection timeout before reading valid request"
    case .handlerFailed: "The command handler encountered an error processing your request"
    case .internalError: "The command server encountered an internal error trying to respond to your request"
    }
  }

  /// The whole response for an error status, pre-encoded, as the guest
  /// agent sends it: `{"Status":N,"StatusMessage":"..."}`.
  package var response: [UInt8] {
    Array("{\"Status\":\(rawValue),\"StatusMessage\":\"\(message)\"}".utf8)
  }
}
