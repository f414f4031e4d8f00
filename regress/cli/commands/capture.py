"""``regress workloads`` / ``capture`` / ``show`` / ``validate``.

Thin: parse options, call ``runner``/``capture``, print. Progress goes to
stderr (rich), results to stdout.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from regress.cli import options as o
from regress.cli.app import app, err, out
from regress.errors import UsageError
from regress.model.capture import Capture, load_capture
from regress.model.events import Event
from regress.model.names import errno_name
from regress.model.workload import builtin_dir, builtin_names, load_spec, resolve_workload
from regress.vm.backend import MAX_RUNS


@app.command("workloads")
def workloads_cmd(json_out: o.JsonOut = None) -> None:
    """List the built-in workloads.

    Example: regress workloads --json -
    """
    specs = [load_spec(builtin_dir() / f"{name}.toml") for name in builtin_names()]
    if json_out is not None:
        o.emit_json(
            {
                "format": "regress-workloads",
                "format_version": 1,
                "workloads": [
                    {
                        "name": s.name,
                        "iterations": s.iterations,
                        "description": s.description,
                        "hash": s.spec_hash(),
                        "functions": list(s.functions),
                        "tracepoints": list(s.tracepoints),
                        "liveness": s.liveness is not None,
                    }
                    for s in specs
                ],
            },
            json_out,
        )
        if json_out == "-":
            return
    for spec in specs:
        out.print(f"{spec.name:<14} {spec.iterations:>5} it  {spec.description}", markup=False)


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated and/or comma-separated values; None when the option was not given."""
    if values is None:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


@app.command("capture")
def capture_cmd(
    workload: Annotated[
        str, typer.Option("--workload", "-w", help="Built-in name or path to a .toml spec.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Capture file (.json or .json.gz).")
    ] = None,
    runs: Annotated[
        int, typer.Option("--runs", "-n", min=1, max=MAX_RUNS, help="Tracer runs.")
    ] = 3,
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="Override iterations per run.")
    ] = None,
    tracepoints: Annotated[
        list[str] | None,
        typer.Option("--tracepoints", help="Tracepoint patterns (cat:event, *); default: spec's."),
    ] = None,
    functions: Annotated[
        list[str] | None,
        typer.Option("--functions", help="Kernel function patterns (kprobes); default: spec's."),
    ] = None,
    function_returns: o.FunctionReturns = o.FUNCTION_RETURNS,
    kernel_headers: Annotated[
        Path | None,
        typer.Option(
            "--kernel-headers",
            help="Headers tree for bcc (default: $REGRESS_KERNEL_HEADERS, native, Debian's).",
        ),
    ] = None,
    ebpf: Annotated[
        bool, typer.Option("--ebpf", help="Print the generated BPF C and exit (no root needed).")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 2) when a --tracepoints/--functions name matches nothing here.",
        ),
    ] = False,
) -> None:
    """Trace a workload's process tree on the running kernel into a capture file.

    Example: regress capture -w ps-loop --runs 3 -o ps.json
    """
    from regress.guest import runner
    from regress.guest.environment import tracefs_path

    spec = resolve_workload(workload)
    if iterations is not None:
        spec = spec.with_iterations(iterations)
    if function_returns:
        spec = spec.with_function_returns()
    tps = _split(tracepoints)
    fns = _split(functions)
    if ebpf:
        tracefs = tracefs_path()
        readable = (tracefs / "available_events").is_file()
        try:
            (tracefs / "available_events").open().close()
        except OSError:
            readable = False
        plan = runner.plan_tracer(
            list(spec.tracepoints if tps is None else tps),
            list(spec.functions if fns is None else fns),
            tracefs=tracefs if readable else None,
            function_returns=spec.function_returns,
        )
        if not readable:
            err.print(
                f"regress: {tracefs}/available_events is not readable (not root?): probe "
                "patterns are shown unexpanded, exact names as given",
                markup=False,
            )
        out.print(runner.tracer_info(plan).bpf_text, markup=False, end="")
        return
    if output is None:
        raise UsageError("capture needs -o FILE (or --ebpf to print the program)")
    if output.is_dir():
        raise UsageError(f"-o {output}: is a directory, expected a capture file name")
    # Fail before minutes of tracing, not at the first save.
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output.parent).close()
    except OSError as exc:
        raise UsageError(
            f"-o {output}: cannot create a file there: {exc.strerror or exc}"
        ) from None

    if tps or fns:
        _check_requested(tps or [], fns or [], strict=strict)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        tasks: dict[int, TaskID] = {}

        def on_event(ev: Event) -> None:
            if ev.kind == "loading":
                progress.console.print(f"compiling tracer; {ev.message}", markup=False)
            elif ev.kind == "run_start" and ev.run is not None:
                tasks[ev.run] = progress.add_task(
                    f"{spec.name} run {ev.run + 1}/{ev.runs}", total=ev.iterations
                )
            elif ev.kind == "iteration" and ev.run is not None:
                progress.advance(tasks[ev.run])

        capture = runner.run_capture(
            spec,
            runs=runs,
            out=output,
            tracepoints=tps,
            functions=fns,
            kernel_headers=kernel_headers,
            on_event=on_event,
        )
    total = sum(sum(sum(v.values()) for v in r.syscalls.values()) for r in capture.runs)
    out.print(
        f"wrote {output}: {capture.workload.name}, {len(capture.runs)} runs x "
        f"{capture.iterations_per_run} iterations, {total} syscalls on {capture.kernel.release}",
        markup=False,
    )


def _check_requested(tracepoints: list[str], functions: list[str], *, strict: bool) -> None:
    """Probes asked for by name that this kernel does not have: a loud warning (they are
    recorded as absent, never as zero), or with ``--strict`` a refusal before tracing."""
    from regress.guest import runner
    from regress.guest.environment import ensure_tracefs

    plan = runner.plan_tracer(tracepoints, functions, tracefs=ensure_tracefs())
    missing = [
        f"{st.kind} {st.name} ({st.reason})"
        for st in plan.statuses
        if st.status != "attached" and st.name in {*tracepoints, *functions}
    ]
    if not missing:
        return
    text = "; ".join(missing)
    if strict:
        raise UsageError(f"not on this kernel: {text}", hint="drop them, or run without --strict")
    err.print(
        f"regress: warning: not on this kernel, recorded as absent: {text}",
        markup=False,
        style="bold yellow",
    )


# --------------------------------------------------------------------------- show


def _per_iteration(capture: Capture) -> Iterator[tuple[str, str, float, int]]:
    """(syscall, errno name, mean count per iteration, runs seen) over all runs."""
    totals: dict[tuple[str, str], int] = {}
    seen: dict[tuple[str, str], int] = {}
    iterations = capture.total_iterations or 1
    for r in capture.runs:
        for name, errs in r.syscalls.items():
            for e, n in errs.items():
                key = (name, errno_name(e))
                totals[key] = totals.get(key, 0) + n
                seen[key] = seen.get(key, 0) + 1
    for (name, e), n in totals.items():
        yield name, e, n / iterations, seen[(name, e)]


def summary_dict(capture: Capture, *, top: int = 25) -> dict[str, Any]:
    """What ``regress show`` says about a capture, as data (``--json``; the text is
    rendered from it, so both carry the same content)."""
    k, m, w = capture.kernel, capture.machine, capture.workload
    rows = sorted(_per_iteration(capture), key=lambda r: (-r[2], r[0], r[1]))
    errors = [r for r in rows if r[1] != "ok"]
    tp_totals: dict[str, int] = {}
    fn_totals: dict[str, int] = {}
    its = capture.total_iterations or 1
    for r in capture.runs:
        for t, n in r.tracepoints.items():
            tp_totals[t] = tp_totals.get(t, 0) + n
        for f, n in r.functions.items():
            fn_totals[f] = fn_totals.get(f, 0) + n
    live_failed, live_total = capture.liveness_totals()

    def per_it(kind: str, name: str) -> float | None:
        totals = {"tracepoint": tp_totals, "function": fn_totals}.get(kind)
        return None if totals is None else round(totals.get(name, 0) / its, 4)

    return {
        "format": "regress-show",
        "format_version": 1,
        "kernel": {
            "release": k.release,
            "version": k.version,
            "upstream": k.upstream,
            "headers": k.headers,
            "tainted": k.tainted,
            "label": k.label,
        },
        "machine": {**m.shape(), "hostname": m.hostname},
        "workload": {"name": w.name, "hash": w.hash},
        "tracer": {"fingerprint": capture.tracer.fingerprint, "bcc": capture.bcc_version},
        "runs": {
            "done": len(capture.runs),
            "requested": capture.requested_runs,
            "state": capture.state,
            "iterations_per_run": capture.iterations_per_run,
        },
        "notes": list(capture.notes),
        "syscalls": [
            {"syscall": n, "errno": e, "per_iteration": round(v, 4)} for n, e, v, _ in rows[:top]
        ],
        "failing": [
            {"syscall": n, "errno": e, "per_iteration": round(v, 4)} for n, e, v, _ in errors[:top]
        ],
        "probes": [
            {
                "kind": p.kind,
                "name": p.name,
                "status": p.status,
                "reason": p.reason,
                "per_iteration": per_it(p.kind, p.name) if p.status == "attached" else None,
            }
            for p in capture.probes
        ],
        "liveness": (
            {"passed": live_total - live_failed, "total": live_total} if live_total else None
        ),
        "lost": dict(sorted(capture.lost_totals().items())),
    }


def render_summary(capture: Capture, *, top: int = 25) -> list[str]:
    """Plain-text summary lines of a capture (kept out of rich so tests can read it)."""
    d = summary_dict(capture, top=top)
    k, m, w, runs = d["kernel"], d["machine"], d["workload"], d["runs"]
    version = textwrap.wrap(k["version"], 90, subsequent_indent=" " * 10) or [""]
    lines = [
        f"kernel    {k['release']}",
        f"          {version[0]}",
        *version[1:],
        f"machine   {m['backend']} {m['arch']} {m['cpus']} cpus {m['mem_mb']} MiB"
        + (f" accel={m['accel']}" if m["accel"] else ""),
        f"workload  {w['name']}  spec {w['hash'][:12]}",
        f"tracer    {d['tracer']['fingerprint'][:12]}  bcc {d['tracer']['bcc'] or '?'}",
        f"runs      {runs['done']}/{runs['requested']}"
        + ("" if capture.complete else f"  ({runs['state'].split(' (')[0]})")
        + f" x {runs['iterations_per_run']} iterations",
    ]
    for note in d["notes"]:
        lines.append(f"note      {note}")
    lines.append("")
    lines.append(f"syscalls per iteration (top {top}):")
    for r in d["syscalls"]:
        lines.append(f"  {r['syscall'] + ' ' + r['errno']:<36} {r['per_iteration']:>12.2f}")
    lines.append("failing syscalls per iteration:")
    for r in d["failing"]:
        lines.append(f"  {r['syscall'] + ' ' + r['errno']:<36} {r['per_iteration']:>12.2f}")
    if not d["failing"]:
        lines.append("  (none)")
    lines.append("probes:")
    # a reason shared by several probes (kprobes unavailable here) is said once, below
    reasons = [p["reason"] for p in d["probes"] if p["reason"]]
    shared = [r for r in dict.fromkeys(reasons) if reasons.count(r) > 1]
    for p in d["probes"]:
        count = "" if p["per_iteration"] is None else f"{p['per_iteration']:.2f}/it"
        reason = ""
        if p["reason"] in shared:
            reason = f"  [{shared.index(p['reason']) + 1}]"
        elif p["reason"]:
            reason = f"  ({p['reason']})"
        lines.append(f"  {p['kind']:<10} {p['name']:<40} {p['status']:<8} {count}{reason}".rstrip())
    for i, r in enumerate(shared, 1):
        lines.append(f"  [{i}] {r}")
    live = d["liveness"]
    lines.append(
        "liveness  "
        + (f"{live['passed']}/{live['total']} iterations passed" if live else "no liveness check")
    )
    lost = d["lost"]
    lines.append("lost      " + (", ".join(f"{c}={n}" for c, n in lost.items()) or "none"))
    return lines


@app.command("show")
def show_cmd(
    file: Annotated[Path, typer.Argument(help="Capture file.")],
    top: Annotated[int, typer.Option("--top", min=1, help="Rows per table.")] = 25,
    json_out: o.JsonOut = None,
) -> None:
    """Summarise a capture: kernel, workload, runs, top syscall/errno counts, probes.

    Example: regress show ps.json --json -
    """
    capture = load_capture(file)
    if json_out is not None:
        o.emit_json(summary_dict(capture, top=top), json_out)
        if json_out == "-":
            return
    for line in render_summary(capture, top=top):
        out.print(line, markup=False)


@app.command("validate")
def validate_cmd(file: Annotated[Path, typer.Argument(help="Capture file.")]) -> None:
    """Check that a file is a readable capture of this schema (or migratable to it).

    Example: regress validate ps.json
    """
    capture = load_capture(file)
    state = capture.state
    out.print(
        f"ok: {file}: schema {capture.schema_version}, {capture.workload.name}, "
        f"{len(capture.runs)}/{capture.requested_runs} runs, {state}",
        markup=False,
    )
