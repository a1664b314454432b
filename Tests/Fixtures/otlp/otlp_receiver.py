#!/usr/bin/python3
"""A small OTLP/gRPC trace receiver for Deckhand's tests.

Serves opentelemetry.proto.collector.trace.v1.TraceService/Export on
127.0.0.1 (an ephemeral port unless one is given), prints `PORT <n>` on its
first line, then one JSON object a line for every span it receives:
service, name, kind, trace_id, span_id, parent_span_id (hex) and the
span's string attributes. Uses Debian's python3-grpcio and python3-protobuf
and the subset of OTLP in otlp_traces.proto.
"""
import json
import os
import sys
import threading
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import otlp_traces_pb2 as otlp  # noqa: E402

lock = threading.Lock()


def attributes(pairs):
    out = {}
    for pair in pairs:
        which = pair.value.WhichOneof("value")
        if which is not None:
            out[pair.key] = getattr(pair.value, which)
    return out


def export(request, context):
    with lock:
        for resource_spans in request.resource_spans:
            service = attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    print(json.dumps({
                        "service": service,
                        "name": span.name,
                        "kind": span.kind,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "attributes": attributes(span.attributes),
                    }), flush=True)
    return otlp.ExportTraceServiceResponse()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=otlp.ExportTraceServiceRequest.FromString,
                response_serializer=otlp.ExportTraceServiceResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("PORT %d" % bound, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
