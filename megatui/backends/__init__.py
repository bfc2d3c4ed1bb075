"""VM backends: local tart, tart over --host, and Orchard, behind one protocol."""

from megatui.backends.base import (
    BackendError,
    BackendErrorKind,
    NewVMSpec,
    SSHCommand,
    SSHReach,
    SSHRoute,
    VMBackend,
)

__all__ = [
    "BackendError",
    "BackendErrorKind",
    "NewVMSpec",
    "SSHCommand",
    "SSHReach",
    "SSHRoute",
    "VMBackend",
]
