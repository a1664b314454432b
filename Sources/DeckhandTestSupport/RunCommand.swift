internal import Foundation

/// Runs a command to its end; returns its status and output.
///
/// Output goes to files, not pipes: reading a pipe would block a thread of
/// Swift's cooperative pool, which has one thread per core, and starve every
/// other test running at the same time.
package func runCommand(
  _ executable: String, _ arguments: [String], timeout: Duration = .seconds(120), environment: [String: String] = [:],
  stdin: String? = nil
) async throws
  -> (status: Int32, stdout: String, stderr: String)
{
  let base = "/tmp/dhcmd-\(UUID().uuidString.prefix(8))"
  _ = FileManager.default.createFile(atPath: "\(base).out", contents: nil)
  _ = FileManager.default.createFile(atPath: "\(base).err", contents: nil)
  defer {
    try? FileManager.default.removeItem(atPath: "\(base).out")
    try? FileManager.default.removeItem(atPath: "\(base).err")
  }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  process.standardInput = stdin.flatMap { FileHandle(forReadingAtPath: $0) } ?? FileHandle.nullDevice
  process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(base).out"))
  process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(base).err"))
  try process.run()
  if !(await eventually(timeout: timeout) { !process.isRunning }) {
    process.terminate()
    _ = await eventually(timeout: .seconds(5)) { !process.isRunning }
  }
  let stdout = (try? String(contentsOfFile: "\(base).out", encoding: .utf8)) ?? ""
  let stderr = (try? String(contentsOfFile: "\(base).err", encoding: .utf8)) ?? ""
  return (process.terminationStatus, stdout, stderr)
}
