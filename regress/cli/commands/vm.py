"""``regress kernel fetch|list``, ``regress image build``, ``regress run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regress.cli import options as o
from regress.cli.app import app, err, out
from regress.cli.progress import RunBars
from regress.gate import pipeline
from regress.report.format import culprit_lines
from regress.vm import backend as vm_backend
from regress.vm import debian, image, kernels
from regress.vm.backend import RunOptions

kernel_app = typer.Typer(
    help="Kernels to boot: fetch Debian kernels, list the cache.", no_args_is_help=True
)
image_app = typer.Typer(help="The guest root image.", no_args_is_help=True)
app.add_typer(kernel_app, name="kernel")
app.add_typer(image_app, name="image")


@kernel_app.command("fetch")
def kernel_fetch(
    refs: Annotated[
        list[str], typer.Argument(help="debian:6.1.0-56-cloud-amd64 or debian:6.1.192-2")
    ],
) -> None:
    """Download Debian kernels + modules + headers into the cache.

    Example: regress kernel fetch debian:6.12.117+deb12-cloud-amd64
    """
    for ref in refs:
        with err.status(f"fetching {ref}"):
            k = kernels.fetch_debian(ref)
        out.print(f"{k.label}  {k.version}  {k.vmlinuz.parent}", markup=False)


@kernel_app.command("list")
def kernel_list(
    available: Annotated[
        bool, typer.Option("--available/--cached", help="also list kernels apt can fetch")
    ] = True,
    json_out: o.JsonOut = None,
) -> None:
    """Cached kernels, and (by default) the Debian cloud kernels apt can fetch.

    Example: regress kernel list --cached
    """
    cached = kernels.list_cached()
    names = {k.release for k in cached}
    if json_out is not None:
        known = kernels.available_debian() if available else []

        def headers_of(a: debian.DebianKernel) -> str | None:
            if a.has_headers:
                return a.release
            closest = debian.closest_with_headers(a, known)
            return closest.release if closest else None

        o.emit_json(
            {
                "format": "regress-kernels",
                "format_version": 1,
                "cache": str(kernels.kernels_dir()),
                "cached": [
                    {
                        "label": k.label,
                        "release": k.release,
                        "version": k.version,
                        "upstream": k.upstream,
                        "source": k.source,
                        "headers": k.headers or k.release,
                        "build_key": dict(k.build).get("key"),
                    }
                    for k in cached
                ],
                "available": [
                    {
                        "ref": f"debian:{a.release}",
                        "release": a.release,
                        "version": a.version,
                        "upstream": a.upstream,
                        "line": a.line,
                        "headers": headers_of(a),
                        "own_headers": a.has_headers,
                        "cached": a.release in names,
                    }
                    for a in known
                ],
            },
            json_out,
        )
        if json_out == "-":
            return
    out.print(f"cached in {kernels.kernels_dir()}:", markup=False)
    for k in cached:
        extra = f"headers of {k.headers}" if k.headers and k.headers != k.release else ""
        out.print(
            f"  {k.label:<36} {k.version:<20} {k.upstream:<9} {k.source:<6} {extra}".rstrip(),
            markup=False,
        )
    if not cached:
        out.print("  (none)", markup=False)
    if available:
        known = kernels.available_debian()
        out.print(
            "available from apt (package version, upstream version; without packaged "
            "headers the closest kernel's are used):",
            markup=False,
        )
        for a in known:
            mark = "cached" if a.release in names else ""
            if a.has_headers:
                heads = "headers"
            else:
                closest = debian.closest_with_headers(a, known)
                heads = f"headers of {closest.release}" if closest else "no headers"
            line = f"  debian:{a.release:<29} {a.version:<20} {a.upstream:<9} {heads:<38} {mark}"
            out.print(line.rstrip(), markup=False)


@image_app.command("build")
def image_build(
    force: Annotated[bool, typer.Option("--force", help="rebuild even if cached")] = False,
) -> None:
    """debootstrap the guest root image (cached by recipe hash).

    Example: regress image build
    """
    with err.status("building the guest image (debootstrap, ~1 min)"):
        img = image.build_root_image(force=force)
    out.print(f"{img.path}  recipe {img.recipe_hash}", markup=False)


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated and/or comma-separated values (as ``capture`` takes them)."""
    if not values:
        return None
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


@app.command("run")
def run_cmd(
    old: o.OldKernel = o.OLD,
    new: o.NewKernel = o.NEW,
    workload: Annotated[
        str, typer.Option("--workload", "-w", help="built-in name or .toml")
    ] = o.WORKLOAD,
    runs: o.Runs = o.RUNS,
    iterations: o.Iterations = None,
    functions: Annotated[
        list[str] | None,
        typer.Option(
            help="kernel function patterns to count, repeatable or comma-separated "
            "(default: the workload's)"
        ),
    ] = None,
    function_returns: o.FunctionReturns = o.FUNCTION_RETURNS,
    narrow: o.Narrow = True,
    tracepoints: Annotated[
        list[str] | None, typer.Option(help="tracepoint patterns, repeatable or comma-separated")
    ] = None,
    fresh_boot_per_run: Annotated[
        bool, typer.Option("--fresh-boot-per-run", help="boot a fresh VM for every run")
    ] = False,
    parallel: o.Parallel = o.PARALLEL,
    timeout: o.Timeout = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--output", "--out-dir", "-o", help="default reports/<workload>-<old>-vs-<new>"
        ),
    ] = None,
    backend: o.Backend = o.BACKEND,
    accel: o.Accel = o.ACCEL,
    cpus: o.Cpus = None,
    mem: o.Mem = o.MEM,
    append: o.Append = None,
    old_kernel: o.OldKernelImage = None,
    old_modules: o.OldModules = None,
    old_headers: o.OldHeaders = None,
    new_kernel: o.NewKernelImage = None,
    new_modules: o.NewModules = None,
    new_headers: o.NewHeaders = None,
    old_label: o.OldLabel = None,
    new_label: o.NewLabel = None,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the commands, run nothing")
    ] = False,
) -> None:
    """Compare two kernels: boot each in a VM, capture the workload, diff, write the report.

    Example: regress run --old debian:6.1.0-57-cloud-amd64
    --new debian:6.12.117+deb12-cloud-amd64 -w new-syscalls
    """
    opts = o.with_vm_shape(
        RunOptions(
            old=old,
            new=new,
            workload=workload,
            runs=runs,
            iterations=iterations,
            functions=_split(functions),
            function_returns=function_returns,
            tracepoints=_split(tracepoints),
            fresh_boot_per_run=fresh_boot_per_run,
            out_dir=out_dir,
            append=list(append or []),
            old_paths=o.kernel_paths(old_kernel, old_modules, old_headers, "old", old_label),
            new_paths=o.kernel_paths(new_kernel, new_modules, new_headers, "new", new_label),
        ),
        cpus=cpus,
        mem=mem,
        accel=accel,
        timeout=timeout,
        parallel=parallel,
    )
    th = o.thresholds(alpha, min_ratio, min_delta)
    vm = vm_backend.get(backend)
    if dry_run:
        for line in vm.dry_run_lines(opts):
            out.print(line, markup=False)
        return
    bars = RunBars(runs)
    with bars.bars:
        comparison = pipeline.compare(opts, th, bars, backend=backend, narrow=narrow)
    for note in comparison.notes:
        err.print(f"regress: {note}", markup=False)
    result = comparison.result
    boots = ", ".join(f"{b['side']} boot {b['boot']} {b['wall_s']:.0f} s" for b in comparison.boots)
    out.print(
        f"regress run: {len(result.significant)} significant divergences among "
        f"{result.keys_tested} keys; {comparison.reports['html']} "
        f"({comparison.wall_s:.0f} s: {boots})",
        markup=False,
    )
    if result.narrowing is not None:
        n = result.narrowing
        out.print(
            f"regress run: narrowing pass under {', '.join(n.syscalls)}: {n.functions} "
            f"functions traced on both kernels ({n.wall_s:.0f} s)",
            markup=False,
        )
        for line in culprit_lines(result.culprits[:3], indent="  "):
            out.print(line, markup=False)
