import DeckhandPluginHost
import Foundation
import Testing

@Suite("ProcessUsage: a plugin's CPU time and memory from /proc or its cgroup")
struct ProcessUsageTests {
  @Test("a command name with spaces and parentheses does not shift the fields")
  func hostileCommandName() throws {
    // A plugin names its own process: "a) (b" must not be read as fields.
    let stat = "1234 (a) (b 1 2) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10"
    let status = "Name:\tx\nVmRSS:\t    2048 kB\nThreads:\t1\n"
    let usage = try #require(ProcessUsage.parse(stat: stat, status: status, ticksPerSecond: 100))
    #expect(usage.cpuSeconds == 3.0)
    #expect(usage.residentBytes == 2048 * 1024)
  }

  @Test("garbage is no usage, not a crash")
  func garbage() {
    #expect(ProcessUsage.parse(stat: "", status: "", ticksPerSecond: 100) == nil)
    #expect(ProcessUsage.parse(stat: "12 (x) S 1", status: "", ticksPerSecond: 100) == nil)
    #expect(ProcessUsage.parse(stat: "12 (x) S 1 2 3 4 5 6 7 8 9 10 NaNx y", status: "", ticksPerSecond: 100) == nil)
  }

  @Test("this process's own usage reads from /proc")
  func ownProcess() throws {
    let usage = try #require(ProcessUsage.of(pid: getpid()))
    #expect(usage.residentBytes > 1_000_000)
    #expect(usage.cpuSeconds >= 0)
    #expect(ProcessUsage.of(pid: Int32.max) == nil)
  }

  @Test("a cgroup v2 folder gives usage_usec and memory.current")
  func cgroupV2() throws {
    let folder = FileManager.default.temporaryDirectory.path + "/usage-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n".write(
      toFile: "\(folder)/cpu.stat", atomically: true, encoding: .utf8)
    try "4096\n".write(toFile: "\(folder)/memory.current", atomically: true, encoding: .utf8)
    let usage = try #require(ProcessUsage.of(cgroups: .init(mechanism: .cgroupV2, groups: ["": folder])))
    #expect(usage == ProcessUsage(cpuSeconds: 2.5, residentBytes: 4096))
    try "nonsense".write(toFile: "\(folder)/cpu.stat", atomically: true, encoding: .utf8)
    #expect(ProcessUsage.of(cgroups: .init(mechanism: .cgroupV2, groups: ["": folder])) == nil)
  }
}
