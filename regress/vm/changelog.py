"""The upstream changes between two Debian kernel packages, from the package changelog.

Every ``linux-image`` package ships the source package's whole changelog
(``usr/share/doc/linux-image-<release>/changelog.gz``): each upload lists the kernel.org
stable updates it took ("New upstream stable update: .../ChangeLog-6.1.191" followed by
one ``- subject`` line per upstream commit) and Debian's own changes (``* subject``).
The changes that landed between two packages of one line are the uploads after the old
package's version up to the new one's. Parsing is python-debian's; versions compare as
dpkg does, with the backport suffix (``~deb12u1``) dropped so a bookworm backport lines
up with the trixie uploads its changelog lists.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from debian.changelog import Changelog
from debian.debian_support import Version

STABLE_RE = re.compile(r"ChangeLog-(\d+\.\d+(?:\.\d+)?)")
BACKPORT_RE = re.compile(r"~(deb|bpo)\d+u?\d*$")
SIGNED_NOISE = ("Sign kernel from", "Rebuild for")
MAX_SUBJECT = 240


@dataclass(frozen=True, slots=True)
class Change:
    """One upstream commit subject (``stable`` names its kernel.org release) or one Debian
    change (``stable`` empty), with the package upload that brought it."""

    subject: str
    upload: str  # the source package version of the upload (6.1.191-1)
    stable: str  # the upstream stable release it came with (6.1.191), "" for Debian's own


def _comparable(version: str) -> Version:
    """``6.12.117+1~deb12u1`` (signed) and ``6.12.117-1~deb12u1`` -> ``6.12.117-1``."""
    v = BACKPORT_RE.sub("", version.strip())
    if "-" not in v and "+" in v:  # the signed wrapper's version: 6.1.192+2 = linux 6.1.192-2
        head, _, tail = v.rpartition("+")
        v = f"{head}-{tail}"
    return Version(v)


def read_changelog(path: Path) -> str:
    """The changelog text (gzip or plain)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def changes_between(text: str, old_version: str, new_version: str) -> list[Change]:
    """Changes in uploads newer than ``old_version`` up to ``new_version`` (inclusive),
    newest upload first; a change listed twice (the signed wrapper repeats the upload's
    Debian changes) is kept once."""
    lo, hi = _comparable(old_version), _comparable(new_version)
    found: list[Change] = []
    seen: set[str] = set()
    for block in Changelog(text, strict=False):
        if block.version is None:
            continue
        v = _comparable(str(block.version))
        if not lo < v <= hi:
            continue
        for change in _block_changes(block.changes(), str(v)):
            if change.subject not in seen:
                seen.add(change.subject)
                found.append(change)
    return found


def _block_changes(lines: list[str], upload: str) -> list[Change]:
    out: list[Change] = []
    stable = ""
    current: list[str] = []
    current_stable = ""

    def flush() -> None:
        if current:
            subject = " ".join(current).strip()[:MAX_SUBJECT]
            if subject and not subject.startswith(SIGNED_NOISE):
                out.append(Change(subject, upload, current_stable))
            current.clear()

    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("["):
            if stripped.startswith("[") and stripped.endswith("]"):  # "[ Maintainer ]"
                flush()
                stable = ""
                continue
        m = STABLE_RE.search(stripped)
        if stripped.startswith("* "):
            flush()
            stable = ""
            if "New upstream" in stripped:
                continue
            current_stable = ""
            current.append(stripped[2:])
        elif m and stripped.startswith("http"):
            flush()
            stable = m.group(1)
        elif stripped.startswith("- "):
            flush()
            current_stable = stable
            current.append(stripped[2:])
        elif current and stripped:
            current.append(stripped)  # a wrapped subject
    flush()
    return out
