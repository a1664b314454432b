#!/usr/bin/python3
"""A Deckhand plugin in Python with grpcio: the GuestAgentPlugin contract is
language-neutral. It speaks the guest-agent launch contract:

    plugin.py --protocol=unix --address=SOCKET --errorlogfile=LOG

and records what it receives, like deckhand-example-echo. Needs Debian's
python3-grpcio and python3-protobuf; generated/plugin_comm_pb2.py comes from
scripts/generate-protos.sh.
"""
import argparse
import os
import sys
import threading
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import plugin_comm_pb2 as pb  # noqa: E402

SERVICE = "plugin_comm.GuestAgentPlugin"


class Echo:
    def __init__(self, stopped):
        self.lock = threading.Lock()
        self.state_directory = ""
        self.config = "none"
        self.applies = 0
        self.applied_bytes = 0
        self.stopped = stopped

    def start(self, request, context):
        with self.lock:
            self.state_directory = request.config.state_directory_path
            which = request.WhichOneof("service_config")
            if which == "string_config":
                self.config = "string:" + request.string_config
            elif which == "struct_config":
                self.config = "struct:" + json_format.MessageToJson(request.struct_config, indent=None)
        return pb.StartResponse()

    def stop(self, request, context):
        self.stopped.set()
        return pb.StopResponse()

    def get_status(self, request, context):
        if request.HasField("data"):
            return pb.Status(code=0, results=[request.data])
        with self.lock:
            return pb.Status(
                code=0,
                results=[
                    "state_directory=" + self.state_directory,
                    "config=" + self.config,
                    "applies=%d bytes=%d language=python" % (self.applies, self.applied_bytes),
                ],
            )

    def apply(self, request, context):
        with self.lock:
            self.applies += 1
            self.applied_bytes += len(request.data.value)
        return pb.ApplyResponse()


def handler(method, request_type):
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protocol", default="unix")
    parser.add_argument("--address")
    parser.add_argument("--errorlogfile")
    args, _ = parser.parse_known_args()
    if not args.address or args.protocol != "unix":
        print("This is a Deckhand plugin; the host launches it with --protocol=unix --address=SOCKET.", file=sys.stderr)
        return 1
    stopped = threading.Event()
    echo = Echo(stopped)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Start": handler(echo.start, pb.StartRequest),
                    "Stop": handler(echo.stop, pb.StopRequest),
                    "GetStatus": handler(echo.get_status, pb.GetStatusRequest),
                    "Apply": handler(echo.apply, pb.ApplyRequest),
                },
            ),
        )
    )
    server.add_insecure_port("unix:" + args.address)
    server.start()
    stopped.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
