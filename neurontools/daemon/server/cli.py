"""neurond: run a software Inferentia2 machine and serve it over gRPC."""

from __future__ import annotations

import os

# One BLAS thread per call: the daemon already runs one worker thread per NeuronCore, and BLAS's own
# threads fighting them for the host's CPUs made compute-mode executions up to 8x slower (see
# docs/performance.md). Set before numpy loads OpenBLAS; an explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402  (after the BLAS setting on purpose)
import asyncio
import logging
import signal
import sys

from neurontools import __version__, addresses, connection_options
from neurontools.daemon.device import topology as topo
from neurontools.daemon.runtime.execution import DEFAULT_MAX_IN_FLIGHT
from neurontools.daemon.device.instance_info import ConfigFileError, load_config, resolve_identity
from neurontools.daemon.server.grpc_server import DaemonServer, ServerOptions
from neurontools.daemon.sysfs.tree import DEFAULT_PERIOD_SECONDS

DESCRIPTION = """\
Run a software AWS Inferentia2 machine: its chips, NeuronCore-v2 cores, HBM and NeuronLink
links, executing real kernels with a cost model of the real hardware. Tools (neuron-ls,
neuron-top, neuron-monitor) and programs using neurontools.client talk to it over gRPC.

By default it serves a Unix socket only this user can open:
  {default}
(override with --address or $NEURON_DAEMON_ADDRESS; clients read the same variable).
"""

EPILOG = """\
examples:
  neurond                                   an inf2.48xlarge on the default socket
  neurond --instance-type inf2.xlarge       a one-chip machine
  neurond --topology-file my-machine.json   a machine you describe (see docs/topology.md)
  neurond --listen 0.0.0.0:50051 --token-file /etc/neurond/token
                                            also serve TCP; clients send the token
  neurond --sysfs-root /run/neurond/sysfs   also keep the Neuron driver's sysfs tree (docs/sysfs.md)

instance types: {types}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurond", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTION.format(default=addresses.default_address()),
        epilog=EPILOG.format(types=", ".join(topo.CATALOG)))
    machine = parser.add_argument_group("machine")
    machine.add_argument("--instance-type", help=f"instance type to simulate (default {topo.DEFAULT_INSTANCE_TYPE})")
    machine.add_argument("--topology-file", help="JSON file describing a custom machine (overrides --instance-type)")
    machine.add_argument("--config", help='JSON config file: {"instance_type": ..., "topology_file": ..., '
                                          '"instance_info": {"instance_id": ..., "region": ...}}')
    for field in ("instance-id", "instance-name", "availability-zone", "availability-zone-id", "region",
                  "ami-id", "subnet-id"):
        machine.add_argument(f"--{field}", help=f"{field.replace('-', ' ')} reported as instance info")
    serving = parser.add_argument_group("serving")
    serving.add_argument("--address", help="Unix socket to serve, unix:///path (default above)")
    serving.add_argument("--socket-mode", type=_socket_mode, default=0o600, metavar="MODE",
                         help="permissions of the Unix socket (default 0600: this user only; 0660 lets the "
                              "socket's group in, e.g. under systemd, see deploy/systemd/)")
    serving.add_argument("--listen", metavar="HOST:PORT", help="also serve TCP (needs --token-file or --insecure)")
    serving.add_argument("--token-file", help="file holding the bearer token TCP clients must send")
    serving.add_argument("--insecure", action="store_true", help="serve TCP without a token")
    serving.add_argument("--tls-cert", help="PEM certificate chain for TCP (with --tls-key)")
    serving.add_argument("--tls-key", help="PEM private key for TCP")
    serving.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                         help=f"executions queued per core before failed_to_queue (default {DEFAULT_MAX_IN_FLIGHT})")
    node = parser.add_argument_group("node (docs/sysfs.md)")
    node.add_argument("--sysfs-root", metavar="DIR", help="keep the Neuron driver's sysfs tree under DIR "
                      "(DIR/devices/virtual/neuron_device/...); a new or empty directory")
    node.add_argument("--sysfs-period", type=float, default=DEFAULT_PERIOD_SECONDS, metavar="SECONDS",
                      help=f"how often the tree is refreshed (default {DEFAULT_PERIOD_SECONDS:g})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="version", version=f"neurond {__version__}")
    return parser


def _socket_mode(text: str) -> int:
    """0600 or 0660 (or 0620...): the owner can always connect; others never (use a group)."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode such as 0600 or 0660") from None
    if mode & ~0o660 or mode & 0o600 != 0o600:
        raise argparse.ArgumentTypeError(
            f"{text}: the socket is the daemon's access control: give the owner read and write (0600), the group "
            "at most that (0660), others nothing; let users in through the socket's group")
    return mode


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SystemExit(f"neurond: cannot read {what} {path}: {exc.strerror}") from None


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    config = load_config(args.config) if args.config else None
    topology_file = args.topology_file or (config.topology_file if config else None)
    if topology_file:
        machine = topo.load_topology_file(topology_file)
    else:
        machine = topo.lookup(args.instance_type or (config.instance_type if config else None)
                              or topo.DEFAULT_INSTANCE_TYPE)
    overrides = dict(config.instance_info) if config else {}
    for field in ("instance_id", "instance_name", "availability_zone", "availability_zone_id", "region",
                  "ami_id", "subnet_id"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    instance = resolve_identity(machine.instance_type, overrides)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("neurond: --tls-cert and --tls-key go together")
    # The same rules as the clients': a token file others can read is refused, with the chmod to run.
    token = connection_options.read_token_file(args.token_file) if args.token_file else None
    return ServerOptions(
        machine=machine, instance=instance, address=addresses.normalize(args.address),
        listen=args.listen, token=token, insecure=args.insecure,
        tls_cert=_read(args.tls_cert, "TLS certificate"), tls_key=_read(args.tls_key, "TLS key"),
        max_in_flight=args.max_in_flight, socket_mode=args.socket_mode,
        sysfs_root=args.sysfs_root, sysfs_period=args.sysfs_period)


def _already_serving(address: str) -> bool:
    import grpc
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=0.5)
            return True
        except grpc.FutureTimeoutError:
            return False


async def serve(options: ServerOptions) -> None:
    server = DaemonServer(options)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("neurond").info("shutting down")
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        options = options_from_args(args)
        if not addresses.is_unix(options.address):
            raise SystemExit("neurond: --address must be a Unix socket (unix:///path); use --listen for TCP")
        addresses.check_socket_path(addresses.unix_socket_path(options.address))
        if _already_serving(options.address):
            raise SystemExit(f"neurond: another daemon already serves {options.address}; stop it or pick "
                             "another --address")
        asyncio.run(serve(options))
    except (topo.UnknownInstanceType, topo.TopologyFileError, ConfigFileError, ValueError, OSError) as exc:
        print(f"neurond: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
