"""The kubeconfig's inline certificates and key, as files an SSL context can load.

Python's `ssl` loads a client certificate and key by path only, so a kubeconfig's
`*-data` entries (Kind's CA, client certificate and client key) are written to files in
a directory of megatui's own (mode 0700), removed as soon as the SSL context has read
them: no copy of a key outlives the connect, whatever way megatui exits later.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Entries whose inline data ("<key>-data") the client would write to a temp file.
CLUSTER_FILES = ("certificate-authority",)
USER_FILES = ("client-certificate", "client-key")


@contextlib.contextmanager
def private_credentials(cluster: dict[str, Any], user: dict[str, Any] | None) -> Iterator[str]:
    """Rewrite the inline data of `cluster` and `user` (in place) as files in a private
    directory; yield that directory (for the client's temp_file_path) and remove it."""
    directory = tempfile.mkdtemp(prefix="megatui-kube-")  # mode 0700
    try:
        _write(cluster, CLUSTER_FILES, directory)
        if user is not None:
            _write(user, USER_FILES, directory)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write(entry: dict[str, Any], keys: tuple[str, ...], directory: str) -> None:
    for key in keys:
        data = entry.get(f"{key}-data")
        if not isinstance(data, str) or not data:
            continue  # absent, or a wrong type the client will report
        path = Path(directory) / key
        # ValueError (binascii.Error) on bad base64: the caller's "invalid credentials".
        content = base64.standard_b64decode(data.encode())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        del entry[f"{key}-data"]
        entry[key] = str(path)
