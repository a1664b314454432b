package import GRPCCore
internal import Tracing

/// Continues a caller's trace on a grpc-swift-2 server: reads the W3C
/// trace context from the request's metadata and runs the call in a
/// server span named `package.Service/Method`, current while the handler
/// runs (a streaming answer's producer included).
///
/// Installed only when the process exports traces (``TraceExport``).
package struct ServerTracingInterceptor: ServerInterceptor {
  package init() {}

  package func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    var parent = InstrumentationContext.topLevel
    InstrumentationSystem.instrument.extract(request.metadata, into: &parent, using: MetadataExtractor())
    let span = InstrumentationSystem.tracer.startSpan(
      context.descriptor.fullyQualifiedMethod, context: parent, ofKind: .server)
    span.attributes["rpc.system"] = "grpc"
    span.attributes["rpc.service"] = context.descriptor.service.fullyQualifiedService
    span.attributes["rpc.method"] = context.descriptor.method
    let response: StreamingServerResponse<Output>
    do {
      response = try await InstrumentationContext.withValue(span.context) { try await next(request, context) }
    } catch {
      Self.end(span, error)
      throw error
    }
    switch response.accepted {
    case .failure(let error):
      Self.end(span, error)
      return response
    case .success(var contents):
      let producer = contents.producer
      let spanContext = span.context
      contents.producer = { writer in
        do {
          let trailers = try await InstrumentationContext.withValue(spanContext) { try await producer(writer) }
          span.attributes["rpc.grpc.status_code"] = 0
          span.end()
          return trailers
        } catch {
          Self.end(span, error)
          throw error
        }
      }
      return StreamingServerResponse(accepted: .success(contents))
    }
  }

  static func end(_ span: any Span, _ error: any Error) {
    if let error = error as? any RPCErrorConvertible {
      span.attributes["rpc.grpc.status_code"] = Int(error.rpcErrorCode.rawValue)
    }
    span.recordError(error)
    span.setStatus(SpanStatus(code: .error))
    span.end()
  }
}

/// Carries the caller's trace to a gRPC server: each call runs in a client
/// span, whose W3C context goes in the request's metadata. Outside a
/// trace it adds nothing.
package struct ClientTracingInterceptor: ClientInterceptor {
  package init() {}

  package func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingClientRequest<Input>,
    context: ClientContext,
    next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
  ) async throws -> StreamingClientResponse<Output> {
    guard InstrumentationContext.current != nil else { return try await next(request, context) }
    return try await withSpan(context.descriptor.fullyQualifiedMethod, ofKind: .client) { span in
      span.attributes["rpc.system"] = "grpc"
      span.attributes["rpc.service"] = context.descriptor.service.fullyQualifiedService
      span.attributes["rpc.method"] = context.descriptor.method
      var request = request
      InstrumentationSystem.instrument.inject(span.context, into: &request.metadata, using: MetadataInjector())
      let response = try await next(request, context)
      if case .failure(let error) = response.accepted {
        span.attributes["rpc.grpc.status_code"] = Int(error.code.rawValue)
        span.setStatus(SpanStatus(code: .error))
      }
      return response
    }
  }
}

struct MetadataExtractor: Extractor {
  func extract(key: String, from carrier: Metadata) -> String? {
    var values = carrier[stringValues: key].makeIterator()
    return values.next()
  }
}

struct MetadataInjector: Injector {
  func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
    carrier.replaceOrAddString(value, forKey: key)
  }
}
