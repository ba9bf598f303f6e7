"""The neurond gRPC server: services, health and reflection, listeners and lifecycle."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from neurontools._proto import neurond_pb2 as pb
from neurontools.addresses import check_socket_path, unix_socket_path
from neurontools.daemon.device import topology as topo
from neurontools.daemon.runtime.execution import DEFAULT_MAX_IN_FLIGHT, Executor
from neurontools.daemon.runtime.load_engine import LoadEngine
from neurontools.daemon.runtime.loads import LoadService
from neurontools.daemon.server.registration import add_service
from neurontools.daemon.runtime.sessions import RuntimeState
from neurontools.daemon.server.servicers import (Access, AdminServicer, DeviceServicer, Observers,
                                          RuntimeServicer)
from neurontools.daemon.runtime.snapshot import SnapshotBuilder
from neurontools.daemon.sysfs.tree import DEFAULT_PERIOD_SECONDS, SysfsPublisher

log = logging.getLogger("neurond")

# Programs with many instructions and small inline constants fit; bulk data goes in chunks.
MAX_RECEIVE_MESSAGE_BYTES = 64 << 20
SERVICE_NAMES = tuple(pb.DESCRIPTOR.services_by_name[name].full_name
                      for name in ("NeuronDevice", "NeuronRuntime", "NeuronAdmin"))


@dataclass
class ServerOptions:
    machine: topo.MachineSpec
    instance: pb.InstanceInfo
    address: str                      # "unix:///path" (always served)
    listen: str | None = None         # "HOST:PORT" for TCP
    token: str | None = None          # required on TCP unless insecure
    insecure: bool = False
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    socket_mode: int = 0o600          # of the Unix socket; 0660 lets its group in
    sysfs_root: str | None = None     # keep the driver's sysfs tree there (sysfs/tree.py)
    sysfs_period: float = DEFAULT_PERIOD_SECONDS


class DaemonServer:
    """One running neurond. start() and stop() run on the event loop that serves it."""

    def __init__(self, options: ServerOptions) -> None:
        if options.listen and not options.token and not options.insecure:
            raise ValueError("--listen exposes the daemon on TCP: give --token-file (clients then send the "
                             "token) or --insecure to accept anyone who can reach the port")
        self.options = options
        self.state = RuntimeState(options.machine, options.instance)
        engine = LoadEngine(self.state, options.max_in_flight)
        self.executor = Executor(self.state, options.max_in_flight, engine)
        self.loads = LoadService(self.state, self.executor, options.max_in_flight, engine)
        self.snapshots = SnapshotBuilder(self.state)
        access = Access(None if options.insecure else options.token)
        self.device = DeviceServicer(self.state, self.snapshots, Observers(), access, self.loads)
        self.runtime = RuntimeServicer(self.state, self.executor, access, self.loads)
        self.admin = AdminServicer(self.state, self.runtime, access, self.loads)
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.tcp_port: int | None = None
        self.socket_path = unix_socket_path(options.address)
        self.sysfs = (SysfsPublisher(options.sysfs_root, self.state, options.sysfs_period)
                      if options.sysfs_root else None)

    async def start(self) -> None:
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Find dead TCP peers too: a session's stream must end when its client is gone.
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ])
        add_service(server, self.device, "NeuronDevice")
        add_service(server, self.runtime, "NeuronRuntime")
        add_service(server, self.admin, "NeuronAdmin")
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._bind_unix(server)
        if self.options.listen:
            if self.options.tls_cert and self.options.tls_key:
                credentials = grpc.ssl_server_credentials([(self.options.tls_key, self.options.tls_cert)])
                self.tcp_port = server.add_secure_port(self.options.listen, credentials)
            else:
                self.tcp_port = server.add_insecure_port(self.options.listen)
            if not self.tcp_port:
                raise OSError(f"cannot listen on {self.options.listen}")
        await server.start()
        self.server = server
        if self.sysfs:
            self.sysfs.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("neurond serving a %s (%d devices, %d NeuronCores) on %s%s",
                 self.options.machine.instance_type, len(self.options.machine.devices),
                 self.options.machine.core_count, self.options.address,
                 f" and tcp {self.options.listen}" if self.options.listen else "")

    def _bind_unix(self, server: grpc.aio.Server) -> None:
        check_socket_path(self.socket_path)  # short enough, in a directory that exists
        path = Path(self.socket_path)
        if path.is_socket():
            # A socket left by a daemon that died; a live one would have answered the CLI's probe.
            path.unlink()
        elif path.exists() or path.is_symlink():
            raise OSError(f"{path} exists and is not a socket; neurond will not replace it: remove it or choose "
                          "another --address")
        # The socket is created with its mode from the start: no window where others could connect.
        old = os.umask(0o777 & ~self.options.socket_mode)
        try:
            # "unix:PATH": gRPC counts the "//" of "unix:///PATH" against the 107-byte limit when binding.
            if not server.add_insecure_port(f"unix:{self.socket_path}"):
                raise OSError(f"cannot listen on {self.options.address}")
        finally:
            os.umask(old)

    async def _set_health(self, status) -> None:
        for name in ("", *SERVICE_NAMES):
            result = self.health.set(name, status)
            if asyncio.iscoroutine(result):
                await result

    async def stop(self, grace: float = 2.0) -> None:
        """Tell every session, stop accepting calls, release everything, remove the socket."""
        if self.server is None:
            return
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.runtime.shut_down()
        self.loads.stop_all("daemon shutting down")
        for session_id in list(self.runtime.closing):
            self.runtime.end_session(session_id, "daemon shutting down")
        self.device.stop_observing()
        await asyncio.sleep(0.05)  # let the closing events reach the clients
        await self.server.stop(grace)
        self.server = None
        self.executor.stop()
        if self.sysfs:
            self.sysfs.stop()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
