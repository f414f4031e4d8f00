"""``regress bundle``: one tar.gz to attach to a bug tracker.

Holds both capture files byte for byte (so anyone can re-run the diff), the
HTML and text reports, and ``manifest.json`` with the sha256 of every other
member so a reader can check nothing was altered in transit. The archive is
deterministic (fixed mtimes and owners) and written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from regress import __version__
from regress.errors import InputError
from regress.model.capture import atomic_write_bytes

MANIFEST = "manifest.json"


def _member_name(side: str, path: Path) -> str:
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    return f"{side}-capture{suffix or '.json'}"


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def build_bundle(
    *, old_path: Path, new_path: Path, html: str, text: str, meta: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    """The archive bytes and its manifest (also stored inside as ``manifest.json``)."""
    members: list[tuple[str, bytes, str]] = [
        (_member_name("old", Path(old_path)), _read(old_path), str(old_path)),
        (_member_name("new", Path(new_path)), _read(new_path), str(new_path)),
        ("report.html", html.encode(), ""),
        ("report.txt", text.encode(), ""),
    ]
    manifest: dict[str, Any] = {
        "format": "regress-bundle",
        "version": 1,
        "regress_version": __version__,
        **meta,
        "files": [
            {
                "name": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                **({"source": source} if source else {}),
            }
            for name, data, source in members
        ],
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, manifest_bytes), *((n, d) for n, d, _ in members)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = "regress"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0), manifest


def write_bundle(
    out: Path, *, old_path: Path, new_path: Path, html: str, text: str, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write the bundle to ``out`` atomically; returns the manifest."""
    data, manifest = build_bundle(
        old_path=old_path, new_path=new_path, html=html, text=text, meta=meta
    )
    atomic_write_bytes(Path(out), data)
    mask = os.umask(0)
    os.umask(mask)
    Path(out).chmod(0o666 & ~mask)  # temp files are created 0600; this one is for sharing
    return manifest
