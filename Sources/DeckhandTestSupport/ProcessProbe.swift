internal import Foundation

/// Processes whose command line contains `marker` as an argument.
package func processes(withArgument marker: String) -> [Int32] {
  guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
  return entries.compactMap { entry -> Int32? in
    guard let pid = Int32(entry), pid != getpid(), isAlive(pid),
      let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
    else { return nil }
    let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    return arguments.contains(marker) ? pid : nil
  }
}

/// Whether a process is alive (and not a zombie).
package func isAlive(_ pid: Int32) -> Bool {
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
  return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
}
