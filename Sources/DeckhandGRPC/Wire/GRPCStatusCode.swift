/// gRPC status codes, as sent in `grpc-status`.
package enum GRPCStatusCode: Int, Sendable, Hashable, CustomStringConvertible {
  case ok = 0
  case cancelled = 1
  case unknown = 2
  case invalidArgument = 3
  case deadlineExceeded = 4
  case notFound = 5
  case alreadyExists = 6
  case permissionDenied = 7
  case resourceExhausted = 8
  case failedPrecondition = 9
  case aborted = 10
  case outOfRange = 11
  case unimplemented = 12
  case `internal` = 13
  case unavailable = 14
  case dataLoss = 15
  case unauthenticated = 16

  package var description: String {
    switch self {
    case .ok: "ok"
    case .cancelled: "cancelled"
    case .unknown: "unknown"
    case .invalidArgument: "invalidArgument"
    case .deadlineExceeded: "deadlineExceeded"
    case .notFound: "notFound"
    case .alreadyExists: "alreadyExists"
    case .permissionDenied: "permissionDenied"
    case .resourceExhausted: "resourceExhausted"
    case .failedPrecondition: "failedPrecondition"
    case .aborted: "aborted"
    case .outOfRange: "outOfRange"
    case .unimplemented: "unimplemented"
    case .internal: "internal"
    case .unavailable: "unavailable"
    case .dataLoss: "dataLoss"
    case .unauthenticated: "unauthenticated"
    }
  }
}

/// A failed call: the status code and message from the trailers.
package struct GRPCCallError: Error, Sendable, Hashable, CustomStringConvertible {
  package var code: GRPCStatusCode
  package var message: String

  package init(_ code: GRPCStatusCode, _ message: String) {
    self.code = code
    self.message = message
  }

  package var description: String { "\(code): \(message)" }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
package enum GRPCMessageEncoding {
  package static func encode(_ message: String) -> String {
    var out = ""
    for byte in message.utf8 {
      if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
        out.unicodeScalars.append(Unicode.Scalar(byte))
      } else {
        out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
      }
    }
    return out
  }

  package static func decode(_ text: String) -> String {
    var bytes: [UInt8] = []
    var utf8 = Array(text.utf8)[...]
    while let first = utf8.first {
      if first == UInt8(ascii: "%"), utf8.count >= 3,
        let value = UInt8(String(decoding: utf8.dropFirst().prefix(2), as: UTF8.self), radix: 16)
      {
        bytes.append(value)
        utf8 = utf8.dropFirst(3)
      } else {
        bytes.append(first)
        utf8 = utf8.dropFirst()
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }
}

extension String {
  fileprivate func leftPadded(to width: Int) -> String {
    count >= width ? self : String(repeating: "0", count: width - count) + self
  }
}
