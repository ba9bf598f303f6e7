"""The neuron-ls command line, parsed and reported the way Go's jessevdk/go-flags does it.

Short flags combine (`-aw`), `--address` takes `=value` or the next argument, `--` ends the flags.
Errors use go-flags wording; the caller prints them with the usage on stdout and exits 1.
"""

from __future__ import annotations

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
      --version         Print the neuron-ls version and exit.

Help Options:
  -h, --help            Show this help message
"""

_SWITCHES = {"w": "wide", "a": "show_all_procs", "t": "topology", "j": "json_output", "h": "help"}
_LONG_SWITCHES = {"wide": "wide", "show-all-procs": "show_all_procs", "topology": "topology",
                  "json-output": "json_output", "help": "help", "version": "version"}


class UsageError(ValueError):
    pass


class Options:
    """The parsed flags; the class attributes are the defaults (no dataclass: start-up time)."""

    wide: bool = False
    show_all_procs: bool = False
    topology: bool = False
    json_output: bool = False
    help: bool = False
    version: bool = False
    address: str | None = None  # None: $NEURON_DAEMON_ADDRESS, else the default socket


def parse_options(argv: list[str]) -> Options:
    options = Options()
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest = list(args)
            if rest:
                raise UsageError(f"unexpected argument `{rest[0]}'")
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if name == "address":
                if not has_value:
                    value = next(args, None)
                    if value is None:
                        raise UsageError("expected argument for flag `--address'")
                options.address = value
            elif name in _LONG_SWITCHES:
                if has_value:
                    raise UsageError(f"bool flag `--{name}' cannot have an argument")
                setattr(options, _LONG_SWITCHES[name], True)
            else:
                raise UsageError(f"unknown flag `{name}'")
        elif arg.startswith("-") and len(arg) > 1:
            for letter in arg[1:]:
                if letter not in _SWITCHES:
                    raise UsageError(f"unknown flag `{letter}'")
                setattr(options, _SWITCHES[letter], True)
        else:
            raise UsageError(f"unexpected argument `{arg}'")
    return options
