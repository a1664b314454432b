#!/usr/bin/python3
"""A grpcio client of a GuestAgentPlugin on a unix socket, for the interop
tests: calls Start, GetStatus without and with data, Apply with 64 KiB,
an unknown method, and Stop; prints one line per result.

    client.py SOCKET
"""
import os
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "Examples", "PythonEcho", "generated")
)

import grpc  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

import plugin_comm_pb2 as pb  # noqa: E402


def method(channel, name, response):
    return channel.unary_unary(
        "/plugin_comm.GuestAgentPlugin/" + name,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,
    )


def main():
    channel = grpc.insecure_channel("unix:" + sys.argv[1])
    request = pb.StartRequest()
    request.config.state_directory_path = "/tmp/python-client-state"
    request.string_config = "from python"
    method(channel, "Start", pb.StartResponse)(request, timeout=5)
    print("start ok")
    status = method(channel, "GetStatus", pb.Status)(pb.GetStatusRequest(), timeout=5)
    print("status code=%d results=%s" % (status.code, "|".join(status.results)))
    status = method(channel, "GetStatus", pb.Status)(pb.GetStatusRequest(data="hello from grpcio"), timeout=5)
    print("status-data %s" % "|".join(status.results))
    payload = any_pb2.Any(type_url="type.googleapis.com/deckhand.test.Blob", value=b"x" * 65536)
    method(channel, "Apply", pb.ApplyResponse)(pb.ApplyRequest(data=payload), timeout=5)
    status = method(channel, "GetStatus", pb.Status)(pb.GetStatusRequest(), timeout=5)
    print("after-apply %s" % "|".join(status.results))
    try:
        channel.unary_unary("/plugin_comm.GuestAgentPlugin/Nope")(b"", timeout=5)
        print("unknown method answered")
    except grpc.RpcError as error:
        print("unknown %s" % error.code().name)
    method(channel, "Stop", pb.StopResponse)(pb.StopRequest(cleanup=False), timeout=5)
    print("stop ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
