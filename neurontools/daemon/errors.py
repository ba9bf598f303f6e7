"""Errors the daemon returns to clients, each with its gRPC status code.

Messages name the limit and the fix (DESIGN principle 7); the servicers turn these into statuses.
"""

from __future__ import annotations

import grpc


class RequestError(Exception):
    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidArgument(RequestError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RequestError):
    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(RequestError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(RequestError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(RequestError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RequestError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(RequestError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(RequestError):
    code = grpc.StatusCode.UNAVAILABLE
