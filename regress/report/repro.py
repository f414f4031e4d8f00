"""``repro.sh``: the comparison's top divergences, re-counted without regress.

syzbot and LKP ship a reproducer a maintainer runs on their own machine; this is
regress's. The script writes the workload (setup, command, liveness), runs it the
captured number of iterations under one ``bpftrace`` program that follows the
workload's process tree (the command's pid, then every fork of a followed task) and
counts exactly the top divergences' keys -- syscall exits by errno, kernel function
calls, tracepoint hits -- and prints them next to the per-iteration numbers of both
captures, plus the exit codes of the iterations. Run it as root on any machine booted
into either kernel; it needs only ``sh`` and ``bpftrace``.

Every name that reaches the script comes from a validated capture (syscall names from
the kernel's table, errnos as numbers, ``cat:event`` tracepoints, C identifiers for
functions); anything else is left out with a comment, never pasted.
"""

from __future__ import annotations

import re

from regress.model.capture import Capture
from regress.model.names import KERNEL_ERRNOS, KERNEL_UAPI_ERRNOS, number_of
from regress.model.result import DiffResult, Divergence
from regress.report.format import spec_text, str_list

MAX_KEYS = 8
IDENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.]{0,127}\Z")
TRACEPOINT = re.compile(r"\A[A-Za-z0-9_]{1,64}:[A-Za-z0-9_]{1,64}\Z")
ERRNO_NUMBERS = {
    name: n for table in (KERNEL_UAPI_ERRNOS, KERNEL_ERRNOS) for n, name in table.items()
}


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.2f}"  # NaN: absent on that side


def _probe(d: Divergence, i: int) -> tuple[str, str] | None:
    """(bpftrace probe clause, what it counts) for one row, or None when it cannot be
    counted by a one-liner (return buckets, outcomes, origins)."""
    if d.kind == "syscall":
        nr = number_of(d.name)
        if nr is None:
            return None
        if d.sub == "ok":
            cond = f"args->id == {nr} && args->ret >= 0"
        elif d.sub in ERRNO_NUMBERS:
            cond = f"args->id == {nr} && args->ret == -{ERRNO_NUMBERS[d.sub]}"
        else:
            return None
        return (
            f"tracepoint:raw_syscalls:sys_exit /@tree[pid] && {cond}/ {{ @k{i} = count(); }}",
            "",
        )
    if d.kind == "function" and IDENT.match(d.name):
        return (f"kprobe:{d.name} /@tree[pid]/ {{ @k{i} = count(); }}", "")
    if d.kind == "tracepoint" and TRACEPOINT.match(d.name):
        return (f"tracepoint:{d.name} /@tree[pid]/ {{ @k{i} = count(); }}", "")
    return None


def repro_script(result: DiffResult, old: Capture, new: Capture, regress_command: str) -> str:
    """The whole ``repro.sh`` text."""
    spec = old.workload.spec  # free-form: each field read as what it should be, or none
    its = spec.get("iterations")
    iterations = int(old.iterations_per_run or (its if isinstance(its, int) else 0) or 1)
    command = spec_text(spec.get("command")) or "true"
    setup, liveness = spec_text(spec.get("setup")), spec_text(spec.get("liveness"))
    files = str_list(spec.get("files"))
    rows: list[tuple[int, Divergence, str]] = []
    skipped: list[str] = []
    for d in result.shown:
        if len(rows) >= MAX_KEYS:
            break
        made = _probe(d, len(rows))
        if made is None:
            if d.kind not in ("liveness", "exit-status"):
                skipped.append(d.key)
            continue
        rows.append((len(rows), d, made[0]))
    # The here-document's end marker must not be a line of the workload's own shell.
    body = "\n".join((setup or "", liveness or "", command))
    eof = "REGRESS_WORKLOAD"
    while eof in body:
        eof += "_"
    lines = [
        "#!/bin/sh",
        f"# regress reproducer: workload {_comment(old.workload.name)}, "
        f"{_comment(old.kernel.release)} -> {_comment(new.kernel.release)}.",
        "# Run as root on a machine booted into either kernel; needs sh and bpftrace.",
        f"# It runs the workload {iterations} times under one bpftrace program that follows",
        "# the workload's process tree and counts the comparison's top divergences",
        "# (the tree includes this script's loop shell: compare the change, not the level).",
        "# Without regress; to re-run the whole comparison with it:",
        f"#   {_comment(regress_command)}",
        "set -eu",
        'command -v bpftrace >/dev/null || { echo "repro.sh: needs bpftrace" >&2; exit 2; }',
        "WORK=$(mktemp -d /tmp/regress-repro.XXXXXX)",
        'cd "$WORK"',
        f"ITERATIONS={iterations}",
        f"cat > workload.sh <<'{eof}'",
        "#!/bin/sh",
        "# one run of the workload: setup once, then the command per iteration",
        'export REGRESS_WORKDIR="$PWD"',
    ]
    if setup:
        lines.append(setup)
    lines += [
        'i=0; while [ "$i" -lt "$1" ]; do',
        '  export REGRESS_ITERATION="$i" REGRESS_OUT="$PWD/out.$i"',
        f'  ( {command} ) > "$REGRESS_OUT" 2>&1 && rc=0 || rc=$?',
    ]
    if liveness:
        lines.append(f"  ( {liveness} ) >/dev/null 2>&1 && live=ok || live=FAILED")
    else:
        lines.append("  live=-")
    lines += [
        '  echo "iteration $i: exit $rc, liveness $live" >> outcomes.txt',
        "  i=$((i + 1))",
        "done",
        eof,
        "chmod +x workload.sh",
    ]
    if files:
        lines.append(
            "# the workload names files ("
            + _comment(", ".join(sorted(files)))
            + "): put them in $WORK first"
        )
    head = [
        "BEGIN { @tree[cpid] = 1; }",
        "tracepoint:sched:sched_process_fork /@tree[args->parent_pid]/ "
        "{ @tree[args->child_pid] = 1; }",
    ]
    tail = ["END { clear(@tree); }"]
    lines += [
        "cat > count.bt <<'REGRESS_BT'",
        *head,
        *(probe for _i, _d, probe in rows),
        *tail,
        "REGRESS_BT",
        "cat > count-no-kprobes.bt <<'REGRESS_BT'",
        *head,
        *(probe for _i, _d, probe in rows if not probe.startswith("kprobe:")),
        *tail,
        "REGRESS_BT",
        "# kernels in lockdown refuse kprobes: then count everything else",
        'BT="bpftrace -q -f json"',
        'RUN="/bin/sh $WORK/workload.sh $ITERATIONS"',
        'if ! $BT count.bt -c "$RUN" > counts.json 2> bt.err; then',
        '  if ! grep -qi "kprobe\\|attach" bt.err; then cat bt.err >&2; exit 1; fi',
        '  echo "repro.sh: bpftrace refused kernel function probes here ($(head -n 1 bt.err)); '
        'counting syscalls and tracepoints only" >&2',
        "  rm -f outcomes.txt",
        '  $BT count-no-kprobes.bt -c "$RUN" > counts.json',
        "fi",
        'echo "counted over $ITERATIONS iterations:"',
    ]
    for i, d, _probe_text in rows:
        label = _comment(d.key)
        lines.append(
            f"n=$(sed -n 's/.*\"@k{i}\": *\\([0-9][0-9]*\\).*/\\1/p' counts.json | head -n 1)"
        )
        awk = (
            'BEGIN { printf "  '
            + label
            + ": %.2f per iteration here (old kernel "
            + _fmt(d.old.center)
            + ", new "
            + _fmt(d.new.center)
            + ')\\n", n / it }'
        )
        lines.append(f'awk -v n="${{n:-0}}" -v it="$ITERATIONS" \'{awk}\'')
    lines += [
        'sort outcomes.txt | sed "s/^iteration [0-9]*: //" | uniq -c | sed "s/^/  outcomes: /"',
        'echo "files kept in $WORK"',
    ]
    for key in skipped:
        lines.append(f"# not counted by this script (needs regress): {_comment(key)}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """Text safe inside a shell comment or a double-quoted echo: printable, no quotes,
    no expansions, one line."""
    return re.sub(r"[^A-Za-z0-9 _.,:;=+/@()\[\]<>-]", "?", text)[:200]
