"""View models for the reports: every number formatted, every sentence composed here.

Templates only loop and branch, so that what a report says is testable Python
and the HTML and text reports cannot disagree. Inputs are the differ's
``DiffResult`` plus both captures (environment, per-run data, BPF text, probe
statuses). Nothing here recomputes a statistic: counts shown next to the
differ's numbers (liveness failures, lost events, histograms) are sums of what
the captures recorded.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass, field
from itertools import islice, zip_longest
from typing import Any

from regress.errors import RegressError
from regress.model.capture import Capture
from regress.model.names import bucket_range
from regress.model.paths import safe_component
from regress.model.result import OUTCOME_KINDS, DiffResult, Divergence, SideValues
from regress.model.workload import builtin_names, resolve_workload
from regress.report.format import (
    clean,
    evidence_text,
    fmt_ci,
    fmt_num,
    fmt_p,
    fmt_ratio,
    fmt_value,
    missing,
    path_text,
    plural,
    str_list,
)
from regress.report.repro import repro_script

CLASS_LABELS: dict[str, str] = {
    "liveness": "liveness",
    "exit-status": "exit status",
    "certain-small": "certain, small",
    "suggestive": "suggestive",
    "appeared": "appeared",
    "vanished": "vanished",
    "rate": "rate change",
    "absent": "absent probe",
    "unchanged": "unchanged",
}

CONFIG_OPEN_MAX = 40  # more changed options than this: collapsed in HTML, cut in text


@dataclass
class RunRow:
    index: str
    old: str
    old_raw: str
    new: str
    new_raw: str


@dataclass
class HistBar:
    bucket: int
    old: float
    new: float
    highlight: bool
    values: str = ""  # the return values this log2 bucket holds


@dataclass
class RowView:
    rank: int
    key: str
    label: str
    kind: str
    cls: str
    cls_label: str
    old: str
    new: str
    ratio: str
    ci: str
    q: str
    p: str
    test: str
    significant: bool
    regression: bool
    direction: str  # "up", "down", "new", "gone", ""
    old_values: list[float]
    new_values: list[float]
    old_center: float
    new_center: float
    runs: list[RunRow]
    old_probe: str
    new_probe: str
    remarks: list[str]
    footnotes: list[int]
    histogram: list[HistBar] = field(default_factory=list)
    sentence: str = ""
    sort_ratio: float = 0.0
    sort_q: float = 1.0
    exact: bool = False


@dataclass
class EnvRow:
    label: str
    old: str
    new: str
    differs: bool
    mono: bool = False


@dataclass
class ConfigRow:
    option: str
    old: str
    new: str


@dataclass
class ProbeRow:
    kind: str
    name: str
    old: str
    new: str


@dataclass
class Footnote:
    number: int
    code: str
    message: str


@dataclass
class ReproStep:
    title: str
    command: str
    argv: list[str]


@dataclass
class BpfProgram:
    title: str
    text: str


@dataclass
class CulpritView:
    """One function of "Where it diverges", formatted."""

    number: int
    function: str
    title: str  # "find_ge_pid() -- what it returns differs when the workload fails"
    evidence: list[str]
    explains: str = ""  # "getdents64" / "openat": the syscalls it explains
    path: str = ""  # errno origin's kernel call path, innermost caller first


@dataclass
class ContrastView:
    """One kernel's failing-vs-passing contrast, formatted."""

    title: str  # "new kernel 6.1.0-56: 8 failing vs 16 passing iterations"
    rows: list[tuple[str, str, str, str]]  # label, failing/iter, passing/iter, q
    note: str  # what nothing found means, or ""
    method: str


@dataclass
class ReportView:
    title: str
    workload: str
    description: str
    old_kernel: str
    new_kernel: str
    old_identity: str  # package and upstream version, when known ("" otherwise)
    new_identity: str
    kernel_range: str  # v6.1.170..v6.1.192 when the upstream versions differ, else releases
    distro_note: str  # distribution kernels: check a vanilla kernel before going upstream
    verdict: str
    verdict_class: str  # "regression" / "changed" / "same"
    headline: str
    summary: str
    impact: str
    subject_summary: str
    liveness: str  # "37 of 200 iterations on new, 0 of 200 on old" or ""
    rows: list[RowView]
    more_rows: list[RowView]
    hidden_rows: int
    keys_tested: int
    n_significant: int
    n_regressions: int
    env: list[EnvRow]
    config_rows: list[ConfigRow]
    config_note: str
    config_open: bool  # few enough changed options to show expanded
    spec_text: list[BpfProgram]
    probes: list[ProbeRow]
    lost: list[EnvRow]
    footnotes: list[Footnote]
    tests_used: list[str]
    method_intro: str
    thresholds: list[EnvRow]
    fdr: str
    aa: str
    contrasts: list[ContrastView]
    culprits: list[CulpritView]
    narrowing: str  # what the narrowing pass did, "" when none ran
    suspects_title: str  # "Changes between v6.1.170 and v6.1.192 touching ...", "" when none
    suspects: list[SuspectView]
    repro: list[ReproStep]
    repro_script: str  # repro.sh: the workload + the top divergences with bpftrace
    bpf: list[BpfProgram]


# --------------------------------------------------------------------------- helpers


def _imported(old: Capture, new: Capture) -> bool:
    """Foreign captures (bpftrace): no regress tracer, spec or machine facts behind them."""
    return "import" in (old.machine.backend, new.machine.backend)


def _probe_text(status: str, reason: str | None) -> str:
    if status in ("attached", "n/a"):
        return status
    return f"{status} ({clean(reason)})" if reason else status


def _direction(d: Divergence) -> str:
    if d.cls == "appeared":
        return "new"
    if d.cls == "vanished":
        return "gone"
    if missing(d.delta):
        return ""
    if d.delta > 0:
        return "up"
    if d.delta < 0:
        return "down"
    return ""


def _sentence(d: Divergence) -> str:
    """One clause describing a divergence, for headlines and summaries."""
    text = _clause(d)
    return f"{text} ({clean(d.interpretation)})" if d.interpretation else text


def _clause(d: Divergence) -> str:
    label = clean(d.label)
    if d.kind in OUTCOME_KINDS:
        fo, no = sum(d.old.raw), sum(d.old.trials or ())
        fn, nn = sum(d.new.raw), sum(d.new.trials or ())
        return f"{label} went from {fo} of {no} iterations to {fn} of {nn}"
    if d.kind == "function" and label.endswith(")"):
        label += " calls"
    elif d.kind == "tracepoint":
        label += " events"
    if d.bucket is not None and "returns" not in label:
        label += f" ({bucket_values(d.bucket)})"
    old, new = fmt_num(d.old.center), fmt_num(d.new.center)
    if d.cls == "absent":
        side = "old" if d.old.probe_status in ("absent", "failed") else "new"
        return f"{label} could not be probed on the {side} kernel"
    if d.cls == "appeared":
        return f"{label} appeared ({new} per iteration, never on the old kernel)"
    if d.cls == "vanished":
        return f"{label} vanished ({old} per iteration on the old kernel, none on the new)"
    verb = "rose" if d.delta > 0 else "fell" if d.delta < 0 else "changed"
    ratio = f", {fmt_ratio(d.ratio)}" if d.ratio is not None else ""
    return f"{label} {verb} from {old} to {new} per iteration{ratio}"


def _histogram(d: Divergence, old: Capture, new: Capture) -> list[HistBar]:
    """Per-iteration log2 return-value histogram of the row's syscall on both kernels."""
    if d.bucket is None:
        return []
    name, highlight = d.name, d.bucket

    def hist(c: Capture) -> dict[int, float]:
        total: dict[int, int] = {}
        for run in c.runs:
            for bucket, n in run.retvals.get(name, {}).items():
                total[int(bucket)] = total.get(int(bucket), 0) + n
        its = c.total_iterations or 1
        return {b: n / its for b, n in total.items()}

    ho, hn = hist(old), hist(new)
    buckets = sorted(set(ho) | set(hn))
    if not buckets:
        return []
    lo, hi = buckets[0], buckets[-1]
    return [
        HistBar(b, ho.get(b, 0.0), hn.get(b, 0.0), b == highlight, bucket_values(b))
        for b in range(lo, hi + 1)
    ]


def bucket_values(bucket: int) -> str:
    """What a ``retval`` log2 bucket holds, in the tracer's convention (see bpfgen)."""
    lo, hi = bucket_range(bucket)
    return f"returns {lo}" if lo == hi else f"returns {lo}–{hi}"


def _shown(d: Divergence, side: SideValues, c: Capture) -> str:
    """The table cell for one side: liveness as failures/iterations, else per iteration."""
    if side.probe_status in ("absent", "failed"):
        return side.probe_status
    if d.kind in OUTCOME_KINDS:
        trials = sum(side.trials) if side.trials is not None else c.total_iterations
        return f"{sum(side.raw)}/{trials}"
    return fmt_num(side.center)


def _row(
    rank: int,
    d: Divergence,
    result: DiffResult,
    old: Capture,
    new: Capture,
    codes: dict[str, int],
) -> RowView:
    test_text = result.test_description(d.test)
    runs = [
        RunRow(
            index=str(i + 1),
            old=fmt_num(a[0]) if a else "",
            old_raw=str(a[1]) if a else "",
            new=fmt_num(b[0]) if b else "",
            new_raw=str(b[1]) if b else "",
        )
        for i, (a, b) in enumerate(
            zip_longest(
                list(zip(d.old.per_iter, d.old.raw, strict=False)),
                list(zip(d.new.per_iter, d.new.raw, strict=False)),
            )
        )
    ]
    remarks = [clean(n) for n in d.notes if n not in codes]
    if d.bucket is not None:
        remarks.insert(0, f"log2 bucket {d.bucket}: {bucket_values(d.bucket)}.")
    notes = sorted({codes[n] for n in d.notes if n in codes})
    return RowView(
        rank=rank,
        key=clean(d.key),
        label=clean(d.label),
        kind=d.kind,
        cls=d.cls,
        cls_label=CLASS_LABELS.get(d.cls, d.cls),
        old=_shown(d, d.old, old),
        new=_shown(d, d.new, new),
        ratio=fmt_ratio(d.ratio),
        ci=fmt_ci(d.ratio_ci),
        q=fmt_p(d.q),
        p=fmt_p(d.p),
        test=test_text,
        significant=d.significant,
        regression=d.regression,
        direction=_direction(d),
        old_values=list(d.old.per_iter),
        new_values=list(d.new.per_iter),
        old_center=d.old.center,
        new_center=d.new.center,
        runs=runs,
        old_probe=_probe_text(d.old.probe_status, d.old.probe_reason),
        new_probe=_probe_text(d.new.probe_status, d.new.probe_reason),
        remarks=remarks,
        footnotes=notes,
        histogram=_histogram(d, old, new),
        sentence=_sentence(d),
        sort_ratio=d.ratio if d.ratio is not None and not missing(d.ratio) else 1e300,
        sort_q=d.q if d.q is not None and not missing(d.q) else 1.0,
        exact=d.test == "exact" or d.q is None or missing(d.q),
    )


def side_name(c: Capture, other: Capture) -> str:
    """The release, and when both sides share it, what tells them apart: the user's label
    or the build's content key (two own builds of one release, other modules)."""
    k, o = c.kernel, other.kernel
    if k.release != o.release or k.identity == o.identity:
        return k.release
    if k.label and k.label != o.label:
        return f"{k.release} [{k.label}]"
    key = (k.build or {}).get("key")
    return f"{k.release} [build {key}]" if key else k.release


def _identity(c: Capture) -> str:
    """``Debian 6.1.192-3, upstream v6.1.192`` (what the release string does not say)."""
    k = c.kernel
    parts = [f"Debian {k.distro_version}"] if k.distro_version else []
    if k.upstream:
        parts.append(f"upstream v{k.upstream}")
    return clean(", ".join(parts))


def _kernel_range(old: Capture, new: Capture) -> str:
    """The range regzbot and the subject name: upstream versions when they tell the sides
    apart, else the releases (distro rebuilds of one upstream version)."""
    a, b = old.kernel.upstream, new.kernel.upstream
    if a and b and a != b:
        return clean(f"v{a}..v{b}")
    return clean(f"{side_name(old, new)}..{side_name(new, old)}")


def _distro_note(old: Capture, new: Capture) -> str:
    distro = [c.kernel for c in (old, new) if c.kernel.distro_version]
    if not distro:
        return ""
    versions = " and ".join(f"v{k.upstream}" for k in distro if k.upstream)
    return clean(
        "These are Debian kernels: before reporting upstream, check that vanilla "
        f"{versions or 'kernels'} from kernel.org behave the same, as the kernel's "
        "reporting-issues guide asks (Documentation/admin-guide/reporting-issues.rst); "
        "otherwise report to Debian (reportbug linux-image-"
        f"{new.kernel.release})."
    )


def _env(old: Capture, new: Capture, result: DiffResult) -> list[EnvRow]:
    def row(label: str, a: Any, b: Any, mono: bool = False, expected: bool = False) -> EnvRow:
        """``expected`` rows (file names, times) differ by nature: never flagged."""
        sa, sb = clean(fmt_value(a) or "—"), clean(fmt_value(b) or "—")
        return EnvRow(label, sa, sb, sa != sb and not expected, mono)

    def runs(c: Capture) -> str:
        its = c.iterations_per_run
        shape = f"{len(c.runs)} of {c.requested_runs} runs"
        shape += f" × {plural(its, 'iteration')}" if its is not None else " (iterations vary)"
        return shape + ("" if c.complete else " — INCOMPLETE")

    def machine(c: Capture) -> str:
        m = c.machine
        accel = f", {m.accel}" if m.accel else ""
        shape = f", {m.cpus} CPUs" if m.cpus else ""
        shape += f", {m.mem_mb} MiB" if m.mem_mb else ""
        return f"{m.backend}{accel}, {m.arch}{shape}"

    def headers(c: Capture) -> str:
        h = c.kernel.headers
        if h is None:
            return "not recorded"
        return f"{h} (another kernel's: none packaged)" if c.kernel.foreign_headers else h

    def taint(c: Capture) -> str:
        t = c.kernel.tainted
        return "not recorded" if t is None else ("not tainted" if t == 0 else f"tainted ({t})")

    def oot(c: Capture) -> str:
        mods = c.kernel.out_of_tree_modules
        return "not recorded" if mods is None else (", ".join(mods) or "none")

    rows = [
        row("kernel release", old.kernel.release, new.kernel.release, True),
        row("/proc/version", old.kernel.version, new.kernel.version, True),
        row("boot cmdline", old.kernel.cmdline, new.kernel.cmdline, True),
        row("kernel config hash", old.kernel.config_hash, new.kernel.config_hash, True),
        row("tracer compiled against", headers(old), headers(new), True),
        row("taint", taint(old), taint(new)),
        row("out-of-tree modules", oot(old), oot(new)),
        row("machine", machine(old), machine(new)),
        row("hostname", old.machine.hostname or "—", new.machine.hostname or "—"),
        row("bcc version", old.bcc_version, new.bcc_version),
        row("tracer fingerprint", old.tracer.fingerprint, new.tracer.fingerprint, True),
        row("workload", old.workload.name, new.workload.name),
        row("workload hash", old.workload.hash, new.workload.hash, True),
        row("runs", runs(old), runs(new)),
        row("capture file", result.old.path, result.new.path, True, expected=True),
        row("captured (UTC)", old.created_utc or "—", new.created_utc or "—", expected=True),
        row("regress version", old.regress_version or "—", new.regress_version or "—"),
    ]
    # Captures from before schema 6 did not record headers, taint or modules: say nothing.
    return [r for r in rows if not (r.old == r.new == "not recorded")]


def _config(old: Capture, new: Capture) -> tuple[list[ConfigRow], str]:
    a, b = old.kernel.config, new.kernel.config
    if a is None or b is None:
        missing = [side for side, c in (("old", a), ("new", b)) if c is None]
        return [], f"Kernel config not recorded on the {' and '.join(missing)} kernel."
    rows = [
        ConfigRow(clean(k), clean(a.get(k, "is not set")), clean(b.get(k, "is not set")))
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    if not rows:
        return [], "The kernel configs are identical."
    return rows, f"{len(rows)} option(s) differ; unchanged options are not listed."


def _probes(old: Capture, new: Capture) -> list[ProbeRow]:
    def index(c: Capture) -> dict[tuple[str, str], str]:
        return {(p.kind, p.name): _probe_text(p.status, p.reason) for p in c.probes}

    io, inew = index(old), index(new)
    rows = []
    for k in sorted(set(io) | set(inew)):
        so, sn = io.get(k, "not requested"), inew.get(k, "not requested")
        if so != "attached" or sn != "attached":
            rows.append(ProbeRow(clean(k[0]), clean(k[1]), so, sn))
    return rows


def _lost(old: Capture, new: Capture) -> list[EnvRow]:
    to, tn = old.lost_totals(), new.lost_totals()
    return [
        EnvRow(clean(k), str(to.get(k, 0)), str(tn.get(k, 0)), to.get(k, 0) != tn.get(k, 0))
        for k in sorted(set(to) | set(tn))
    ]


def _footnotes(result: DiffResult, old: Capture, new: Capture) -> list[Footnote]:
    notes: list[tuple[str, str]] = [(w.code, w.message) for w in result.warnings]
    codes = {w.code for w in result.warnings}
    if "forced" not in codes:  # the differ normally states these as warnings itself
        for what in result.forced:
            notes.append(("forced", f"Comparability check overridden with --force: {what}"))
    for side, c in (("old", old), ("new", new)):
        if not c.complete and f"partial-{side}" not in codes:
            notes.append(
                (
                    f"partial-{side}",
                    f"The {side} capture is partial: {len(c.runs)} of "
                    f"{c.requested_runs} requested runs finished.",
                )
            )
        for n in c.notes:
            notes.append((f"note-{side}", f"{side} capture: {n}"))
    return [Footnote(i + 1, clean(code), clean(msg)) for i, (code, msg) in enumerate(notes)]


def _kernel_args(c: Capture, side: str) -> list[str] | None:
    """The ``regress run`` options that boot this side's kernel again, or None."""
    k = c.kernel
    if k.build:
        args = [f"--{side}-kernel", k.build.get("kernel", ""), f"--{side}-modules"]
        args.append(k.build.get("modules", ""))
        if k.build.get("headers"):
            args += [f"--{side}-headers", k.build["headers"]]
        if k.label and k.label != k.build.get("kernel"):
            args += [f"--{side}-label", k.label]
        return args
    if (k.label or "").startswith("debian:"):
        return [f"--{side}", str(k.label)]
    if k.distro_version and k.release.endswith("-cloud-amd64"):
        return [f"--{side}", f"debian:{k.release}"]
    return None


def _workload_arg(c: Capture) -> tuple[str, bool]:
    """(what ``--workload`` takes, whether it is a built-in with this very spec)."""
    name = c.workload.name
    try:
        builtin = name in builtin_names() and resolve_workload(name).spec_hash() == c.workload.hash
    except RegressError:
        builtin = False
    return (name, True) if builtin else (f"{safe_component(name)}.toml", False)


def _repro(result: DiffResult, old: Capture, new: Capture) -> list[ReproStep]:
    """The commands that re-run this comparison, as argv lists and shell text."""
    name, builtin = _workload_arg(old)
    runs = str(max(len(old.runs), len(new.runs), 1))
    steps: list[tuple[str, list[str]]] = []
    vm = old.machine.backend in ("qemu", "vagrant") and new.machine.backend == old.machine.backend
    shared: list[str] = []  # options both capture and run take
    its = old.iterations_per_run
    if its is not None and its != old.workload.spec.get("iterations"):
        shared += ["--iterations", str(its)]
    explicit: dict[str, list[str]] = {}
    for opt, spec_key in (("functions", "functions"), ("tracepoints", "tracepoints")):
        used = str_list(old.tracer.options.get(opt))
        patterns = str_list(old.workload.spec.get(spec_key))
        if used and not all(any(fnmatch.fnmatchcase(u, p) for p in patterns) for u in used):
            explicit[opt] = used
    if _imported(old, new):
        steps.append(
            (
                "On each kernel, run the same bpftrace program with -f json and save its "
                "output as old.json and new.json",
                [],
            )
        )
        steps.append(("Rank the divergences", ["regress", "diff", "old.json", "new.json"]))
        steps.append(
            (
                "Write this report",
                ["regress", "report", "old.json", "new.json", "-o", "report.html"],
            )
        )
    elif vm and (old_args := _kernel_args(old, "old")) and (new_args := _kernel_args(new, "new")):
        argv = ["regress", "run", *old_args, *new_args, "--workload", name, "--runs", runs]
        argv += shared
        for opt, used in explicit.items():
            argv += [f"--{opt}", ",".join(used)]
        # The VM shape must match for the captures to compare: always spelled out.
        argv += ["--cpus", str(old.machine.cpus), "--mem", str(old.machine.mem_mb)]
        if old.machine.backend == "vagrant":
            argv += ["--backend", "vagrant"]
        steps.append(("Boot both kernels in VMs, capture, diff and report in one go", argv))
    else:
        for side, c in (("old", old), ("new", new)):
            steps.append(
                (
                    f"Boot the {side} kernel ({clean(c.kernel.release)}) and capture",
                    ["regress", "capture", "--workload", name, "--runs", runs, *shared]
                    + [w for opt, used in explicit.items() for u in used for w in (f"--{opt}", u)]
                    + ["-o", side + ".json"],
                )
            )
        steps.append(("Rank the divergences", ["regress", "diff", "old.json", "new.json"]))
        steps.append(
            (
                "Write this report",
                ["regress", "report", "old.json", "new.json", "-o", "report.html"],
            )
        )
    if not builtin and not _imported(old, new):
        builtin_differs = old.workload.name in builtin_names()
        steps.insert(
            0,
            (
                f"Save the workload spec shown in the HTML report (and any files it names) as "
                f"{name}"
                + (
                    f": this regress's built-in {old.workload.name} is a different spec"
                    if builtin_differs
                    else ""
                ),
                [],
            ),
        )
    return [
        ReproStep(t, clean(shlex.join(a)) if a else "", [clean(x) for x in a]) for t, a in steps
    ]


# --------------------------------------------------------------------------- public


@dataclass(frozen=True)
class _Facts:
    """What the prose of a report is composed from, gathered once."""

    workload: str
    ok: str  # old kernel release
    nk: str  # new kernel release
    description: str
    has_liveness: bool
    fo: int  # liveness failures / checks, old and new
    co: int
    fn: int
    cn: int
    live: Divergence | None  # the significant liveness row, if any
    exit: Divergence | None  # the significant exit-status row, if any
    top: RowView | None  # the top significant kernel-side row
    n_sig: int

    @property
    def liveness_worse(self) -> bool:
        return self.live is not None and self.fn > self.fo


def _verdict(result: DiffResult) -> tuple[str, str]:
    if result.regressions:
        return "Regression", "regression"
    if result.significant:
        return "Changed", "changed"
    return "No significant change", "same"


def _headline(f: _Facts, keys_tested: int) -> tuple[str, str]:
    """(headline sentence, mail subject summary)."""
    if f.liveness_worse:
        headline = (
            f"After upgrading from {f.ok} to {f.nk}, {f.workload}'s liveness check fails in "
            f"{f.fn} of {f.cn} iterations (was {f.fo} of {f.co})"
        )
        headline += f"; the top kernel-side change: {f.top.sentence}." if f.top else "."
        return headline, f"liveness check fails in {f.fn}/{f.cn} iterations"
    if f.exit is not None and f.exit.regression:
        headline = f"After upgrading from {f.ok} to {f.nk}, {f.workload}'s {_sentence(f.exit)}"
        headline += f"; the top kernel-side change: {f.top.sentence}." if f.top else "."
        return (
            headline,
            f"command fails in {sum(f.exit.new.raw)}/{sum(f.exit.new.trials or ())} iterations",
        )
    if f.top is not None:
        return (
            f"From {f.ok} to {f.nk}, {f.n_sig} of {keys_tested} traced quantities of "
            f"{f.workload} changed significantly; the largest: {f.top.sentence}.",
            f.top.sentence.split(" (")[0],
        )
    if f.live is not None:
        return (
            f"From {f.ok} to {f.nk}, {f.workload}'s liveness check failure rate changed: "
            f"{f.fn} of {f.cn} iterations (was {f.fo} of {f.co}).",
            f"liveness failures {f.fo}/{f.co} -> {f.fn}/{f.cn}",
        )
    return (
        f"From {f.ok} to {f.nk}, none of the {keys_tested} traced quantities of "
        f"{f.workload} changed beyond noise.",
        "no significant divergence",
    )


def _summary(
    f: _Facts, result: DiffResult, old: Capture, new: Capture, kernel_rows: list[RowView]
) -> str:
    """What ran, what failed, what the kernel does differently: one paragraph."""
    imported = _imported(old, new)
    its_o, its_n = old.iterations_per_run, new.iterations_per_run
    shape = (
        f"{plural(len(old.runs), 'run')} of {plural(its_o or 0, 'iteration')}"
        if its_o == its_n and len(old.runs) == len(new.runs)
        else "repeated runs"
    )
    if imported:
        summary = (
            f"Both sides are bpftrace count maps ({f.workload}), imported as one run of "
            "one iteration each."
        )
    else:
        summary = f"I ran the {f.workload} workload"
        summary += f" ({f.description})" if f.description else ""
        summary += f" {shape} on each kernel under identical BPF tracers."
    if f.co or f.cn:
        summary += (
            f" Its liveness check failed in {f.fn} of {f.cn} iterations on {f.nk} and "
            f"{f.fo} of {f.co} on {f.ok}."
        )
    if kernel_rows:
        where = "In the counts" if imported else "In the workload's process tree"
        summary += f" {where}, " + "; ".join(
            f"{r.sentence} ({'exact' if r.exact else 'q=' + r.q})" for r in kernel_rows[:3]
        )
        summary += "."
    summary += (
        f" {f.n_sig} of {result.keys_tested} measured quantities differ significantly"
        f" at FDR {result.thresholds.alpha:g}."
    )
    return summary


def _impact(f: _Facts) -> str:
    changed = "; the divergences are changes in what the kernel does for it." if f.n_sig else "."
    if f.liveness_worse:
        pct = 100.0 * f.fn / f.cn if f.cn else 0.0
        return (
            f"User-visible impact: the workload's own correctness check fails on {f.nk} "
            f"in {f.fn} of {f.cn} iterations ({pct:.1f}%)."
        )
    if f.exit is not None and f.exit.regression:
        return f"User-visible impact: the workload's command fails on {f.nk}: {_sentence(f.exit)}."
    if f.has_liveness:
        return (
            "No user-visible failure: the workload's liveness check behaves the same on "
            "both kernels" + changed
        )
    return "The workload has no liveness check, so user-visible impact is not measured" + changed


def _programs(old: Capture, new: Capture) -> tuple[list[BpfProgram], list[BpfProgram]]:
    """(workload spec texts, BPF program texts): one of each when both sides agree."""

    def spec(c: Capture) -> str:
        return clean(json.dumps(c.workload.spec, indent=2, sort_keys=True))

    if new.workload.hash != old.workload.hash:
        specs = [
            BpfProgram("old workload spec", spec(old)),
            BpfProgram("new workload spec", spec(new)),
        ]
    else:
        specs = [BpfProgram("workload spec", spec(old))]
    if old.tracer.fingerprint == new.tracer.fingerprint:
        bpf = [
            BpfProgram(
                f"BPF program (fingerprint {clean(old.tracer.fingerprint[:16])}, "
                "identical on both kernels)",
                clean(old.tracer.bpf_text),
            )
        ]
    else:
        bpf = [
            BpfProgram(f"old kernel ({clean(old.kernel.release)})", clean(old.tracer.bpf_text)),
            BpfProgram(f"new kernel ({clean(new.kernel.release)})", clean(new.tracer.bpf_text)),
        ]
    return specs, bpf


# --------------------------------------------------------------------------- public


def _contrasts(result: DiffResult) -> list[ContrastView]:
    out = []
    for c in result.contrasts:
        kernel = result.old.kernel_release if c.side == "old" else result.new.kernel_release
        out.append(
            ContrastView(
                title=clean(
                    f"{c.side} kernel {kernel}: {c.failing} failing vs {c.passing} passing "
                    "iterations"
                ),
                rows=[
                    (clean(r.label), fmt_num(r.failing), fmt_num(r.passing), fmt_p(r.q))
                    for r in c.rows
                ],
                note=""
                if c.rows
                else f"None of the {c.keys_tested} keys that vary between iterations differs "
                "between the failing and the passing ones.",
                method=c.method,
            )
        )
    return out


# Tests the result describes that no row names (they feed "Where it diverges").
NON_ROW_TESTS = frozenset({"return-mix"})


@dataclass
class SuspectView:
    subject: str
    where: str  # "6.1.191" or "Debian 6.1.192-2"
    why: str


def suspects_title(result: DiffResult) -> str:
    """The heading of the suspect changes, with their count; "" when none were looked up."""
    s = result.suspects
    if s is None:
        return ""
    span = (
        f"v{s.old_upstream} ({s.old}) and v{s.new_upstream} ({s.new})"
        if s.old_upstream != s.new_upstream
        else f"{s.old} and {s.new} (both v{s.new_upstream})"
    )
    if s.note and not s.total:
        return clean(f"Changes between {span}: not listed ({s.note}).")
    touching = ", ".join(s.terms[:6]) or "what diverged"
    head = (
        f"Changes between {span} touching {touching}: {len(s.top)} of {s.matched} that "
        f"match, of {s.total:,} listed in the {s.source}"
        if s.matched
        else f"Changes between {span}: none of the {s.total:,} listed in the {s.source} "
        f"touches {touching}"
    )
    return clean(head + (f"; {s.note}" if s.note else "") + ".")


def _suspects(result: DiffResult) -> list[SuspectView]:
    if result.suspects is None:
        return []
    return [
        SuspectView(clean(x.subject), clean(x.stable or f"Debian {x.upload}"), clean(x.why))
        for x in result.suspects.top
    ]


def narrowing_text(result: DiffResult) -> str:
    """One sentence on the narrowing pass, or "" when none ran."""
    n = result.narrowing
    if n is None:
        return ""
    aa = (
        ""
        if n.aa_false_positives is None
        else f"; its own A/A split: {n.aa_false_positives} false positive(s)"
    )
    found = "" if result.culprits else " It found no traced function whose returns differ."
    return (
        f"Narrowing pass: looked under {', '.join(n.syscalls)} ({n.why}); traced "
        f"{n.functions} functions (entries, returns, errno origins) on both kernels, "
        f"{n.discovered} found under them by function_graph; {n.wall_s:.0f} s{aa}; "
        f"captures {n.captures[0]}, {n.captures[1]}.{found}"
    )


def build_view(
    result: DiffResult, old: Capture, new: Capture, *, max_rows: int = 50, more_rows: int = 100
) -> ReportView:
    """Everything both reports show, formatted and decided, from the differ's result."""
    footnotes = _footnotes(result, old, new)
    codes = {f.code: f.number for f in footnotes}
    sig = result.significant
    shown = result.shown  # significant, then certain-small/suggestive/outcome/absent rows
    # the rows not shown are the unchanged ones: only the first more_rows are built
    listed = set(shown)
    rest = list(islice((d for d in result.divergences if d not in listed), more_rows))
    n_rest = len(result.divergences) - len(shown)
    rows = [_row(i + 1, d, result, old, new, codes) for i, d in enumerate(shown[:max_rows])]
    extra = [
        _row(len(rows) + i + 1, d, result, old, new, codes) for i, d in enumerate(rest[:more_rows])
    ]
    hidden = max(0, len(shown) - max_rows) + max(0, n_rest - more_rows)
    kernel_rows = [r for r in rows if r.significant and r.kind not in OUTCOME_KINDS]
    fo, co = old.liveness_totals()
    fn, cn = new.liveness_totals()
    facts = _Facts(
        workload=clean(old.workload.name),
        ok=clean(side_name(old, new)),
        nk=clean(side_name(new, old)),
        description=clean(str(old.workload.spec.get("description", "") or "")),
        has_liveness=bool(old.workload.spec.get("liveness")),
        fo=fo,
        co=co,
        fn=fn,
        cn=cn,
        live=next((d for d in sig if d.cls == "liveness"), None),
        exit=next((d for d in sig if d.cls == "exit-status"), None),
        top=kernel_rows[0] if kernel_rows else None,
        n_sig=len(sig),
    )
    verdict, vclass = _verdict(result)
    headline, subject = _headline(facts, result.keys_tested)
    cfg_rows, cfg_note = _config(old, new)
    spec_text, bpf = _programs(old, new)
    used = {d.test for d in result.divergences}
    aa = ""
    if result.aa_false_positives is not None:
        aa = (
            f"A negative control (A/A: the same kernel on both sides, runs split in two) "
            f"produced {result.aa_false_positives} significant divergence(s) under the same "
            "thresholds: the measured false-positive level of run-to-run noise within one "
            "boot (what moves only between boots -- signal races, boot-state function "
            "counts -- has its own gates)."
        )
    return ReportView(
        title=f"{facts.workload}: {facts.ok} → {facts.nk}",
        workload=facts.workload,
        description=facts.description,
        old_kernel=facts.ok,
        new_kernel=facts.nk,
        old_identity=_identity(old),
        new_identity=_identity(new),
        kernel_range=_kernel_range(old, new),
        distro_note=_distro_note(old, new),
        verdict=verdict,
        verdict_class=vclass,
        headline=headline,
        summary=_summary(facts, result, old, new, kernel_rows),
        impact=_impact(facts),
        subject_summary=subject,
        liveness=(
            f"failed in {fn} of {cn} iterations on {facts.nk} and {fo} of {co} on {facts.ok}"
            if co or cn
            else ""
        ),
        rows=rows,
        more_rows=extra,
        hidden_rows=hidden,
        keys_tested=result.keys_tested,
        n_significant=len(sig),
        n_regressions=len(result.regressions),
        env=_env(old, new, result),
        config_rows=cfg_rows,
        config_note=cfg_note,
        config_open=len(cfg_rows) <= CONFIG_OPEN_MAX,
        spec_text=spec_text,
        probes=_probes(old, new),
        lost=_lost(old, new),
        footnotes=footnotes,
        tests_used=[
            t.description for t in result.tests if t.name in used or t.name in NON_ROW_TESTS
        ]
        + ([result.test_description("none")] if "none" in used else []),
        method_intro=(
            "Both sides are foreign count maps (bpftrace), each imported as one run of one "
            "iteration; regress did not trace them, so only the counts are compared."
            if _imported(old, new)
            else "Both kernels ran the same workload spec under the same generated BPF "
            "program (same tracer fingerprint), counting only the workload's process tree. "
            "Counts are normalised per iteration."
        ),
        thresholds=[
            EnvRow(clean(k), clean(fmt_value(v)), "", False)
            for k, v in sorted(result.thresholds.as_dict().items())
        ],
        fdr=f"{result.thresholds.alpha:g}",
        aa=aa,
        contrasts=_contrasts(result),
        culprits=[
            CulpritView(
                i,
                clean(c.function),
                clean(f"{c.function}() -- {c.basis}"),
                [clean(evidence_text(e)) for e in c.evidence],
                clean(", ".join(c.syscalls)),
                clean(path_text(c.path)) if c.path else "",
            )
            for i, c in enumerate(result.culprits, 1)
        ],
        narrowing=narrowing_text(result),
        suspects_title=suspects_title(result),
        suspects=_suspects(result),
        repro=(repro := _repro(result, old, new)),
        repro_script=repro_script(
            result, old, new, next((r.command for r in reversed(repro) if r.command), "")
        ),
        bpf=bpf,
    )
