import DeckhandClient
import DeckhandCore
import DeckhandGRPC
import DeckhandPluginHost
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Kubernetes isolation mode (processes)", .serialized)
struct KubernetesModeTests {
  func readiness(port: Int) async throws -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
    let deadline = ContinuousClock.now + .seconds(10)
    while true {
      do {
        let client = try await LeanGRPCClient.connect(host: "127.0.0.1", port: port)
        defer { Task { await client.close() } }
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = KubernetesManifest.readinessService
        let response: Grpc_Health_V1_HealthCheckResponse = try await client.message(
          "/grpc.health.v1.Health/Check", request, timeout: .seconds(5))
        return response.status
      } catch  where ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(20))
      }
    }
  }

  @Test("in a pod, an SDK plugin serves the contract over TCP, and readiness follows GetStatus")
  func tcpAndReadiness() async throws {
    for (arguments, expected) in [
      ([String](), Grpc_Health_V1_HealthCheckResponse.ServingStatus.serving),
      (["--unhealthy-after", "0"], .notServing),
    ] {
      let port = try FreePort.next()
      let process = Process()
      process.executableURL = URL(fileURLWithPath: Fixtures.testPlugin)
      process.arguments = arguments + ["--protocol=tcp", "--address=127.0.0.1:\(port)", "--errorlogfile=/dev/null"]
      try process.run()
      defer {
        process.terminate()
        process.waitUntilExit()
      }
      #expect(try await readiness(port: port) == expected, "\(arguments)")
    }
  }

  @Test("the agent's host does not launch a k8s-mode plugin, and says where it runs instead")
  func hostRefuses() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(
      ["name": "podded", "version": "1", "entrypoint": Fixtures.echo, "isolation": ["mode": "k8s"]])
    do {
      _ = try await workspace.launcher.launch(manifest)
      Issue.record("a k8s-mode plugin was launched locally")
    } catch let error as DeckhandError {
      #expect(error.code == .isolationUnavailable)
      #expect(error.message.contains("k8s-manifest"), "\(error.message)")
    }
  }

  @Test("deckhand plugin k8s-manifest prints the objects, and refuses a bad namespace")
  func commandLine() async throws {
    let workspace = try TestWorkspace()
    let path = try workspace.manifestFile(
      ["name": "echo", "version": "1", "entrypoint": Fixtures.echo, "limits": ["memory_mb": 64]])
    let printed = try await runCommand(
      Fixtures.deckhand, ["plugin", "k8s-manifest", path, "--image", "echo:1", "--namespace", "edge"])
    #expect(printed.status == 0, "\(printed.stderr)")
    #expect(printed.stdout.contains("kind: \"Pod\"") && printed.stdout.contains("memory: \"64Mi\""))
    let refused = try await runCommand(
      Fixtures.deckhand, ["plugin", "k8s-manifest", path, "--image", "echo:1", "--namespace", "Edge_1"])
    #expect(refused.status == 2 && refused.stderr.contains("namespace"), "\(refused.stderr)")
  }
}
