internal import DeckhandCore
internal import Foundation

/// Free ports for throw-away servers in tests and benchmarks.
package enum FreePort {
  /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel
  /// picks it; a race with another process binding it is possible but rare).
  package static func next() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
      }
    }
    guard bound else { throw DeckhandError(.configurationInvalid, "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}
