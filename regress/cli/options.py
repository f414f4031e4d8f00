"""Options shared by several commands, defined once (asv's ``common_args`` idea).

Defaults are read from the core types -- ``Thresholds`` for the statistics,
``RunOptions`` for runs and the VM shape -- so ``run``, ``ci``, ``selftest``, ``diff``
and ``report`` cannot drift apart.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from regress.errors import UsageError
from regress.model.capture import atomic_write_text
from regress.model.result import FailOn, Thresholds
from regress.vm.backend import (
    DEFAULT_NEW,
    DEFAULT_OLD,
    DEFAULT_RUNS,
    DEFAULT_WORKLOAD,
    KernelPaths,
    RunOptions,
    default_cpus,
)

_TH = Thresholds()
_RUN = RunOptions(cpus=1)  # cpus: the real default depends on the host (default_cpus)

# --------------------------------------------------------------------------- statistics

Alpha = Annotated[float, typer.Option("--alpha", help="FDR level (BH q threshold)")]
MinRatio = Annotated[float, typer.Option("--min-ratio", help="effect gate: minimum new/old ratio")]
MinDelta = Annotated[
    float, typer.Option("--min-delta", help="effect gate: minimum |delta| per iteration")
]
ALPHA = _TH.alpha
MIN_RATIO = _TH.min_ratio
MIN_DELTA = _TH.min_abs_delta


def thresholds(alpha: float, min_ratio: float, min_delta: float) -> Thresholds:
    return Thresholds(alpha=alpha, min_ratio=min_ratio, min_abs_delta=min_delta)


FailOnOpt = Annotated[
    FailOn,
    typer.Option("--fail-on", help="exit 1 on: any significant row, regressions only, or never"),
]
Force = Annotated[
    bool, typer.Option("--force", help="compare even if the captures are not comparable")
]
OldCapture = Annotated[
    Path, typer.Argument(help="capture (or bpftrace -f json output) from the old kernel")
]
NewCapture = Annotated[
    Path, typer.Argument(help="capture (or bpftrace -f json output) from the new kernel")
]

# --------------------------------------------------------------------------- tracer

FunctionReturns = Annotated[
    bool,
    typer.Option(
        "--function-returns",
        help="also count what the kernel functions return: NULL/0, each -errno, other "
        "(kretprobes; the workload spec's function_returns)",
    ),
]
FUNCTION_RETURNS = _RUN.function_returns
Narrow = Annotated[
    bool,
    typer.Option(
        "--narrow/--no-narrow",
        help="when something regressed, run the narrowing pass: discover the functions "
        "under the diverging syscalls and trace their returns and errno origins on both "
        "kernels ('Where it diverges')",
    ),
]

# --------------------------------------------------------------------------- kernels, VMs

# The default is spelled in the help text (typer would cut it at 80 columns).
OldKernel = Annotated[
    str,
    typer.Option(
        "--old",
        help=f"old kernel, debian:<release|version> (default {DEFAULT_OLD})",
        show_default=False,
    ),
]
NewKernel = Annotated[
    str, typer.Option("--new", help=f"new kernel (default {DEFAULT_NEW})", show_default=False)
]
OLD = DEFAULT_OLD
NEW = DEFAULT_NEW
Runs = Annotated[int, typer.Option("--runs", help="runs per kernel (>= 4 for the A/A control)")]
RUNS = DEFAULT_RUNS
Iterations = Annotated[
    int | None, typer.Option("--iterations", help="override the spec's iterations per run")
]
Accel = Annotated[str, typer.Option("--accel", help="auto, kvm or tcg")]
ACCEL = _RUN.accel
Cpus = Annotated[
    int | None,
    typer.Option("--cpus", help="guest CPUs (default: 1 on hosts with < 4 cores, else 2)"),
]
Mem = Annotated[int, typer.Option("--mem", help="guest memory (MB)")]
MEM = _RUN.mem_mb
Timeout = Annotated[float | None, typer.Option("--timeout", help="per-boot timeout in seconds")]
Parallel = Annotated[
    bool, typer.Option("--parallel/--serial", help="boot the two kernels at the same time")
]
PARALLEL = _RUN.parallel
Append = Annotated[
    list[str] | None, typer.Option("--append", help="extra kernel command-line words")
]
Backend = Annotated[str, typer.Option("--backend", help="qemu or vagrant")]
BACKEND = "qemu"
WORKLOAD = DEFAULT_WORKLOAD


def with_vm_shape(
    base: RunOptions,
    *,
    cpus: int | None,
    mem: int,
    accel: str,
    timeout: float | None,
    parallel: bool,
) -> RunOptions:
    """``base`` with the VM options every VM command takes the same way."""
    return replace(
        base,
        cpus=default_cpus() if cpus is None else cpus,
        mem_mb=mem,
        accel=accel,
        timeout_s=timeout,
        parallel=parallel,
    )


# --------------------------------------------------------------------------- own builds

OldKernelImage = Annotated[Path | None, typer.Option(help="old bzImage (own build)")]
OldModules = Annotated[Path | None, typer.Option(help="old lib/modules/<release>")]
OldHeaders = Annotated[Path | None, typer.Option(help="old headers/build tree")]
NewKernelImage = Annotated[Path | None, typer.Option(help="new bzImage (own build)")]
NewModules = Annotated[Path | None, typer.Option(help="new lib/modules/<release>")]
NewHeaders = Annotated[Path | None, typer.Option(help="new headers/build tree")]
OldLabel = Annotated[
    str | None, typer.Option(help="name of the old own build in reports (default: its path)")
]
NewLabel = Annotated[
    str | None, typer.Option(help="name of the new own build in reports (default: its path)")
]


def kernel_paths(
    kernel: Path | None,
    modules: Path | None,
    headers: Path | None,
    which: str,
    label: str | None = None,
) -> KernelPaths | None:
    """An own build given as ``--{which}-kernel/-modules/-headers(/-label)``, or None."""
    if kernel is None:
        if modules is not None or headers is not None or label:
            raise UsageError(
                f"--{which}-modules/--{which}-headers/--{which}-label need --{which}-kernel"
            )
        return None
    if modules is None:
        raise UsageError(f"--{which}-kernel needs --{which}-modules (lib/modules/<release>)")
    if label is not None and not 0 < len(label) <= 80:
        raise UsageError(f"--{which}-label: 1 to 80 characters")
    return KernelPaths(kernel, modules, headers, label or "")


def out_width() -> int | None:
    """Columns to fit stdout to: $COLUMNS, else the terminal's; None for a pipe or file
    (full lines, so scripts and golden files see every column)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) >= 40:
        return int(env)
    if sys.stdout.isatty():
        return max(40, shutil.get_terminal_size().columns)
    return None


JsonOut = Annotated[
    str | None, typer.Option("--json", help="also write JSON to PATH, or only JSON with -")
]


def emit_json(doc: Any, dest: str) -> None:
    """JSON to stdout (``-``) or atomically to a file (never a traceback on a bad path)."""
    emit_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n", dest)


HtmlOut = Annotated[
    str | None, typer.Option("--html", help="also write the HTML report to PATH, or - (stdout)")
]
TextOut = Annotated[
    str | None, typer.Option("--text", help="also write the text report to PATH, or - (stdout)")
]


def check_outputs(targets: dict[str, str]) -> None:
    """Refuse contradictions among output options: two of them on stdout, or two kinds
    of output into one file."""
    dashes = [k for k, v in targets.items() if v == "-"]
    if len(dashes) > 1:
        raise UsageError(f"only one output can go to stdout ('-'): {', '.join(sorted(dashes))}")
    seen: dict[Path, str] = {}
    for kind, dest in targets.items():
        if dest == "-":
            continue
        path = Path(dest).absolute()
        if path in seen:
            raise UsageError(f"{dest}: asked for both the {seen[path]} and the {kind} output")
        seen[path] = kind


def emit_text(text: str, dest: str) -> None:
    """Text to stdout (``-``) or atomically to a file."""
    if dest == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(Path(dest), text)
