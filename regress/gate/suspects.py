"""Which upstream changes between two Debian kernels touch what diverged.

Thousands of commits land between two packages of one stable line (7,286 between
6.1.170-3 and 6.1.192-2). A kernel engineer reads the few whose subject names a
diverging syscall or a function the narrowing pass found, or whose subsystem prefix
(``proc:``, ``fs/proc:``, ``pid:``) is where those live. Scores, highest first:

* a function from "Where it diverges" named in the subject        +6
* a diverging syscall named in the subject                        +4
* the subject's subsystem prefix is one the divergences live in   +3
* other words shared with those functions' names                  +1 each (<= 2)
* and, for a change that scored, "fix"/"revert"/"regression"      +0.5
Changes for other architectures (``[arm64] …``) score 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from regress.model.capture import KernelInfo
from regress.model.result import DiffResult, Suspect, Suspects
from regress.vm import changelog, debian, kernels

TOP = 10
# Where a syscall's code lives, as subject prefixes and words (kernel tree paths).
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"getdents|readlink|readdir", ("readdir", "proc", "fs", "vfs", "dcache")),
    (r"^(open|openat2?|creat|close|close_range|name_to_handle_at)$", ("open", "namei", "vfs")),
    (r"^(p?read|p?write|readv|writev|preadv2?|pwritev2?|sendfile|splice|tee)", ("vfs", "iov")),
    (r"stat|access|utime", ("stat", "namei", "vfs", "fs")),
    (r"^(kill|tgkill|tkill|rt_sig|sigaltstack|pause|signalfd|pidfd_send)", ("signal",)),
    (r"^(wait4|waitid|exit|exit_group)$", ("exit", "wait", "signal", "pid")),
    (r"^(clone3?|fork|vfork|execveat|execve|pidfd_open)$", ("fork", "exec", "pid", "sched")),
    (r"^(mmap|munmap|mprotect|mremap|madvise|brk|mseal|mlock|munlock|msync|cachestat)", ("mm",)),
    (r"^futex", ("futex", "locking")),
    (
        r"^(socket|connect|accept|bind|listen|send|recv|shutdown|[gs]etsockopt|getpeer|getsock)",
        ("net", "tcp", "udp", "ipv4", "ipv6", "sock", "inet", "af_unix"),
    ),
    (r"^(epoll|poll|ppoll|select|pselect)", ("eventpoll", "poll", "select")),
    (r"^io_uring", ("io_uring",)),
    (r"^bpf$", ("bpf",)),
    (r"mount|^fsopen|^fsconfig|^open_tree|^pivot_root", ("mount", "namespace", "fs")),
    (r"^(lsm_|keyctl|add_key|request_key)", ("lsm", "security", "keys")),
    (r"^(get|set)(pid|ppid|tid|sid|pgid|pgrp)$", ("pid",)),
    (r"^(sched_|nanosleep|clock_)", ("sched", "hrtimer", "time", "timers")),
    (r"xattr", ("xattr",)),
    (r"^pipe2?$", ("pipe",)),
    (r"^(dup[23]?|fcntl|flock)$", ("fcntl", "file", "locks")),
    (r"^ioctl$", ("ioctl",)),
)
STOP = frozenset(
    {"sys", "x64", "ksys", "do", "get", "set", "find", "the", "and", "for", "init", "put"}
    | {"ret", "one", "new", "old", "next", "first", "last", "common", "generic", "func"}
)
# Syscalls whose names are English words: a subject "fix OOB write" is not about write(2),
# so these count only when spelled as calls (``write()``, ``sys_write``).
PLAIN_WORDS = frozenset(
    "read write open close stat kill wait pause sync link mount select poll pipe time exit "
    "alarm socket connect accept bind listen send recv fork clone access ioctl dup mmap "
    "uname times chdir rename unlink chmod chown mkdir rmdir creat flock truncate".split()
)
AMD64 = frozenset({"x86", "amd64", "x86_64", "x86-64"})
WORD = re.compile(r"[A-Za-z0-9_]+")
PREFIX = re.compile(r"\A(?:\[[^\]]*\]\s*)?([A-Za-z0-9_./ -]{1,60}?):\s")


def _syscall_terms(name: str) -> tuple[str, ...]:
    for pattern, terms in FAMILIES:
        if re.search(pattern, name):
            return terms
    return ()


def _function_words(name: str) -> set[str]:
    return {w for w in name.lower().strip("_").split("_") if len(w) >= 3 and w not in STOP}


def divergence_terms(result: DiffResult) -> tuple[list[str], list[str], set[str]]:
    """(functions, syscalls, subsystem words) of what diverged, strongest first."""
    functions = [c.function for c in result.culprits]
    syscalls: list[str] = [s for c in result.culprits for s in c.syscalls]
    words: set[str] = set()
    rows = result.significant or result.shown
    for d in rows:
        kind, name = d.kind, d.key.split(":")[1] if d.key.count(":") else d.key
        if kind in ("syscall", "origin", "retval"):
            syscalls.append(name)
        elif kind in ("function", "funcret"):
            functions.append(name)
        elif kind == "tracepoint":
            words.update(w.lower() for w in WORD.findall(d.key.split(":", 1)[-1])[:1])
    syscalls = list(dict.fromkeys(s for s in syscalls if s))
    functions = list(dict.fromkeys(functions))
    for s in syscalls:
        words.update(_syscall_terms(s))
    for f in functions:
        words.update(_function_words(f))
    return functions, syscalls, words


def score_change(
    subject: str, functions: Iterable[str], syscalls: Iterable[str], words: set[str]
) -> tuple[float, str]:
    arch = re.match(r"\A\[([^\]]+)\]", subject)
    if arch and not {a.strip().lower() for a in arch.group(1).split(",")} & AMD64:
        return 0.0, ""
    subject_words = {w.lower() for w in WORD.findall(subject)}
    why: list[str] = []
    score = 0.0
    for f in functions:
        if f.lower() in subject_words or f"{f}()" in subject:
            score += 6
            why.append(f"names {f}()")
            break
    for s in syscalls:
        named = f"sys_{s}" in subject_words or f"{s}()" in subject or f"{s}(2)" in subject
        if named or (s.lower() in subject_words and s not in PLAIN_WORDS):
            score += 4
            why.append(f"names {s}")
            break
    m = PREFIX.match(subject)
    prefix = (
        {p.strip().lower() for p in re.split(r"[/ ,]", m.group(1)) if p.strip()} if m else set()
    )
    hit = sorted(prefix & words)
    if hit:
        score += 3
        why.append(f"subsystem {'/'.join(hit)}")
    fn_words = set().union(*(_function_words(f) for f in functions)) if functions else set()
    shared = sorted((subject_words - prefix) & fn_words)[:2]
    if shared:
        score += len(shared)
        why.append("mentions " + ", ".join(shared))
    if score and subject_words & {"fix", "fixes", "revert", "regression"}:
        score += 0.5
    return score, "; ".join(why)


def rank(
    changes: list[changelog.Change], result: DiffResult
) -> tuple[list[Suspect], int, tuple[str, ...]]:
    functions, syscalls, words = divergence_terms(result)
    scored: list[Suspect] = []
    for c in changes:
        score, why = score_change(c.subject, functions, syscalls, words)
        if score > 0:
            scored.append(Suspect(c.subject, c.upload, c.stable, score, why))
    scored.sort(key=lambda s: (-s.score, s.subject))
    terms = tuple(dict.fromkeys([*functions, *syscalls, *sorted(words)]))
    return scored, len(scored), terms


def suspects_between(
    result: DiffResult, old: kernels.Kernel | None, new: kernels.Kernel | None
) -> Suspects | None:
    """The ranked changes between two Debian kernel cache entries (None when a side is not
    a Debian package regress fetched)."""
    if old is None or new is None or not old.version or not new.version:
        return None
    lo, hi = sorted((old, new), key=lambda k: debian.version_sort_key(k.version))

    def made(
        note: str,
        changes: list[changelog.Change] | None = None,
        source: str = "",
    ) -> Suspects:
        top, matched, terms = rank(changes or [], result)
        return Suspects(
            old=old.version,
            new=new.version,
            old_upstream=old.upstream,
            new_upstream=new.upstream,
            total=len(changes or []),
            matched=matched,
            terms=terms,
            top=tuple(top[:TOP]),
            source=source,
            note=note,
        )

    line_lo, line_hi = (".".join(k.upstream.split(".")[:2]) for k in (lo, hi))
    if line_lo != line_hi:
        return made(
            f"the kernels are from different stable lines ({line_lo} and {line_hi}): the "
            "changes between them are mainline's, not listed in a Debian changelog"
        )
    doc = hi.tree / "usr" / "share" / "doc" / f"linux-image-{hi.release}"
    path = next(
        (p for p in (doc / "changelog.gz", doc / "changelog.Debian.gz") if p.is_file()), None
    )
    if path is None:
        return made(f"no changelog in the cached linux-image-{hi.release} package")
    changes = changelog.changes_between(changelog.read_changelog(path), lo.version, hi.version)
    note = "" if old is lo else "the new kernel is older: these changes were taken away"
    return made(note, changes, f"linux-image-{hi.release} changelog")


def _debian_entry(info: KernelInfo) -> kernels.Kernel | None:
    """The cached Debian package a capture's kernel is -- only when /proc/version says it
    is that very package (an own build may reuse a Debian release string)."""
    entry = kernels.cached(info.release)
    if entry is None or not entry.version or entry.version != info.distro_version:
        return None
    return entry


def attach_suspects(result: DiffResult, old: KernelInfo, new: KernelInfo) -> DiffResult:
    """``result`` with the suspects between two cached Debian kernels, when both are."""
    found = suspects_between(result, _debian_entry(old), _debian_entry(new))
    return result if found is None else replace(result, suspects=found)
