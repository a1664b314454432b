import DeckhandCore
import Testing

@Suite("PluginUsage: a node's report, checked before it is kept")
struct PluginUsageTests {
  @Test("bad names, figures that are not finite or negative, and repeats are dropped; sorted by name")
  func hostileReport() {
    let report = [
      PluginUsage(plugin: "web", cpuSeconds: 2, residentBytes: 1024),
      PluginUsage(plugin: "../etc", cpuSeconds: 1, residentBytes: 1),
      PluginUsage(plugin: "", cpuSeconds: 1, residentBytes: 1),
      PluginUsage(plugin: String(repeating: "a", count: 65), cpuSeconds: 1, residentBytes: 1),
      PluginUsage(plugin: "nan", cpuSeconds: .nan, residentBytes: 1),
      PluginUsage(plugin: "inf", cpuSeconds: 1, residentBytes: .infinity),
      PluginUsage(plugin: "negative", cpuSeconds: -1, residentBytes: 1),
      PluginUsage(plugin: "web", cpuSeconds: 99, residentBytes: 99),
      PluginUsage(plugin: "db", cpuSeconds: 0, residentBytes: 0),
    ]
    #expect(
      PluginUsage.checked(report) == [
        PluginUsage(plugin: "db", cpuSeconds: 0, residentBytes: 0),
        PluginUsage(plugin: "web", cpuSeconds: 2, residentBytes: 1024),
      ])
  }

  @Test("a report naming thousands of plugins keeps at most maxPerReport")
  func bounded() {
    let report = (0..<5000).map { PluginUsage(plugin: "p\($0)", cpuSeconds: 1, residentBytes: 1) }
    #expect(PluginUsage.checked(report).count == PluginUsage.maxPerReport)
  }
}
