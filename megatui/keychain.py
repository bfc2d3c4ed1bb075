"""The Mac's login keychain: how a locked one shows, what to do about it, and the check.

docs/facts/tart.md §6.6: on macOS 15+ Virtualization.framework needs an unlocked login keychain,
and tart over SSH (no desktop session) fails with one of these messages. The tart
source (`sources/tart.py`) and the host check (`keychain_locked`, for doctor) read
the same markers and give the same hint.
"""

from __future__ import annotations

from megatui.transport import CommandNotFound, Transport

#: What tart (and `security`) print when the login keychain is locked.
KEYCHAIN_MARKERS = (
    "SecKeyCreateRandomKey_ios",
    "Failed to generate keypair",
    "Interaction is not allowed with the Security Server",
    "User interaction is not allowed",
    "-25308",
)

KEYCHAIN_HINT = (
    "the login keychain is locked: run `security unlock-keychain login.keychain` "
    "on the Mac host, or log in to its desktop"
)


def keychain_marker(text: str) -> str | None:
    """The first marker of a locked keychain in `text`, if any."""
    return next((marker for marker in KEYCHAIN_MARKERS if marker in text), None)


def keychain_hint(text: str) -> str | None:
    """KEYCHAIN_HINT if `text` (a tart start failure, its log) shows the keychain cause."""
    return KEYCHAIN_HINT if keychain_marker(text) is not None else None


async def keychain_locked(
    transport: Transport, *, timeout: float = 5.0, security: str = "security"
) -> bool | None:
    """True if the host's login keychain is locked, False if unlocked, None if unknown
    (not a Mac: no `security`; or no login keychain)."""
    try:
        result = await transport.run(
            [security, "show-keychain-info", "login.keychain"], timeout=timeout
        )
    except CommandNotFound:
        return None
    if result.exit_code == 0:
        return False
    if "could not be found" in result.stderr:
        return None
    if keychain_hint(result.stderr) or "locked" in result.stderr.lower():
        return True
    return None
