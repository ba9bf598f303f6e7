"""neuron-node: show the software Inferentia2 where software on a real inf2 host looks for it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neurontools import addresses
from neurontools.node import launchers, namespace

DESCRIPTION = """\
Show neurond's software Inferentia2 where unmodified software looks on a real inf2 host:
the AWS tools at /opt/aws/neuron/bin (Ray, DJL Serving and scripts run neuron-ls there) and
the driver's sysfs tree under /sys (Slurm's gpu/nrt plugin, all-smi, node problem detectors).
"""

EPILOG = """\
examples:
  sudo neuron-node install                  neuron-ls, neuron-top, neuron-monitor in /opt/aws/neuron/bin
  neuron-node install --prefix ~/neuron     as a non-root user: ~/neuron/bin/neuron-ls ...
  neuron-node status                        what is installed, and which neurond it reaches
  sudo neuron-node run --sysfs-root /run/neurond/sysfs --prefix ~/neuron -- python train.py
                                            run a command that sees /sys/devices/virtual/neuron_device
                                            and /opt/aws/neuron/bin (private mount namespace)
  neuron-node uninstall [--prefix DIR]      remove exactly what install created

docs/sysfs.md has the container and Kubernetes recipes.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuron-node", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prefix_help = f"install root, as AWS's {launchers.DEFAULT_PREFIX} (tools go to PREFIX/bin)"
    install = commands.add_parser("install", help="put launchers of our tools at the AWS paths")
    install.add_argument("--prefix", default=str(launchers.DEFAULT_PREFIX), help=prefix_help)
    install.add_argument("--address", help="neurond the launchers reach when $NEURON_DAEMON_ADDRESS is unset "
                                           "(default: the tools' own default)")
    uninstall = commands.add_parser("uninstall", help="remove exactly what install created")
    uninstall.add_argument("--prefix", default=str(launchers.DEFAULT_PREFIX), help=prefix_help)
    status = commands.add_parser("status", help="what is installed and which neurond it reaches")
    status.add_argument("--prefix", default=str(launchers.DEFAULT_PREFIX), help=prefix_help)
    run = commands.add_parser("run", help="run a command in a private mount namespace showing the node "
                                          "at the real paths (Linux, root)")
    run.add_argument("--sysfs-root", metavar="DIR", help="the tree of `neurond --sysfs-root DIR`, shown under /sys")
    run.add_argument("--prefix", help=f"launchers of `neuron-node install --prefix P`, shown at {namespace.TOOLS_TARGET}")
    run.add_argument("--address", help="set NEURON_DAEMON_ADDRESS for the command")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    return parser


def _status(prefix: Path) -> int:
    states, baked = launchers.tool_states(prefix)
    for tool in states:
        print(f"{tool.path}: {tool.state}")
    address = baked or addresses.default_address()
    how = "set at install" if baked else "the tools' default here"
    from neurontools.client import Device  # here: install/run need no gRPC
    try:
        with Device(address, timeout=2) as device:
            topology = device.topology()
        cores = sum(len(d.core_ids) for d in topology.devices)
        print(f"neurond at {address} ({how}): serving an {topology.instance.instance_type} "
              f"({len(topology.devices)} devices, {cores} NeuronCores)")
        reachable = True
    except Exception as exc:  # any failure to reach it is reported, not raised
        print(f"neurond at {address} ({how}): not reachable: {str(exc).splitlines()[0][:300]}")
        reachable = False
    return 0 if reachable and all(t.state == "installed" for t in states) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "install":
            for path in launchers.install(Path(args.prefix), args.address):
                print(f"installed {path}")
            return 0
        if args.command == "uninstall":
            result = launchers.uninstall(Path(args.prefix))
            for path in result.removed:
                print(f"removed {path}")
            for path in result.kept:
                print(f"neuron-node: kept {path}: changed since install, so no longer ours to remove",
                      file=sys.stderr)
            return 1 if result.kept else 0
        if args.command == "status":
            return _status(Path(args.prefix))
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            raise namespace.NamespaceError("give the command to run after --, e.g. neuron-node run "
                                           "--sysfs-root DIR -- ls /sys/class/neuron_device")
        grafts = namespace.plan(args.sysfs_root, args.prefix)
        namespace.check_can_unshare()
        namespace.run(grafts, command, args.address)
    except (launchers.NodeInstallError, namespace.NamespaceError) as exc:
        print(f"neuron-node: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
