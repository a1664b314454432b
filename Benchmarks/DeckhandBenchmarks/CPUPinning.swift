internal import CDeckhandSystem
internal import Foundation

/// Pins a process to one CPU, so a benchmark can keep the load it makes
/// (simulated agents) off the CPU of the process it measures (the server).
enum CPUPinning {
  /// The CPUs this machine has online.
  static var cpus: Int { ProcessInfo.processInfo.activeProcessorCount }

  /// Pins every thread `pid` has now to `cpu`; threads they start later
  /// inherit it. Returns how many threads were pinned.
  @discardableResult
  static func pin(pid: Int32, to cpu: Int) -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    var pinned = 0
    for task in tasks {
      guard let tid = Int32(task) else { continue }
      if deckhand_pin_to_cpu(tid, Int32(cpu)) == 0 { pinned += 1 }
    }
    return pinned
  }

  /// Pins this process (every thread it has now) to `cpu`.
  @discardableResult
  static func pinSelf(to cpu: Int) -> Int { pin(pid: getpid(), to: cpu) }
}
