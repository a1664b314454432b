import DeckhandCore
import DeckhandGRPC
import DeckhandPluginHost
import Foundation
import Testing

@Suite("PluginPeers: a socket's peer is the plugin's process or one of its children")
struct PluginPeersTests {
  func peer(_ pid: Int32) -> PeerCredentials { PeerCredentials(pid: pid, uid: 0, gid: 0) }

  @Test("the plugin's process and its children are admitted; its parent, strangers and the unknown are not")
  func refusal() throws {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/bin/sleep")
    child.arguments = ["30"]
    try child.run()
    defer { child.terminate() }
    let childPid = child.processIdentifier

    let peers = PluginPeers(plugin: "echo")
    #expect(peers.refusal(peer(getpid()))?.contains("no process running") == true)
    peers.pid = getpid()
    #expect(peers.refusal(peer(getpid())) == nil)
    #expect(peers.refusal(peer(childPid)) == nil, "a child of the plugin speaks for it")
    #expect(peers.refusal(nil) != nil)
    peers.pid = childPid
    let refused = peers.refusal(peer(getpid()))
    #expect(refused?.contains("belongs to plugin echo (pid \(childPid)); pid \(getpid())") == true, "\(refused ?? "")")
    #expect(peers.refusal(peer(1)) != nil, "init is nobody's child")

    let admitting = PluginPeers(plugin: "echo", alsoAdmits: getpid())
    admitting.pid = childPid
    #expect(admitting.refusal(peer(getpid())) == nil)
  }

  @Test("a socket served by a process outside the plugin's tree fails the launch, naming both")
  func checkServer() throws {
    try PluginPeers.checkServer(peer(getpid()), socket: "/run/x.sock", plugin: "echo", pid: getpid())
    #expect {
      try PluginPeers.checkServer(peer(getppid()), socket: "/run/x.sock", plugin: "echo", pid: getpid())
    } throws: { error in
      let error = error as? DeckhandError
      return error?.code == .launchFailed && error?.message.contains("served by pid \(getppid())") == true
    }
    #expect(throws: DeckhandError.self) {
      try PluginPeers.checkServer(nil, socket: "/run/x.sock", plugin: "echo", pid: getpid())
    }
  }
}
