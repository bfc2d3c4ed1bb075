"""One rule for "is this host this machine": what may go without TLS or a token.

Both the Orchard client (plain HTTP only to a loopback dev controller) and `megatui
serve` (no token on a loopback bind) ask it, and must agree.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost`, or a literal loopback address (127.0.0.0/8, ::1, bracketed or not).

    Other names are not resolved: a name that resolves to loopback today may not
    tomorrow, and resolving would be a network call in a check."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
