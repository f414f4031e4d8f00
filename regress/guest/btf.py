"""Which kernel functions return nothing: read from the running kernel's BTF.

A return probe on a ``void`` function reads whatever the return register happens to
hold -- a leftover pointer one time, 0 the next -- and "what it returns" would then be
noise that can differ between failing and passing iterations by chance. The kernel's
own type information (``/sys/kernel/btf/vmlinux``, CONFIG_DEBUG_INFO_BTF, on every Debian
kernel regress boots) says which functions are ``void``; their return probes are
recorded as absent with that reason instead of being counted.

A minimal reader of the BTF format (linux/btf.h): the header, then the type section
walked record by record, keeping only FUNC -> FUNC_PROTO -> return type id (0: void).
Type information from the kernel itself, never a struct read by the tracer. Stdlib-only:
runs in the guest.
"""

from __future__ import annotations

import struct
from pathlib import Path

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off+len
_TYPE = struct.Struct("<III")  # name_off, info, size_or_type
KIND_FUNC, KIND_FUNC_PROTO = 12, 13
# Bytes after the common record, per kind: fixed, or per ``vlen`` entry.
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}  # INT, ARRAY, VAR, DECL_TAG
_PER_ENTRY = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT UNION ENUM PROTO DATASEC ENUM64


class BTFError(ValueError):
    """The blob is not BTF this reader understands."""


def void_functions(data: bytes) -> frozenset[str]:
    """Names of the FUNC records whose prototype returns ``void``."""
    if len(data) < _HEADER.size:
        raise BTFError("too short for a BTF header")
    magic, _, _, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
    if magic != BTF_MAGIC:
        raise BTFError(f"bad magic 0x{magic:x}")
    types_at, strings_at = hdr_len + type_off, hdr_len + str_off
    if types_at + type_len > len(data) or strings_at + str_len > len(data):
        raise BTFError("sections run past the end")
    proto_returns: dict[int, int] = {}  # FUNC_PROTO type id -> return type id
    funcs: list[tuple[int, int]] = []  # (name offset, proto type id)
    pos, end, type_id = types_at, types_at + type_len, 1
    while pos < end:
        name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        pos += _TYPE.size
        if kind == KIND_FUNC:
            funcs.append((name_off, size_or_type))
        elif kind == KIND_FUNC_PROTO:
            proto_returns[type_id] = size_or_type
        if kind in _FIXED:
            pos += _FIXED[kind]
        elif kind in _PER_ENTRY:
            pos += _PER_ENTRY[kind] * vlen
        elif kind not in (2, 7, 8, 9, 10, 11, 12, 16, 18):  # records with no extra bytes
            raise BTFError(f"unknown BTF kind {kind} at type {type_id}")
        type_id += 1
    out: set[str] = set()
    for name_off, proto in funcs:
        if proto_returns.get(proto, -1) == 0:
            start = strings_at + name_off
            stop = data.index(b"\0", start)
            out.add(data[start:stop].decode("ascii", errors="replace"))
    return frozenset(out)


def kernel_void_functions(path: Path = VMLINUX_BTF) -> frozenset[str] | None:
    """The running kernel's void functions; None when it exposes no (readable) BTF."""
    try:
        return void_functions(path.read_bytes())
    except (OSError, BTFError):
        return None
