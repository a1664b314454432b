internal import Foundation

/// What a plugin uses now: CPU time so far and resident memory, from its
/// cgroup when it has one (all its processes), else from `/proc` for its
/// main process only.
package struct ProcessUsage: Sendable, Hashable {
  /// CPU time (user and system) since its process or cgroup began.
  package var cpuSeconds: Double
  /// Resident memory now.
  package var residentBytes: Double

  package init(cpuSeconds: Double, residentBytes: Double) {
    self.cpuSeconds = cpuSeconds
    self.residentBytes = residentBytes
  }

  /// `plugin`'s usage; nil when neither its cgroup nor its `/proc` entry
  /// can be read (it just ended).
  package static func of(_ plugin: LaunchedPlugin, proc: String = "/proc") -> ProcessUsage? {
    if let limits = plugin.limits, let usage = of(cgroups: limits) { return usage }
    return of(pid: plugin.pid, proc: proc)
  }

  /// From a cgroup v2 folder (`cpu.stat`, `memory.current`) or v1's
  /// `cpuacct.usage` and `memory.usage_in_bytes`.
  package static func of(cgroups: ResourceControl.Applied) -> ProcessUsage? {
    switch cgroups.mechanism {
    case .cgroupV2:
      guard let group = cgroups.groups[""], let stat = read("\(group)/cpu.stat"),
        let memory = read("\(group)/memory.current").flatMap({
          Double($0.trimmingCharacters(in: .whitespacesAndNewlines))
        })
      else { return nil }
      let usec = stat.split(separator: "\n").first { $0.hasPrefix("usage_usec ") }
        .flatMap { Double($0.dropFirst("usage_usec ".count)) }
      guard let usec else { return nil }
      return ProcessUsage(cpuSeconds: usec / 1e6, residentBytes: memory)
    case .cgroupV1:
      guard let cpu = cgroups.groups["cpu"], let memoryGroup = cgroups.groups["memory"],
        let nanos = read("\(cpu)/cpuacct.usage").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        ),
        let memory = read("\(memoryGroup)/memory.usage_in_bytes").flatMap({
          Double($0.trimmingCharacters(in: .whitespacesAndNewlines))
        })
      else { return nil }
      return ProcessUsage(cpuSeconds: nanos / 1e9, residentBytes: memory)
    case .rlimits:
      return nil
    }
  }

  /// From `/proc/PID/stat` (utime and stime, fields 14 and 15) and
  /// `/proc/PID/status` (VmRSS).
  package static func of(pid: Int32, proc: String = "/proc") -> ProcessUsage? {
    guard let stat = read("\(proc)/\(pid)/stat"), let status = read("\(proc)/\(pid)/status") else { return nil }
    return parse(stat: stat, status: status, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
  }

  /// Reads the two files' text. The command name in `stat` may hold
  /// spaces and parentheses: fields are counted after its last `)`.
  package static func parse(stat: String, status: String, ticksPerSecond: Double) -> ProcessUsage? {
    guard let close = stat.lastIndex(of: ")"), ticksPerSecond > 0 else { return nil }
    // After ")": field 3 (state) onwards; utime and stime are 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    var resident: Double?
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      resident = line.split(separator: " ").dropFirst().first.flatMap { Double($0) }.map { $0 * 1024 }
    }
    return ProcessUsage(cpuSeconds: (user + system) / ticksPerSecond, residentBytes: resident ?? 0)
  }

  private static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
}
