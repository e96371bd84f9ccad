"""ICE candidate gathering on loopback.

aioice never offers 127.0.0.1 as a host candidate, so a server bound to loopback (the default, and
every test, which runs in a network namespace that has nothing but `lo`) could not carry media at all.
aioice has no option for this, so we wrap its address lookup once per process.
"""

from __future__ import annotations

import aioice.ice

_LOOPBACK = "127.0.0.1"


def enable_loopback_candidates() -> None:
    """Make aioice offer 127.0.0.1 in addition to the machine's other addresses. Idempotent."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "_babelcall_loopback", False):
        return

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        if use_ipv4 and _LOOPBACK not in addresses:
            addresses.append(_LOOPBACK)
        return addresses

    with_loopback._babelcall_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = with_loopback
