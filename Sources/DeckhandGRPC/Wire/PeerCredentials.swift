package import NIOCore

#if canImport(Glibc)
  internal import Glibc
#endif

/// Who is at the other end of a unix socket, as the kernel recorded it when
/// the connection was made (`SO_PEERCRED`): not something the peer says.
package struct PeerCredentials: Sendable, Hashable {
  package var pid: Int32
  package var uid: UInt32
  package var gid: UInt32

  package init(pid: Int32, uid: UInt32, gid: UInt32) {
    self.pid = pid
    self.uid = uid
    self.gid = gid
  }

  /// `struct ucred`'s layout (pid_t, uid_t, gid_t), read by NIO's
  /// getsockopt.
  private struct UCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
  }

  /// The credentials of `channel`'s peer; nil when it is not a unix
  /// socket or the kernel did not say.
  package static func of(_ channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
    guard let provider = channel as? any SocketOptionProvider else {
      return channel.eventLoop.makeSucceededFuture(nil)
    }
    let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
      level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    return future.map { credentials in
      credentials.pid > 0 ? PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid) : nil
    }.recover { _ in nil }
  }
}
