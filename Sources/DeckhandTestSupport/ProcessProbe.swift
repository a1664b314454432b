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

/// CPU time (user and system) `pid` has used, in seconds, from
/// `/proc/PID/stat`; 0 if it cannot be read.
package func cpuSeconds(_ pid: Int32) -> Double {
  guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
    let close = text.lastIndex(of: ")")
  else { return 0 }
  // After the name: utime and stime are fields 14 and 15 (1-based).
  let fields = text[text.index(after: close)...].split(separator: " ")
  guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
  return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
