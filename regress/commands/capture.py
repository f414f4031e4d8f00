"""``regress workloads`` / ``capture`` / ``show`` / ``validate``."""

from __future__ import annotations

from regress.cli_app import app, out
from regress.workload import builtin_dir, builtin_names, load_spec


@app.command("workloads")
def workloads_cmd() -> None:
    """List the built-in workloads."""
    for name in builtin_names():
        spec = load_spec(builtin_dir() / f"{name}.toml")
        out.print(f"{name:<14} {spec.iterations:>5} it  {spec.description}", markup=False)
