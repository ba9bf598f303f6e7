"""How every tool and program finds and authenticates to neurond: address, token, CA certificate.

One mechanism for all: flags (`--address`, `--token-file`, `--ca-file`) win over the environment
(`$NEURON_DAEMON_ADDRESS`, `$NEURON_DAEMON_TOKEN_FILE` or `$NEURON_DAEMON_TOKEN`,
`$NEURON_DAEMON_CA_FILE`), which wins over the default Unix socket. The result is a
`DaemonEndpoint` that tools pass wherever an address goes; the client (`neurontools.client`)
resolves a bare address or None the same way, so a user program honours the same variables.
Documented once, in docs/connecting.md. Kept import-light (no grpc): neuron-ls parses its flags
before it loads gRPC.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from neurontools import addresses

ADDRESS_ENV = addresses.ADDRESS_ENV
TOKEN_ENV = addresses.TOKEN_ENV
TOKEN_FILE_ENV = "NEURON_DAEMON_TOKEN_FILE"
CA_FILE_ENV = "NEURON_DAEMON_CA_FILE"

ADDRESS_HELP = f"neurond address: unix:///path or host:port (default: ${ADDRESS_ENV}, else the default socket)"
TOKEN_FILE_HELP = (f"file holding the bearer token a TCP daemon asks for (default: ${TOKEN_FILE_ENV}, "
                   f"else the token in ${TOKEN_ENV}); must not be readable by group or others")
CA_FILE_HELP = (f"PEM CA certificate that signed the daemon's TLS certificate (neurond --tls-cert); given, "
                f"TCP connections use TLS (default: ${CA_FILE_ENV})")


class ConnectionOptionError(ValueError):
    """A connection option that cannot be used (unreadable or unsafe file); the message says the fix."""


@dataclass(frozen=True)
class DaemonEndpoint:
    """Where neurond is and how to prove who we are. str() is the address, for messages."""

    address: str
    token: str | None = None
    root_certificates: bytes | None = None  # PEM; None: plaintext

    def __str__(self) -> str:
        return self.address

    @property
    def uses_tls(self) -> bool:
        return self.root_certificates is not None


def read_token_file(path: str, flag: str = "--token-file") -> str:
    """The token in `path`, refused (as ssh refuses a private key) when group or others may read it."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read()
    except OSError as exc:
        raise ConnectionOptionError(f"cannot read the token file {path} ({flag}): {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConnectionOptionError(
            f"the token file {path} ({flag}) is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"a token is a password: run 'chmod 600 {path}'")
    token = data.decode(errors="replace").strip()
    if not token:
        raise ConnectionOptionError(f"the token file {path} ({flag}) is empty; put the daemon's token in it")
    return token


def read_ca_file(path: str, flag: str = "--ca-file") -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConnectionOptionError(f"cannot read the CA certificate {path} ({flag}): {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConnectionOptionError(f"{path} ({flag}) holds no PEM certificate: give the CA certificate that "
                                    "signed the daemon's --tls-cert (a file starting -----BEGIN CERTIFICATE-----)")
    return data


def resolve(address: str | DaemonEndpoint | None = None, *, token: str | None = None, token_file: str | None = None,
            root_certificates: bytes | None = None, ca_file: str | None = None) -> DaemonEndpoint:
    """The endpoint for these explicit settings, the rest from the environment.

    An endpoint passed as `address` is complete already and returned as is. The CA applies to TCP
    only: neurond never serves TLS on its Unix socket, so a $NEURON_DAEMON_CA_FILE set for a remote
    daemon does not break local use.
    """
    if isinstance(address, DaemonEndpoint):
        return address
    environ = os.environ
    target = addresses.normalize(address)
    if addresses.is_unix(target):
        try:
            addresses.check_socket_path_length(addresses.unix_socket_path(target))
        except addresses.SocketPathError as exc:
            raise ConnectionOptionError(str(exc)) from None
    if token is None:
        if token_file:
            token = read_token_file(token_file)
        elif environ.get(TOKEN_FILE_ENV):
            token = read_token_file(environ[TOKEN_FILE_ENV], f"${TOKEN_FILE_ENV}")
        else:
            token = environ.get(TOKEN_ENV) or None
    if root_certificates is None and not addresses.is_unix(target):
        if ca_file:
            root_certificates = read_ca_file(ca_file)
        elif environ.get(CA_FILE_ENV):
            root_certificates = read_ca_file(environ[CA_FILE_ENV], f"${CA_FILE_ENV}")
    return DaemonEndpoint(target, token, root_certificates)


def add_arguments(parser, address_help: str = ADDRESS_HELP) -> None:
    """--address, --token-file and --ca-file on an argparse parser or argument group."""
    parser.add_argument("--address", help=address_help)
    parser.add_argument("--token-file", metavar="FILE", help=TOKEN_FILE_HELP)
    parser.add_argument("--ca-file", metavar="FILE", help=CA_FILE_HELP)


def given(args) -> DaemonEndpoint | None:
    """The daemon the user pointed at (--address, else $NEURON_DAEMON_ADDRESS), or None: the tools that
    can start a private daemon (neuron-scenario, neuron-lab) start one then."""
    if args.address or os.environ.get(ADDRESS_ENV):
        return from_arguments(args)
    return None


def from_arguments(args) -> DaemonEndpoint:
    """The endpoint for an argparse namespace filled by add_arguments()."""
    return resolve(args.address, token_file=args.token_file, ca_file=args.ca_file)


# -------------------------------------------------------------------------------------------------
# Why a connection failed, from gRPC's status details
# -------------------------------------------------------------------------------------------------

_START_HINT = f"start it with 'neurond' (or point --address or ${ADDRESS_ENV} at a running one)"
_TLS_REASON = re.compile(r"SSL routines:OPENSSL_internal:([A-Z_]+)(?::\s*([^:]+))?")


def unreachable_message(address: str, details: str) -> str:
    """What a user needs to hear when gRPC says UNAVAILABLE: what failed, and what to do."""
    prefix = f"cannot reach neurond at {address}: "
    if "handshake" in details.lower() or "SSL_ERROR" in details:
        match = _TLS_REASON.search(details)
        reason, text = (match.group(1), (match.group(2) or "").strip()) if match else ("", "")
        if reason == "CERTIFICATE_VERIFY_FAILED":
            return (prefix + f"TLS handshake failed: the daemon's certificate is not trusted ({text or reason}); "
                    f"give the CA that signed neurond's --tls-cert with --ca-file or ${CA_FILE_ENV}")
        if reason == "WRONG_VERSION_NUMBER":
            return (prefix + "TLS handshake failed: the daemon does not serve TLS on this port; leave out "
                    f"--ca-file (and ${CA_FILE_ENV})")
        return prefix + f"TLS handshake failed: {text or reason or details}"
    if "Socket closed" in details or "Connection reset" in details:
        return (prefix + "the daemon closed the connection during set-up; if it serves TLS (neurond --tls-cert), "
                f"give its CA certificate with --ca-file or ${CA_FILE_ENV}")
    if addresses.is_unix(address):
        path = addresses.unix_socket_path(address)
        if "No such file or directory" in details:
            return prefix + f"there is no socket {path}; " + _START_HINT
        if "Connection refused" in details:
            return prefix + f"nothing is listening on {path} (connection refused); " + _START_HINT
        if "Permission denied" in details:
            return (prefix + f"permission denied on {path}: neurond's socket is 0600, so run as the user that "
                    "started it (or reach it over its --listen TCP address)")
    if "Connection refused" in details:
        return prefix + "nothing is listening there (connection refused); " + _START_HINT
    if "resolving" in details or "DNS" in details:
        return prefix + f"cannot resolve the host name ({details})"
    if "Deadline" in details or "timed out" in details.lower():
        return prefix + f"no answer in time ({details}); check the host, port and any firewall between"
    return prefix + (details or "unavailable") + "; " + _START_HINT
