import DeckhandCore
import Foundation
import Testing
import Yams

@Suite("Kubernetes isolation mode")
struct KubernetesManifestTests {
  func manifest(_ json: String) throws -> PluginManifest {
    try PluginManifest.parse(Data(json.utf8), path: "/srv/plugins/p/plugin.json")
  }

  /// The YAML read back by a real YAML parser, one object per document.
  func objects(_ objects: KubernetesManifest) throws -> [[String: Any]] {
    try Yams.load_all(yaml: try objects.yaml()).map { try #require($0 as? [String: Any]) }
  }

  /// DNS-1123 label, as the API server checks object names.
  func isDNSLabel(_ text: String) -> Bool {
    text.range(of: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", options: .regularExpression) != nil && text.count <= 63
  }

  /// Label values, as the API server checks them.
  func isLabelValue(_ text: String) -> Bool {
    text.isEmpty
      || (text.count <= 63
        && text.range(of: "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", options: .regularExpression) != nil)
  }

  @Test("a contained plugin becomes a Pod, a Service and a NetworkPolicy the API would accept")
  func containedPlugin() throws {
    let plugin = try manifest(
      """
      {"name": "net_probe", "version": "1.2.0+build", "entrypoint": "bin/probe", "args": ["-v"],
       "env": {"MODE": "no"}, "timeouts": {"stop_s": 2.5},
       "limits": {"memory_mb": 128, "cpu_percent": 50, "pids": 64},
       "isolation": {"mode": "k8s", "port": 9000, "network": "none", "user": "65534", "no_new_privileges": true,
                     "mount_namespace": true, "readonly_paths": ["/"]}}
      """)
    #expect(plugin.isolation.mode == .k8s && plugin.isolation.port == 9000)
    let documents = try objects(
      KubernetesManifest(
        manifest: plugin, image: "registry.example/probe:1.2", namespace: "tools", command: "/usr/bin/probe",
        identity: .init(uid: 65534, gid: 65534)))
    #expect(documents.map { $0["kind"] as? String } == ["Pod", "Service", "NetworkPolicy"])

    let pod = documents[0]
    #expect(pod["apiVersion"] as? String == "v1")
    let metadata = try #require(pod["metadata"] as? [String: Any])
    let name = try #require(metadata["name"] as? String)
    #expect(name == "deckhand-net-probe" && isDNSLabel(name))
    #expect(metadata["namespace"] as? String == "tools")
    let labels = try #require(metadata["labels"] as? [String: String])
    #expect(labels.values.allSatisfy(isLabelValue), "\(labels)")
    let annotations = try #require(metadata["annotations"] as? [String: String])
    #expect(annotations["deckhand.dev/pids-limit"] == "64")

    let spec = try #require(pod["spec"] as? [String: Any])
    #expect(spec["terminationGracePeriodSeconds"] as? Int == 3)
    #expect(spec["hostNetwork"] as? Bool == false && spec["hostPID"] as? Bool == false)
    let podSecurity = try #require(spec["securityContext"] as? [String: Any])
    #expect(podSecurity["runAsUser"] as? Int == 65534 && podSecurity["runAsNonRoot"] as? Bool == true)
    #expect(podSecurity["runAsGroup"] as? Int == 65534)
    let containers = try #require(spec["containers"] as? [[String: Any]])
    #expect(containers.count == 1)
    let container = containers[0]
    #expect(container["image"] as? String == "registry.example/probe:1.2")
    #expect(container["command"] as? [String] == ["/usr/bin/probe"])
    #expect(
      container["args"] as? [String] == [
        "-v", "--protocol=tcp", "--address=0.0.0.0:9000", "--errorlogfile=/dev/stderr",
      ])
    let environment = try #require(container["env"] as? [[String: String]])
    // "no" stays a string (quoted), not YAML 1.1's false.
    #expect(environment.contains { $0["name"] == "MODE" && $0["value"] == "no" })
    let ports = try #require(container["ports"] as? [[String: Any]])
    #expect(ports.first?["containerPort"] as? Int == 9000 && ports.first?["name"] as? String == "grpc")
    let resources = try #require(container["resources"] as? [String: [String: String]])
    #expect(resources["limits"] == ["cpu": "500m", "memory": "128Mi"])
    #expect(resources["requests"] == resources["limits"])
    let readiness = try #require(container["readinessProbe"] as? [String: Any])
    let grpc = try #require(readiness["grpc"] as? [String: Any])
    #expect(grpc["port"] as? Int == 9000 && grpc["service"] as? String == KubernetesManifest.readinessService)
    #expect(readiness["periodSeconds"] as? Int == 10 && readiness["failureThreshold"] as? Int == 2)
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
      let fields = try #require(container[probe] as? [String: Any])
      for key in ["periodSeconds", "timeoutSeconds", "failureThreshold"] {
        #expect((fields[key] as? Int ?? 0) >= 1, "\(probe).\(key)")
      }
    }
    let security = try #require(container["securityContext"] as? [String: Any])
    #expect(security["allowPrivilegeEscalation"] as? Bool == false)
    #expect(security["readOnlyRootFilesystem"] as? Bool == true)
    #expect((security["capabilities"] as? [String: [String]])?["drop"] == ["ALL"])
    let mounts = try #require(container["volumeMounts"] as? [[String: String]])
    let volumes = try #require(spec["volumes"] as? [[String: Any]])
    #expect(Set(mounts.compactMap { $0["name"] }) == Set(volumes.compactMap { $0["name"] as? String }))

    let service = documents[1]
    let serviceSpec = try #require(service["spec"] as? [String: Any])
    let selector = try #require(serviceSpec["selector"] as? [String: String])
    #expect(selector.allSatisfy { labels[$0.key] == $0.value }, "the Service selects the Pod")
    let servicePorts = try #require(serviceSpec["ports"] as? [[String: Any]])
    #expect(servicePorts.first?["port"] as? Int == 9000 && servicePorts.first?["targetPort"] as? String == "grpc")

    let policy = documents[2]
    #expect(policy["apiVersion"] as? String == "networking.k8s.io/v1")
    let policySpec = try #require(policy["spec"] as? [String: Any])
    #expect(policySpec["policyTypes"] as? [String] == ["Ingress", "Egress"])
    #expect((policySpec["egress"] as? [Any])?.isEmpty == true, "no egress at all")
  }

  @Test("a plain plugin: no limits, no policy, the image's entrypoint, the default port")
  func plainPlugin() throws {
    let plugin = try manifest(#"{"name": "echo", "version": "1", "entrypoint": "e", "isolation": {"mode": "k8s"}}"#)
    let documents = try objects(KubernetesManifest(manifest: plugin, image: "echo:1"))
    #expect(documents.count == 2)
    let spec = try #require(documents[0]["spec"] as? [String: Any])
    let container = try #require((spec["containers"] as? [[String: Any]])?.first)
    #expect(container["command"] == nil && container["resources"] == nil)
    #expect((container["args"] as? [String])?.contains("--address=0.0.0.0:7070") == true)
    let podSecurity = try #require(spec["securityContext"] as? [String: Any])
    #expect(podSecurity["runAsUser"] == nil)
  }

  @Test("what Kubernetes would refuse is refused here, with the reason")
  func refusals() throws {
    let plugin = try manifest(
      #"{"name": "p", "version": "1", "entrypoint": "e", "isolation": {"user": "nobody-here"}}"#)
    #expect(throws: DeckhandError.self) { try KubernetesManifest(manifest: plugin, image: "p:1").yaml() }
    let plain = try manifest(#"{"name": "p", "version": "1", "entrypoint": "e"}"#)
    #expect(throws: DeckhandError.self) { try KubernetesManifest(manifest: plain, image: "").yaml() }
    #expect(throws: DeckhandError.self) {
      try KubernetesManifest(manifest: plain, image: "p", namespace: "Bad_NS").yaml()
    }
    #expect(throws: DeckhandError.self) {
      try manifest(#"{"name": "p", "version": "1", "entrypoint": "e", "isolation": {"mode": "pod"}}"#)
    }
  }

  @Test("YAML text: quoted strings, nested sequences, empty collections")
  func yamlText() {
    let node = YAMLNode.mapping([
      ("a", .string("x: \"y\"\n")), ("on", .bool(true)), ("list", .sequence([.sequence([.integer(1)]), .mapping([])])),
      ("empty", .sequence([])),
    ])
    #expect(
      node.text() == """
        a: "x: \\"y\\"\\n"
        "on": true
        list:
        -
          - 1
        - {}
        empty: []

        """)
  }
}
