import DeckhandCore
import DeckhandPluginHost
import DeckhandTelemetry
import NIOCore
import Testing

@testable import DeckhandAgent

@Suite("AgentMetrics: plugin events, calls and command-socket requests")
struct AgentMetricsTests {
  func text(_ registry: MetricsRegistry) async -> String { String(decoding: await registry.scrape(), as: UTF8.self) }

  @Test("restarts, health failures and exits count per plugin; other events count nothing")
  func pluginEvents() async {
    let registry = MetricsRegistry()
    let metrics = AgentMetrics(registry)
    for kind in [PluginEvent.Kind.restarting, .restarting, .healthFailed, .unhealthy, .exited, .ready, .launched] {
      metrics.pluginEvent(PluginEvent(event: kind, plugin: "echo", pid: 7, time: 0))
    }
    let text = await text(registry)
    #expect(text.contains(#"deckhand_plugin_restarts_total{plugin="echo"} 2"#))
    #expect(text.contains(#"deckhand_plugin_health_failures_total{plugin="echo"} 2"#))
    #expect(text.contains(#"deckhand_plugin_exits_total{plugin="echo"} 1"#))
  }

  @Test("calls are timed per plugin and method, with their outcome")
  func calls() async throws {
    let registry = MetricsRegistry()
    let observe = try #require(AgentMetrics(registry).callObserver(plugin: "echo"))
    observe("Apply", .milliseconds(2), true)
    observe("Apply", .milliseconds(30), false)
    let text = await text(registry)
    #expect(text.contains(#"deckhand_plugin_calls_total{plugin="echo",method="Apply",outcome="ok"} 1"#))
    #expect(text.contains(#"deckhand_plugin_calls_total{plugin="echo",method="Apply",outcome="error"} 1"#))
    #expect(text.contains(#"deckhand_plugin_call_duration_seconds_count{plugin="echo",method="Apply"} 2"#))
    #expect(AgentMetrics.off.callObserver(plugin: "echo") == nil)
  }

  @Test("command requests count by command and status; unknown names share one label")
  func commands() async throws {
    let registry = MetricsRegistry()
    let commands = CommandRegistry()
    try commands.register("ok", immediate: { _ in [:] })
    try commands.register("fails", immediate: { _ in throw DeckhandError(.callFailed, "no") })
    AgentMetrics(registry).observeCommands(commands)
    for request in [
      #"{"Command": "ok"}"#, #"{"Command": "ok"}"#, #"{"Command": "fails"}"#, #"{"Command": "x1"}"#,
      #"{"Command": "x2"}"#, "not json",
    ] {
      _ = commands.prepare(ByteBuffer(string: request))
    }
    let text = await text(registry)
    #expect(text.contains(#"deckhand_command_requests_total{command="ok",status="success"} 2"#))
    #expect(text.contains(#"deckhand_command_requests_total{command="fails",status="handler_failed"} 1"#))
    #expect(text.contains(#"deckhand_command_requests_total{command="unknown",status="command_not_found"} 2"#))
    #expect(text.contains(#"deckhand_command_requests_total{command="none",status="bad_request"} 1"#))
    #expect(!text.contains("x1") && !text.contains("x2"))
  }
}
