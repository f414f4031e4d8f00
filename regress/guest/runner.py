"""Run a workload's iterations under the tracer and write the capture run by run.

Called on the host by ``regress capture`` and inside a guest by the VM agent,
so it is stdlib-only and never prints: progress goes to ``on_event``.

Each iteration's root process is started stopped (``sh -c 'kill -STOP $$;
exec "$@"'``), its pid is added to the tracer's ``tracked`` map, then it is
continued: everything it and its descendants do is counted, from the exec on,
and nothing else is. Setup, teardown and liveness checks run untraced.

The capture is saved atomically after every finished run, so a failure in run
3 still leaves runs 1-2 on disk (with ``complete: false``).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import regress
from regress.errors import EnvironmentProblem, InputError, UsageError, WorkloadRunError
from regress.guest import probes as _probes
from regress.guest import syscalls as _syscalls
from regress.guest.bpfgen import NO_SYSCALL as BPF_NO_SYSCALL
from regress.guest.bpfgen import (
    TracerOptions,
    fingerprint,
    generate,
    read_pid_max,
    return_class,
)
from regress.guest.btf import kernel_void_functions
from regress.guest.environment import (
    ensure_tracefs,
    kernel_info,
    machine_info,
    resolve_kernel_headers,
)
from regress.guest.series import IterationSeries, flat_counts
from regress.guest.tracer import RawCounts, Tracer, bcc_version, import_bcc
from regress.model import names
from regress.model.capture import (
    NO_SYSCALL,
    Capture,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
    interrupted_note,
    origin_sub,
    save_capture,
)
from regress.model.events import Event
from regress.model.workload import WorkloadSpec

STOP_WRAPPER = 'kill -STOP $$; exec "$@"'
# This many timed-out iterations in a row end a run: the machine, not the workload, is
# probably stuck (each costs a full timeout).
MAX_CONSECUTIVE_TIMEOUTS = 3
MAX_RUNS = 10_000


@dataclass(frozen=True)
class TracerPlan:
    """The tracer options for a capture plus what resolution decided about each probe."""

    options: TracerOptions
    statuses: list[ProbeStatus]  # absent/failed-before-load probes
    functions: list[_probes.FunctionTarget]
    kprobe_problem: str | None
    requested_tracepoints: tuple[str, ...]
    requested_functions: tuple[str, ...]


def plan_tracer(
    tracepoints: Sequence[str],
    functions: Sequence[str],
    *,
    tracefs: Path | None,
    function_returns: bool = False,
) -> TracerPlan:
    """Resolve probe patterns on this kernel (``tracefs`` None: take exact names as given)."""
    unexpanded: list[ProbeStatus] = []
    if tracefs is not None:
        available = _probes.available_tracepoints(tracefs)
    else:  # (--ebpf without root) patterns cannot be expanded: recorded, not fatal
        wild = [p for p in tracepoints if any(c in p for c in "*?[")]
        unexpanded = [
            ProbeStatus("tracepoint", p, "absent", "pattern not expanded: tracefs not readable")
            for p in wild
        ]
        tracepoints = [p for p in tracepoints if p not in wild]
        available = list(tracepoints)
    tps, statuses = _probes.resolve_tracepoints(tracepoints, available)
    statuses = unexpanded + statuses
    kprobe_problem = _probes.kprobes_unavailable_reason(tracefs) if tracefs is not None else None
    targets: list[_probes.FunctionTarget] = []
    if functions:
        if kprobe_problem:
            # Cannot even list traceable functions meaningfully: every request failed.
            statuses += [ProbeStatus("function", f, "failed", kprobe_problem) for f in functions]
        else:
            traceable: list[str] = []
            if tracefs is not None:
                traceable = _probes.traceable_functions(tracefs)
                if not traceable:
                    traceable = [s for _, s in _probes.read_kallsyms()]
            else:
                traceable = [f for f in functions if _probes.SYMBOL_RE.match(f)]
            targets, absent = _probes.resolve_functions(functions, traceable)
            statuses += absent
    if function_returns and functions:
        # What was not probed on entry is not probed on return either: same status, own kind.
        statuses += [
            ProbeStatus("funcret", st.name, st.status, st.reason)
            for st in list(statuses)
            if st.kind == "function"
        ]
    options = TracerOptions(
        tracepoints=tuple(tps),
        functions=tuple(t.name for t in targets),
        requested_tracepoints=tuple(tracepoints),
        requested_functions=tuple(functions),
        pid_max=read_pid_max(),
        function_returns=function_returns,
    )
    return TracerPlan(
        options=options,
        statuses=statuses,
        functions=targets,
        kprobe_problem=kprobe_problem,
        requested_tracepoints=tuple(tracepoints),
        requested_functions=tuple(functions),
    )


def tracer_info(plan: TracerPlan) -> TracerInfo:
    text = generate(plan.options)
    return TracerInfo(
        fingerprint=fingerprint(plan.options, text), options=plan.options.to_dict(), bpf_text=text
    )


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def counts_to_run(
    raw: RawCounts, *, index: int, iterations: int, wall_s: float, started: str
) -> Run:
    """Name syscalls and errnos the way captures store them (strings for JSON keys)."""
    syscalls: dict[str, dict[str, int]] = {}
    for (nr, err), n in sorted(raw.syscalls.items()):
        syscalls.setdefault(names.name_of(nr), {})[str(err)] = n
    retvals: dict[str, dict[str, int]] = {}
    for (nr, bucket), n in sorted(raw.retvals.items()):
        retvals.setdefault(names.name_of(nr), {})[str(bucket)] = n
    funcrets: dict[str, dict[str, int]] = {}
    for (fn, cls), n in sorted(raw.funcrets.items()):
        funcrets.setdefault(fn, {})[return_class(cls)] = n
    origins, origin_stacks = origin_tables(raw)
    fn_syscalls: dict[str, dict[str, int]] = {}
    for (fn, nr), n in sorted(raw.fn_syscalls.items()):
        sysname = NO_SYSCALL if nr == BPF_NO_SYSCALL else names.name_of(nr)
        inner = fn_syscalls.setdefault(fn, {})
        inner[sysname] = inner.get(sysname, 0) + n
    return Run(
        index=index,
        iterations=iterations,
        wall_s=round(wall_s, 6),
        started_utc=started,
        syscalls=syscalls,
        retvals=retvals,
        tracepoints=dict(raw.tracepoints),
        functions=dict(sorted(raw.functions.items())),
        funcrets=funcrets,
        origins=origins,
        origin_stacks=origin_stacks,
        fn_syscalls=fn_syscalls,
        lost=dict(raw.lost),
    )


def origin_tables(raw: RawCounts) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Errno origins as a capture stores them, and each origin's most frequent stack."""
    origins: dict[str, dict[str, int]] = {}
    best: dict[str, tuple[int, int]] = {}  # "<syscall>:<sub>" -> (count, stack id)
    for (nr, err, fn, stack), n in sorted(raw.origins.items()):
        sysname, sub = names.name_of(nr), origin_sub(err, fn)
        inner = origins.setdefault(sysname, {})
        inner[sub] = inner.get(sub, 0) + n
        key = f"{sysname}:{sub}"
        if stack >= 0 and n > best.get(key, (0, -1))[0]:
            best[key] = (n, stack)
    stacks = {k: list(raw.stacks.get(stack, ())) for k, (_, stack) in sorted(best.items())}
    return origins, {k: v for k, v in stacks.items() if v}


def _tail(path: Path, limit: int = 200) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for ``proc`` without polling; ``subprocess.TimeoutExpired`` after ``timeout``.

    ``Popen.wait(timeout=...)`` sleeps in growing steps (up to 50 ms) between
    checks, which made a ~9 ms ps-loop iteration take ~49 ms. A pidfd becomes
    readable the moment the process exits.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:  # kernel without pidfd (< 5.3): fall back to polling
        return proc.wait(timeout=timeout)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000))):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _RunContext:
    """One run's working directory and environment."""

    def __init__(self, spec: WorkloadSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.workdir = Path(tempfile.mkdtemp(prefix=f"regress-{index}-"))
        for name, content in spec.files.items():
            (self.workdir / name).write_bytes(content)
        self.out = self.workdir / ".regress-iteration.out"
        self.err = self.workdir / ".regress-iteration.err"
        self.out.touch()

    def env(self, iteration: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.spec.env)
        env["REGRESS_WORKDIR"] = str(self.workdir)
        env["REGRESS_ITERATION"] = str(iteration)
        env["REGRESS_OUT"] = str(self.out)
        return env

    def shell(self, what: str, script: str, iteration: int = 0) -> None:
        """Run an untraced helper command; failure is a WorkloadRunError naming it."""
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", script],
                cwd=self.workdir,
                env=self.env(iteration),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.spec.timeout_s,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise WorkloadRunError(
                f"{self.spec.name}: run {self.index}: {what} timed out after "
                f"{self.spec.timeout_s:g} s"
            ) from None
        if proc.returncode != 0:
            last = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
            raise WorkloadRunError(
                f"{self.spec.name}: run {self.index}: {what} failed with exit code "
                f"{proc.returncode}" + (f": {last[-1][:200]}" if last else "")
            )

    def liveness(self, iteration: int) -> bool | None:
        if self.spec.liveness is None:
            return None
        proc = subprocess.Popen(
            ["/bin/sh", "-c", self.spec.liveness],
            cwd=self.workdir,
            env=self.env(iteration),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return _wait(proc, self.spec.timeout_s) == 0
        except subprocess.TimeoutExpired:
            return False
        finally:
            if proc.returncode is None:
                _killpg(proc.pid)
                proc.wait()

    def iteration(self, tracer: Tracer, iteration: int) -> tuple[int, float, bool]:
        """One traced iteration: start stopped, track, continue, wait.

        Returns (exit code, wall s, timed out). A timed-out iteration's process group is
        killed and reported as an outcome (its exit code is the kill's), not an error:
        a kernel that makes the workload hang is a finding.
        """
        argv = ["/bin/sh", "-c", STOP_WRAPPER, "regress-iteration", *self.spec.argv()]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self.env(iteration),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise WorkloadRunError(
                    f"{self.spec.name}: run {self.index} iteration {iteration}: the stop "
                    f"wrapper exited ({proc.returncode}) before the command started"
                )
            tracer.track(proc.pid)
            start = time.monotonic()
            os.kill(proc.pid, signal.SIGCONT)
            timed_out = False
            try:
                rc = _wait(proc, self.spec.timeout_s)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid)
                rc = proc.wait()
                timed_out = True
            wall = time.monotonic() - start
        finally:
            if proc.returncode is None:
                _killpg(proc.pid)
                proc.wait()
        # Leftovers in the iteration's process group would leak into the next one.
        _killpg(proc.pid)
        return rc, wall, timed_out

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def run_capture(
    spec: WorkloadSpec,
    *,
    runs: int,
    out: Path,
    tracepoints: Sequence[str] | None = None,
    functions: Sequence[str] | None = None,
    kernel_headers: Path | None = None,
    machine: MachineInfo | None = None,
    on_event: Callable[[Event], None] | None = None,
    own_kernel: bool = False,
) -> Capture:
    """Trace ``runs`` runs of ``spec`` on the running kernel; save ``out`` after each run.

    ``tracepoints``/``functions`` None: the spec's defaults. ``own_kernel``: the
    kernel is regress's alone (a guest), see ``Tracer``. Raises
    ``WorkloadRunError`` when setup, an iteration (non-zero exit, timeout) or
    teardown fails; the file then holds the runs finished before it.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"runs: expected an integer from 1 to {MAX_RUNS}")
    emit = on_event or (lambda _e: None)
    if os.geteuid() != 0:
        raise EnvironmentProblem("capturing needs root (BPF, tracefs)", hint="run as root")
    import_bcc()  # fail before any work when bcc is missing
    tracefs = ensure_tracefs()
    headers = resolve_kernel_headers(kernel_headers)
    plan = plan_tracer(
        list(spec.tracepoints if tracepoints is None else tracepoints),
        list(spec.functions if functions is None else functions),
        tracefs=tracefs,
        function_returns=spec.function_returns,
    )
    info = tracer_info(plan)
    notes = [headers.note]
    release = platform.release()
    if headers.name and release not in headers.name:
        notes.append(
            f"tracer compiled against {headers.name}, not {release}'s own headers "
            "(none packaged; it reads no kernel structs, so this changes nothing it counts)"
        )
    stale = _syscalls.cross_check(tracefs)
    if stale:
        notes.append("syscall table lacks names this kernel has: " + ", ".join(stale))
    capture = Capture(
        kernel=kernel_info(headers.name or None),
        machine=machine or machine_info(),
        tracer=info,
        workload=WorkloadInfo(name=spec.name, hash=spec.spec_hash(), spec=spec.to_dict()),
        bcc_version=bcc_version(),
        requested_runs=runs,
        notes=notes,
        regress_version=regress.__version__,
        created_utc=_utc_now(),
    )
    emit(Event("loading", runs=runs, message=headers.note))
    tracer = Tracer(
        plan.options,
        headers=headers,
        functions=plan.functions,
        kprobe_problem=plan.kprobe_problem,
        own_kernel=own_kernel,
        void_returns=(kernel_void_functions() or frozenset())
        if plan.options.function_returns
        else frozenset(),
    )
    try:
        statuses = tracer.load()
        capture.probes = statuses + plan.statuses
        if tracer.attach_note:
            capture.notes.append(tracer.attach_note)
        _save(capture, out)
        emit(Event("loaded", runs=runs, message=f"{len(statuses)} probes attached"))
        for index in range(runs):
            try:
                capture.runs.append(_one_run(spec, tracer, index, runs, emit))
            except KeyboardInterrupt:  # Ctrl-C / SIGTERM: keep what finished, say why
                capture.notes.append(interrupted_note(len(capture.runs), runs))
                _save(capture, out)
                raise
            _save(capture, out)
            emit(Event("saved", run=index, runs=runs, runs_done=index + 1, path=str(out)))
    finally:
        tracer.detach()
    return capture


def _save(capture: Capture, out: Path) -> None:
    try:
        save_capture(capture, out)
    except OSError as exc:
        raise InputError(
            f"{out}: cannot write the capture: {exc.strerror or exc}",
            hint="choose a writable file path with -o",
        ) from None


def _one_run(
    spec: WorkloadSpec,
    tracer: Tracer,
    index: int,
    runs: int,
    emit: Callable[[Event], None],
) -> Run:
    ctx = _RunContext(spec, index)
    its = spec.iterations
    try:
        emit(Event("run_start", run=index, runs=runs, iterations=its))
        if spec.setup:
            ctx.shell("setup", spec.setup)
        started = _utc_now()
        tracer.reset()
        wall = 0.0
        liveness: list[bool | None] = []
        exit_codes: list[int] = []
        timed_out: list[bool] = []
        series = IterationSeries(its)
        try:
            for it in range(its):
                # A non-zero exit or a timeout is what the kernel did to the workload: it
                # is recorded and compared (the differ's exit-status row), not an error.
                rc, w, late = ctx.iteration(tracer, it)
                wall += w
                exit_codes.append(rc)
                timed_out.append(late)
                if len(timed_out) >= MAX_CONSECUTIVE_TIMEOUTS and all(
                    timed_out[-MAX_CONSECUTIVE_TIMEOUTS:]
                ):
                    raise WorkloadRunError(
                        f"{spec.name}: run {index}: {MAX_CONSECUTIVE_TIMEOUTS} iterations in "
                        f"a row timed out after {spec.timeout_s:g} s each; the run is "
                        "abandoned (finished runs are kept)",
                        hint="raise timeout_s in the spec if the workload is just slow",
                    )
                # Read between iterations (nothing tracked runs now); the last read is
                # the run's total.
                raw = tracer.read()
                series.add(it, flat_counts(raw))
                liveness.append(ctx.liveness(it))
                emit(Event("iteration", run=index, runs=runs, iteration=it, iterations=its))
        except BaseException:
            if spec.teardown:  # always tear down; the first failure is the one reported
                try:
                    ctx.shell("teardown", spec.teardown)
                except WorkloadRunError:
                    pass
            raise
        if spec.teardown:
            ctx.shell("teardown", spec.teardown)
        run = counts_to_run(raw, index=index, iterations=its, wall_s=wall, started=started)
        run.liveness = liveness
        run.exit_codes = exit_codes
        run.timed_out = timed_out
        run.per_iteration = series.to_series()
        emit(Event("run_done", run=index, runs=runs, iterations=its))
        return run
    finally:
        ctx.cleanup()
