"""Reading untrusted JSON with bounds: size, nesting, numbers, text.

Captures and bpftrace imports come from anywhere. The standard parser accepts a
thousand-deep nesting until Python's recursion limit breaks it, ``1e400`` as infinity,
``NaN``, and lone UTF-16 surrogates that later crash every writer; gzip happily expands
3 MB into 3 GB. Here:

* the file (and what it decompresses to) is capped at ``MAX_DOCUMENT_BYTES``, read as a
  stream so a bomb stops at the cap;
* nesting beyond Python's recursion limit is a one-line error, not a ``RecursionError``;
* ``NaN``/``Infinity`` and floats that overflow to infinity are refused;
* lone surrogates (``"\\ud800"``) are replaced by U+FFFD, so every string can be written;
* ``clip`` quotes at most ~80 characters of an offending value in an error message.

Stdlib only (also used in the guest).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import zlib
from pathlib import Path
from typing import Any

from regress.errors import CaptureFormatError, InputError

MAX_DOCUMENT_BYTES = 512 * 2**20
CLIP = 80
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def clip(value: object, limit: int = CLIP) -> str:
    """``repr``-like quote of ``value``, at most ``limit`` characters (then an ellipsis)."""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_capped(path: Path, *, what: str = "file", cap: int = MAX_DOCUMENT_BYTES) -> bytes:
    """File contents (gunzipped when gzip), refusing anything larger than ``cap`` bytes."""
    path = Path(path)
    mb = cap // 2**20
    try:
        with open(path, "rb") as fh:
            raw = fh.read(cap + 1)
    except FileNotFoundError:
        raise InputError(f"{clip(path)}: no such {what}") from None
    except IsADirectoryError:
        raise InputError(f"{clip(path)}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise InputError(f"{clip(path)}: cannot read: {exc.strerror}") from None
    if len(raw) > cap:
        raise CaptureFormatError(f"{clip(path)}: larger than {mb} MB: not read")
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(cap + 1)
        except (EOFError, OSError, zlib.error) as exc:
            raise CaptureFormatError(
                f"{clip(path)}: truncated or corrupt gzip ({clip(exc)})"
            ) from None
        if len(raw) > cap:
            raise CaptureFormatError(f"{clip(path)}: decompresses to more than {mb} MB: not read")
    return raw


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {clip(text, 24)} is out of range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number JSON allows")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def loads(raw: bytes, source: str) -> Any:
    """Parse ``raw`` as JSON under the bounds above; one-line ``CaptureFormatError``s."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CaptureFormatError(f"{clip(source)}: not JSON (binary data)") from None
    try:
        doc = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise CaptureFormatError(f"{clip(source)}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise CaptureFormatError(
            f"{clip(source)}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:  # from the number hooks
        raise CaptureFormatError(f"{clip(source)}: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            doc = _replace_surrogates(doc)
        except RecursionError:
            raise CaptureFormatError(f"{clip(source)}: JSON nested too deeply") from None
    return doc
