"""The neuron-ls command line, parsed and reported the way Go's jessevdk/go-flags does it
(neurontools.go_flags). Errors use go-flags wording; the caller prints them with the usage on
stdout and exits 1. The connection flags are every tool's (neurontools.connection_options).
"""

from __future__ import annotations

from neurontools.go_flags import Flag, UsageError, parse

USAGE = """\
Usage:
  neuron-ls [OPTIONS]

Application Options:
  -w, --wide            Displays the table in a wider format.
  -a, --show-all-procs  Show all processes using the Neuron Devices, including
                        processes that aren't using Neuron Runtime 2.x such as
                        neuron-monitor or neuron-ls itself.
  -t, --topology        Display topology information about the system's Neuron
                        Devices.
  -j, --json-output     Output in JSON format.
      --address=        Address of the neurond daemon: unix:///path or host:port
                        [$NEURON_DAEMON_ADDRESS]
      --token-file=     File holding the token a TCP daemon asks for
                        [$NEURON_DAEMON_TOKEN_FILE]
      --ca-file=        CA certificate of a TLS daemon (PEM)
                        [$NEURON_DAEMON_CA_FILE]
      --version         Print the neuron-ls version and exit.

Help Options:
  -h, --help            Show this help message
"""

_FLAGS = (Flag("wide", "w"), Flag("show-all-procs", "a"), Flag("topology", "t"), Flag("json-output", "j"),
          Flag("address", takes_value=True), Flag("token-file", takes_value=True), Flag("ca-file", takes_value=True),
          Flag("version"), Flag("help", "h"))

__all__ = ["USAGE", "Options", "UsageError", "parse_options"]


class Options:
    """The parsed flags; the class attributes are the defaults (no dataclass: start-up time)."""

    wide: bool = False
    show_all_procs: bool = False
    topology: bool = False
    json_output: bool = False
    help: bool = False
    version: bool = False
    address: str | None = None     # None: $NEURON_DAEMON_ADDRESS, else the default socket
    token_file: str | None = None  # None: $NEURON_DAEMON_TOKEN_FILE or $NEURON_DAEMON_TOKEN
    ca_file: str | None = None     # None: $NEURON_DAEMON_CA_FILE


def parse_options(argv: list[str]) -> Options:
    options = Options()
    for name, value in parse(argv, _FLAGS).items():
        setattr(options, name.replace("-", "_"), value)
    return options
