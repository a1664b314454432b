// deckhand-test-plugin: an SDK plugin that misbehaves on request, for the
// integration tests. Behaviour comes from arguments before the launch
// contract's own:
//   --crash-after-ms N     exit with status 3 N ms after Start
//   --ignore-stop          answer nothing to Stop (hang until killed)
//   --spawn-child PATH     at Start, start `sleep 1000` and write its pid to PATH
//   --slow-start-ms N      sleep N ms before serving
//   --chatter N            print N lines on stdout before serving
//   --unhealthy-after N    GetStatus without data fails (code 1) after N calls
//   --exit-without-serving exit with status 7 at once, printing to stderr
//   --allocate-mb N        50 ms after Start, allocate and touch N MiB
//   --fork N               at Start, start N `sleep 1000`; GetStatus reports forked=K
import DeckhandPlugin
import Foundation
import SwiftProtobuf
import Synchronization

let arguments = CommandLine.arguments
func value(_ flag: String) -> String? {
  guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
  return arguments[index + 1]
}

final class TestPlugin: Plugin {
  let statusCalls = Mutex(0)
  let forked = Mutex(0)

  func start(_ context: StartContext) async throws {
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
    if let delay = value("--crash-after-ms").flatMap(Int.init) {
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

  func status(data: String?) async throws -> PluginStatus {
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
try await PluginServer.serve(TestPlugin())
