"""``regress bundle``: one tar.gz to attach to a bug tracker.

Everything sits under one top folder (``regress-<workload>-<old>..<new>/``) so it never
extracts into the reader's current directory: both capture files byte for byte (so
anyone can re-run the diff), the HTML and text reports, ``repro.sh`` (the workload and
the top divergences counted with bpftrace, no regress needed), the serial console logs
of the boots when the captures came from ``regress run``, ``SHA256SUMS`` (checkable with
``sha256sum -c SHA256SUMS`` inside the folder) and ``manifest.json`` with the same hashes
and what the bundle is. The archive is deterministic (fixed mtimes and owners) and
written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regress import __version__
from regress.errors import InputError
from regress.model.capture import atomic_write_bytes

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"


def _member_name(side: str, path: Path) -> str:
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    return f"{side}-capture{suffix or '.json'}"


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def write_bundle(
    out: Path,
    *,
    old_path: Path,
    new_path: Path,
    html: str,
    text: str,
    meta: dict[str, Any],
    repro: str = "",
    logs: Sequence[Path] = (),
    top: str = "regress-bundle",
) -> dict[str, Any]:
    """Write the bundle to ``out`` atomically; returns its manifest (also stored inside as
    ``manifest.json``)."""
    members: list[tuple[str, bytes, str, int]] = [
        (_member_name("old", Path(old_path)), _read(old_path), str(old_path), 0o644),
        (_member_name("new", Path(new_path)), _read(new_path), str(new_path), 0o644),
        ("report.html", html.encode(), "", 0o644),
        ("report.txt", text.encode(), "", 0o644),
    ]
    if repro:
        members.append(("repro.sh", repro.encode(), "", 0o755))
    for log in sorted(logs):
        members.append((f"logs/{log.name}", _read(log), str(log), 0o644))
    manifest: dict[str, Any] = {
        "format": "regress-bundle",
        "version": 2,
        "regress_version": __version__,
        "top": top,
        **meta,
        "files": [
            {
                "name": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                **({"source": source} if source else {}),
            }
            for name, data, source, _mode in members
        ],
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in manifest["files"]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(MANIFEST, manifest_bytes, 0o644), (SUMS, sums, 0o644)]
        entries += [(n, d, mode) for n, d, _s, mode in members]
        for name, data, mode in entries:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            info.uname = info.gname = "regress"
            tar.addfile(info, io.BytesIO(data))
    data = gzip.compress(buf.getvalue(), mtime=0)
    atomic_write_bytes(Path(out), data)
    mask = os.umask(0)
    os.umask(mask)
    Path(out).chmod(0o666 & ~mask)  # temp files are created 0600; this one is for sharing
    return manifest
