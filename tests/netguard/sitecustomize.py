"""Loaded into every Python process of a guarded run (PYTHONPATH): refuses and logs any
network connection or name lookup that is not loopback. Tests read the log."""

import ipaddress
import os
import sys

_LOG = os.environ.get("NETGUARD_LOG")
_LOCAL_NAMES = {"localhost", "", None}


def _loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> None:
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {what}\n")
    raise OSError(f"netguard: blocked {what}")


def _hook(event, args):
    if event == "socket.getaddrinfo" and not _loopback(args[0]):
        _refuse(f"getaddrinfo {args[0]!r}")
    elif event in ("socket.connect", "socket.sendto") and isinstance(args[1], tuple) and not _loopback(args[1][0]):
        _refuse(f"{event} {args[1]!r}")


if _LOG:
    sys.addaudithook(_hook)
