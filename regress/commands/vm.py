"""``regress kernel fetch|list``, ``regress image build``, ``regress run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from regress.cli_app import app, err, out
from regress.errors import UsageError
from regress.vm import image, kernels, orchestrate, vagrant
from regress.vm.orchestrate import KernelPaths, RunOptions

kernel_app = typer.Typer(help="Kernels to boot: fetch Debian kernels, list the cache.",
                         no_args_is_help=True)
image_app = typer.Typer(help="The guest root image.", no_args_is_help=True)
app.add_typer(kernel_app, name="kernel")
app.add_typer(image_app, name="image")


@kernel_app.command("fetch")
def kernel_fetch(
    refs: Annotated[list[str], typer.Argument(
        help="debian:6.1.0-56-cloud-amd64 or debian:6.1.192-2")],
) -> None:
    """Download Debian kernels + modules + headers into the cache."""
    for ref in refs:
        with err.status(f"fetching {ref}"):
            k = kernels.fetch_debian(ref)
        out.print(f"{k.label}  {k.version}  {k.vmlinuz.parent}", markup=False)


@kernel_app.command("list")
def kernel_list(
    available: Annotated[bool, typer.Option("--available/--cached",
                                            help="also list kernels apt can fetch")] = True,
) -> None:
    """Cached kernels, and (by default) the Debian cloud kernels apt can fetch."""
    cached = kernels.list_cached()
    names = {k.release for k in cached}
    out.print(f"cached in {kernels.kernels_dir()}:", markup=False)
    for k in cached:
        out.print(f"  {k.label:<34} {k.version:<12} {k.source}", markup=False)
    if not cached:
        out.print("  (none)", markup=False)
    if available:
        out.print("available from apt (headers needed for tracing):", markup=False)
        for a in kernels.available_debian():
            mark = "cached" if a.release in names else ""
            heads = "headers" if a.has_headers else "no headers"
            out.print(f"  debian:{a.release:<27} {a.version:<12} {heads:<10} {mark}",
                      markup=False)


@image_app.command("build")
def image_build(
    force: Annotated[bool, typer.Option("--force", help="rebuild even if cached")] = False,
) -> None:
    """debootstrap the guest root image (cached by recipe hash)."""
    with err.status("building the guest image (debootstrap, ~1 min)"):
        img = image.build_root_image(force=force)
    out.print(f"{img.path}  recipe {img.recipe_hash}", markup=False)


def _split(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def _paths(kernel: Path | None, modules: Path | None, headers: Path | None,
           which: str) -> KernelPaths | None:
    if kernel is None:
        if modules is not None or headers is not None:
            raise UsageError(f"--{which}-modules/--{which}-headers need --{which}-kernel")
        return None
    if modules is None:
        raise UsageError(f"--{which}-kernel needs --{which}-modules (lib/modules/<release>)")
    return KernelPaths(kernel, modules, headers)


class _ProgressView:
    """Rich progress bars fed by the orchestrator's events (stderr)."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.completed}/{task.total} runs"),
                             TimeElapsedColumn(), console=err, transient=False)
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        side = str(ev.get("side", ""))
        if kind == "stage":
            self.bars.console.print(f"regress: {ev['message']}", markup=False)
        elif kind == "boot":
            if side not in self.tasks:
                self.tasks[side] = self.bars.add_task(f"{side} {ev['release']}", total=self.runs)
            self.bars.update(self.tasks[side],
                             description=f"{side} {ev['release']} boot {int(ev['boot']) + 1}/"
                                         f"{ev['boots']}")
        elif kind == "run" and side in self.tasks:
            self.bars.update(self.tasks[side], completed=int(ev["runs_done"]))


@app.command("run")
def run_cmd(
    old: Annotated[str, typer.Option(help="old kernel (debian:<release> or debian:<version>)")]
    = orchestrate.DEFAULT_OLD,
    new: Annotated[str, typer.Option(help="new kernel")] = orchestrate.DEFAULT_NEW,
    workload: Annotated[str, typer.Option("--workload", "-w", help="built-in name or .toml")]
    = orchestrate.DEFAULT_WORKLOAD,
    runs: Annotated[int, typer.Option(help="runs per kernel")] = orchestrate.DEFAULT_RUNS,
    iterations: Annotated[int | None, typer.Option(help="override the spec's iterations")]
    = None,
    functions: Annotated[str | None, typer.Option(
        help="kernel functions to count, comma-separated patterns (default: the workload's)")]
    = None,
    tracepoints: Annotated[str | None, typer.Option(help="tracepoint patterns, comma-separated")]
    = None,
    fresh_boot_per_run: Annotated[bool, typer.Option(
        "--fresh-boot-per-run", help="boot a fresh VM for every run")] = False,
    parallel: Annotated[bool, typer.Option(
        "--parallel/--serial", help="boot the old and new kernel at the same time")] = True,
    timeout: Annotated[float | None, typer.Option(help="per-boot timeout in seconds")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", "-o",
                                                 help="default reports/<workload>-<old>-vs-<new>")]
    = None,
    backend: Annotated[str, typer.Option(help="qemu or vagrant")] = "qemu",
    accel: Annotated[str, typer.Option(help="auto, kvm or tcg")] = "auto",
    cpus: Annotated[int | None, typer.Option(
        help="guest CPUs (default: 1 on hosts with < 4 cores, else 2)")] = None,
    mem: Annotated[int, typer.Option(help="guest memory (MB)")] = 2048,
    append: Annotated[list[str] | None, typer.Option(help="extra kernel command-line words")]
    = None,
    old_kernel: Annotated[Path | None, typer.Option(help="old bzImage (own build)")] = None,
    old_modules: Annotated[Path | None, typer.Option(help="old lib/modules/<release>")] = None,
    old_headers: Annotated[Path | None, typer.Option(help="old headers/build tree")] = None,
    new_kernel: Annotated[Path | None, typer.Option(help="new bzImage (own build)")] = None,
    new_modules: Annotated[Path | None, typer.Option(help="new lib/modules/<release>")] = None,
    new_headers: Annotated[Path | None, typer.Option(help="new headers/build tree")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the commands, run nothing")]
    = False,
) -> None:
    """Compare two kernels: boot each in a VM, capture the workload, diff, write the report."""
    opts = RunOptions(
        old=old, new=new, workload=workload, runs=runs, iterations=iterations,
        functions=_split(functions), tracepoints=_split(tracepoints),
        fresh_boot_per_run=fresh_boot_per_run, parallel=parallel, timeout_s=timeout,
        out_dir=out_dir,
        accel=accel, cpus=orchestrate.default_cpus() if cpus is None else cpus, mem_mb=mem,
        append=list(append or []),
        old_paths=_paths(old_kernel, old_modules, old_headers, "old"),
        new_paths=_paths(new_kernel, new_modules, new_headers, "new"),
    )
    if backend not in ("qemu", "vagrant"):
        raise UsageError("--backend must be qemu or vagrant")
    if backend == "vagrant":
        if not dry_run:
            vagrant.run(opts)
            return
        for line in vagrant.dry_run_lines(opts):
            out.print(line, markup=False)
        return
    if dry_run:
        for line in orchestrate.dry_run_lines(opts):
            out.print(line, markup=False)
        return
    view = _ProgressView(runs)
    with view.bars:
        outcome = orchestrate.run(opts, view)
    for note in outcome.notes:
        err.print(f"regress: {note}", markup=False)
    boots = ", ".join(f"{b['side']} boot {b['boot']} {b['wall_s']:.0f} s" for b in outcome.boots)
    summary = _summary(outcome.diff)
    report = outcome.reports.get("html") or outcome.captures["new"]
    out.print(f"regress run: {summary}; {report} ({outcome.wall_s:.0f} s: {boots})", markup=False)


def _summary(diff: Any) -> str:
    if diff is None:
        return "captures written, no diff"
    sig = getattr(diff, "significant", None)
    tested = getattr(diff, "keys_tested", None)
    if sig is not None and tested is not None:
        return f"{len(sig)} significant divergences among {tested} keys"
    return "diff written"
