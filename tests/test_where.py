""" "Where it diverges" with errno origins (capture schema 5): the regressed errno's birth
place outranks a function whose return mix merely changed, and carries its syscall and
call path. Real differ, generated captures."""

from __future__ import annotations

import dataclasses

from regress.diff.differ import diff_captures
from regress.model.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    Run,
    TracerInfo,
    WorkloadInfo,
)

IT = 10
PATH = ["security_file_open", "do_dentry_open", "path_openat", "do_filp_open"]


def _cap(release: str, *, fault: bool) -> Capture:
    runs = []
    for i in range(4):
        denied = 2 * IT if fault else 0
        runs.append(
            Run(
                index=i,
                iterations=IT,
                wall_s=1.0,
                started_utc="",
                syscalls={"openat": {"0": 70 * IT - denied, **({"13": denied} if fault else {})}},
                functions={"bpf_lsm_file_open": 70 * IT, "pid_revalidate": 30 * IT},
                funcrets={
                    "bpf_lsm_file_open": {
                        "0": 70 * IT - denied,
                        **({"-13": denied} if fault else {}),
                    },
                    # a downstream function: fewer successful lookups, its mix changes too
                    "pid_revalidate": {
                        "0": (10 if fault else 5) * IT,
                        "other": (20 if fault else 25) * IT,
                    },
                },
                origins={"openat": {"13@bpf_lsm_file_open": denied}} if fault else {},
                origin_stacks={"openat:13@bpf_lsm_file_open": PATH} if fault else {},
                fn_syscalls={
                    "bpf_lsm_file_open": {"openat": 70 * IT},
                    "pid_revalidate": {"openat": 30 * IT},
                },
            )
        )
    return Capture(
        kernel=KernelInfo(release=release, version=release, cmdline=""),
        machine=MachineInfo(backend="host", arch="x86_64", cpus=2, mem_mb=1024),
        tracer=TracerInfo(fingerprint="f", options={}, bpf_text=""),
        workload=WorkloadInfo(name="w", hash="h", spec={}),
        bcc_version="1",
        requested_runs=4,
        runs=runs,
    )


def test_the_regressed_errnos_origin_leads_with_its_syscall_and_path() -> None:
    res = diff_captures(_cap("a", fault=False), _cap("b", fault=True))
    names = [c.function for c in res.culprits]
    assert names[0] == "bpf_lsm_file_open", res.culprits
    first = res.culprits[0]
    assert first.basis == "the regressed errno is born in it"
    assert first.syscalls == ("openat",) and list(first.path) == PATH
    labels = [e.label for e in first.evidence]
    assert "openat EACCES born in bpf_lsm_file_open()" in labels
    rows = {d.key: d for d in res.divergences}
    assert rows["origin:openat:EACCES@bpf_lsm_file_open"].cls == "appeared"
    # the downstream function is listed, below, on its return mix
    assert "pid_revalidate" in names[1:]


def test_an_errno_born_untraced_names_no_function() -> None:
    old, new = _cap("a", fault=False), _cap("b", fault=True)
    runs = [
        dataclasses.replace(r, origins={"openat": {"13@?": 2 * IT}}, origin_stacks={})
        for r in new.runs
    ]
    res = diff_captures(old, dataclasses.replace(new, runs=runs))
    rows = {d.key: d for d in res.divergences}
    assert rows["origin:openat:EACCES@?"].label == "openat EACCES born outside the traced functions"
    assert all(
        not e.label.startswith("openat EACCES born") for c in res.culprits for e in c.evidence
    )
