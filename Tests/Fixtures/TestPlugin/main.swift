// deckhand-test-plugin: an SDK plugin that misbehaves on request, for the
// integration tests. Behaviour comes from arguments before the launch
// contract's own:
//   --crash-after-ms N     exit with status 3 N ms after Start
//   --crash-if-exists PATH only crash (--crash-after-ms) while PATH exists
//   --ignore-stop          answer nothing to Stop (hang until killed)
//   --spawn-child PATH     at Start, start `sleep 1000` and write its pid to PATH
//   --slow-start-ms N      sleep N ms before serving
//   --chatter N            print N lines on stdout before serving
//   --unhealthy-after N    GetStatus without data fails (code 1) after N calls
//   --exit-without-serving exit with status 7 at once, printing to stderr
//   --allocate-mb N        50 ms after Start, allocate and touch N MiB
//   --fork N               at Start, start N `sleep 1000`; GetStatus reports forked=K
// GetStatus with data "connect:PORT" tries 127.0.0.1:PORT, "pid" gives its
// pid, "write:PATH" tries to create PATH, "read:PATH" to list a folder or
// read a file: for the isolation tests.
// "host:OP:ARG" calls its Host API as a plugin does (OP get, set (ARG
// KEY=VALUE), call, register, unregister); "host-at:SOCKET|OP:ARG" makes the
// same call on another socket (another plugin's): for the Host API tests.
// "main-actor" runs a job on the MainActor and says on which thread it ran
// (`PluginServer.main` keeps the main thread serving Dispatch's main queue).
import DeckhandPlugin
import Foundation
import SwiftProtobuf
import Synchronization

let arguments = CommandLine.arguments
func value(_ flag: String) -> String? {
  guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
  return arguments[index + 1]
}

/// "ok", or the errno name of a failed TCP connect to 127.0.0.1:port.
func probe(port: UInt16) -> String {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return "socket-failed" }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = port.bigEndian
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  let rc = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  return rc == 0 ? "ok" : "errno\(errno)"
}

final class TestPlugin: Plugin {
  let statusCalls = Mutex(0)
  let forked = Mutex(0)

  func start(_ context: StartContext) async throws {
    // Writes N MiB of log lines to stderr in the background (write errors,
    // such as a full disk, are ignored: a plugin that logs regardless).
    if let megabytes = value("--log-mb").flatMap(Int.init) {
      Thread.detachNewThread {
        let line = Array("test plugin log line: \(String(repeating: "x", count: 70))\n".utf8)
        var written = 0
        while written < megabytes << 20 {
          _ = line.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
          written += line.count
        }
      }
    }
    if let path = value("--spawn-child") {
      let child = Process()
      child.executableURL = URL(fileURLWithPath: "/bin/sleep")
      child.arguments = ["1000"]
      try child.run()
      try "\(child.processIdentifier)".write(toFile: path, atomically: true, encoding: .utf8)
    }
    if let count = value("--fork").flatMap(Int.init) {
      for _ in 0..<count {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["1000"]
        do {
          try child.run()
          forked.withLock { $0 += 1 }
        } catch {
          FileHandle.standardError.write("test plugin: fork refused: \(error)\n".data(using: .utf8)!)
        }
      }
    }
    if let megabytes = value("--allocate-mb").flatMap(Int.init) {
      Thread.detachNewThread {
        Thread.sleep(forTimeInterval: 0.05)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<megabytes {
          let block = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
          block.initializeMemory(as: UInt8.self, repeating: 1, count: 1 << 20)
          blocks.append(block)
        }
        FileHandle.standardError.write("test plugin: allocated \(blocks.count) MiB\n".data(using: .utf8)!)
        while true { Thread.sleep(forTimeInterval: 3600) }
      }
    }
    let armed = value("--crash-if-exists").map { FileManager.default.fileExists(atPath: $0) } ?? true
    if armed, let delay = value("--crash-after-ms").flatMap(Int.init) {
      Thread.detachNewThread {
        Thread.sleep(forTimeInterval: Double(delay) / 1000)
        FileHandle.standardError.write("test plugin: crashing on purpose\n".data(using: .utf8)!)
        exit(3)
      }
    }
  }

  func stop(cleanup: Bool) async throws {
    if arguments.contains("--ignore-stop") {
      while true { try? await Task.sleep(for: .seconds(3600)) }
    }
  }

  /// One Host API call, as "host:OP:ARG" or "host-at:SOCKET|OP:ARG" asks.
  func hostCall(_ data: String) async -> [String] {
    var request = data.dropFirst(5)
    let own = getenv("DECKHAND_HOST_SOCKET").map { String(cString: $0) } ?? ""
    defer { setenv("DECKHAND_HOST_SOCKET", own, 1) }
    if data.hasPrefix("host-at:") {
      let parts = data.dropFirst(8).split(separator: "|", maxSplits: 1)
      guard parts.count == 2 else { return ["error=bad request"] }
      setenv("DECKHAND_HOST_SOCKET", String(parts[0]), 1)
      request = parts[1]
    }
    let fields = request.split(separator: ":", maxSplits: 1).map(String.init)
    guard fields.count == 2 else { return ["error=bad request"] }
    do {
      let host = try await HostClient.connect()
      switch fields[0] {
      case "get":
        return [(try await host.get(fields[1])).map { "found=\(String(decoding: $0, as: UTF8.self))" } ?? "missing"]
      case "set":
        let pair = fields[1].split(separator: "=", maxSplits: 1).map(String.init)
        try await host.set(pair[0], Array((pair.count > 1 ? pair[1] : "").utf8))
        return ["ok"]
      case "call":
        return ["called"] + (try await host.status(ofPlugin: fields[1])).results
      case "register":
        try await host.registerCommand(fields[1])
        return ["ok"]
      case "unregister":
        try await host.unregisterCommand(fields[1])
        return ["ok"]
      default:
        return ["error=unknown op \(fields[0])"]
      }
    } catch let error as DeckhandError {
      return ["error=\(error.code) \(error.message)"]
    } catch {
      return ["error=\(error)"]
    }
  }

  func status(data: String?) async throws -> PluginStatus {
    if let data, data.hasPrefix("host:") || data.hasPrefix("host-at:") {
      return PluginStatus(code: 0, results: await hostCall(data))
    }
    if let data, data.hasPrefix("connect:"), let port = UInt16(data.dropFirst(8)) {
      return PluginStatus(code: 0, results: ["connect=\(probe(port: port))"])
    }
    if data == "pid" { return PluginStatus(code: 0, results: ["pid=\(getpid())"]) }
    if data == "main-actor" {
      let thread = await MainActor.run { Thread.isMainThread ? "main" : "other" }
      return PluginStatus(code: 0, results: ["main-actor-thread=\(thread)"])
    }
    if data == "uid" { return PluginStatus(code: 0, results: ["uid=\(getuid()) gid=\(getgid())"]) }
    if let data, data.hasPrefix("read:") {
      let path = String(data.dropFirst(5))
      var isFolder: ObjCBool = false
      let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
      let ok =
        exists && isFolder.boolValue
        ? (try? FileManager.default.contentsOfDirectory(atPath: path)) != nil
        : FileManager.default.contents(atPath: path) != nil
      return PluginStatus(code: 0, results: ["read=\(ok ? "ok" : "refused")"])
    }
    if let data, data.hasPrefix("write:") {
      let ok = FileManager.default.createFile(atPath: String(data.dropFirst(6)), contents: Data("x".utf8))
      return PluginStatus(code: 0, results: ["write=\(ok ? "ok" : "refused")"])
    }
    if let data { return PluginStatus(code: 0, results: ["echo:\(data)", "forked=\(forked.withLock { $0 })"]) }
    let calls = statusCalls.withLock {
      $0 += 1
      return $0
    }
    if let limit = value("--unhealthy-after").flatMap(Int.init), calls > limit {
      return PluginStatus(code: 1, results: ["unhealthy on purpose"])
    }
    return PluginStatus(code: 0, results: ["ok"])
  }
}

if arguments.contains("--exit-without-serving") {
  FileHandle.standardError.write("test plugin: giving up before serving\n".data(using: .utf8)!)
  exit(7)
}
if let count = value("--chatter").flatMap(Int.init) {
  for index in 0..<count { print("chatter line \(index) | not a handshake") }
  print("some|pipes|but")
  fflush(nil)
}
if let delay = value("--slow-start-ms").flatMap(Int.init) {
  usleep(useconds_t(delay * 1000))
}
PluginServer.main(TestPlugin())
