"""Registering the servicers so a malformed request is the client's error, not the daemon's.

gRPC's generated registration decodes requests before the handler runs and reports a decoding
failure as UNKNOWN. Here decoding never raises: a malformed message reaches the handler as a
Malformed value, which the handlers answer with INVALID_ARGUMENT.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from neurontools._proto import neurond_pb2 as pb


class Malformed:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _decoder(message_class):
    def decode(raw: bytes):
        try:
            return message_class.FromString(raw)
        except DecodeError as exc:
            return Malformed(f"malformed {message_class.DESCRIPTOR.full_name} message: {exc}; "
                             "send a message built from proto/neurontools/v1/neurond.proto")
    return decode


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(server: grpc.aio.Server, servicer, service_name: str) -> None:
    service = pb.DESCRIPTOR.services_by_name[service_name]
    handlers = {}
    for method in service.methods:
        factory = _FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=_decoder(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
