"""BPF text generation: golden files, validation, fingerprints.

On a mismatch the new text is written to ``testdata/bpfgen/NAME.c.got``: review
it, and if it is right, move it over ``NAME.c``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from regress.errors import UsageError
from regress.guest.bpfgen import (
    TracerOptions,
    fingerprint,
    generate,
    read_pid_max,
    split_okcount,
)
from regress.model.names import bucket_range

GOLDEN = Path(__file__).resolve().parent / "testdata" / "bpfgen"

CASES: dict[str, TracerOptions] = {
    "default": TracerOptions(),
    "syscalls_only": TracerOptions(retvals=False),
    "ps_loop": TracerOptions(
        tracepoints=(
            "sched:sched_process_fork",
            "sched:sched_process_exec",
            "sched:sched_process_exit",
            "signal:signal_generate",
            "signal:signal_deliver",
        )
    ),
    "functions": TracerOptions(
        tracepoints=("block:block_rq_issue",), functions=("vfs_read", "do_sys_openat2")
    ),
    "function_returns": TracerOptions(
        functions=("find_ge_pid", "next_tgid"), function_returns=True
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = generate(CASES[name])
    golden = GOLDEN / f"{name}.c"
    got = GOLDEN / f"{name}.c.got"
    expected = golden.read_text() if golden.exists() else None
    if text != expected:
        got.write_text(text)
        pytest.fail(f"{golden.name} differs from the generated text; see {got}")
    got.unlink(missing_ok=True)


def test_no_struct_reads_and_no_includes() -> None:
    for options in CASES.values():
        text = generate(options)
        assert "#include" not in text
        # only tracepoint arguments, and ``st`` -- a pointer into regress's own
        # ``thread_state`` map value (errno origins), never a kernel struct
        assert "->" not in text.replace("args->", "").replace("st->", "")
        assert "struct thread_state *st = thread_state.lookup(&tid);" in text or (
            "st->" not in text
        )
        assert "bpf_probe_read" not in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tracepoints": ("sched:sched_switch\n}int x;{",)},
        {"tracepoints": ("sched:*",)},  # patterns must be resolved first
        {"tracepoints": ("Sched:x",)},
        {"tracepoints": ("a:b", "a:b")},
        {"functions": ("vfs_read; evil",)},
        {"functions": ("foo.isra.0",)},  # normalised names only
        {"max_counts": 1},
        {"pid_max": True},
        {"pid_max": 300},
        {"pid_max": (1 << 22) + 1},
        {"syscalls": 1},
        {"syscalls": False, "retvals": True},
        {"tracepoints": ["a:b"]},
        {"requested_tracepoints": ("sched",)},
        {"requested_functions": ("a b",)},
    ],
)
def test_validation_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        TracerOptions(**kwargs)  # type: ignore[arg-type]


def test_fork_and_exit_counted_inside_tracking_handlers() -> None:
    o = CASES["ps_loop"]
    text = generate(o)
    assert o.tracepoint_function("sched:sched_process_fork") is None
    assert o.tracepoint_function("signal:signal_generate") == "tp_3"
    assert "int tp_0(" not in text and "int tp_2(" not in text
    assert "int tp_1(" in text and "int tp_4(" in text


def test_function_text_does_not_depend_on_function_list() -> None:
    a = generate(TracerOptions(functions=("vfs_read",)))
    b = generate(TracerOptions(functions=("vfs_write", "find_ge_pid")))
    assert a.replace("functions=1", "functions=2") == b


def fp(o: TracerOptions) -> str:
    return fingerprint(o, generate(o))


def test_fingerprint_identifies_the_instrument_not_the_kernel() -> None:
    assert fp(CASES["default"]) == fp(TracerOptions()) and len(fp(TracerOptions())) == 64
    req: dict[str, Any] = {
        "requested_tracepoints": ("sched:*",),
        "requested_functions": ("proc_pid_*",),
    }
    # Same requests resolved differently on two kernels: same instrument.
    old = TracerOptions(tracepoints=("sched:sched_switch",), functions=("proc_pid_stat",), **req)
    new = TracerOptions(
        tracepoints=("sched:sched_switch", "sched:sched_new_event"), functions=(), **req
    )
    assert generate(old) != generate(new)
    assert fp(old) == fp(new)
    # Different requests, flags or map sizes: a different instrument.
    assert fp(old) != fp(TracerOptions(requested_tracepoints=("sched:*",)))
    assert fp(old) != fp(TracerOptions(retvals=False, **req))
    assert fp(old) != fp(TracerOptions(max_counts=1024, **req))
    assert fp(TracerOptions()) != fp(CASES["ps_loop"])
    with pytest.raises(UsageError, match="does not match"):
        fingerprint(old, generate(old) + "// edited\n")
    # pid_max sizes the tracked array for this machine: a different text, the same instrument.
    big = replace(old, pid_max=4194304)
    assert "BPF_ARRAY(tracked, u32, 4194304);" in generate(big)
    assert fp(big) == fp(old) and "pid_max" not in big.instrument()


def test_read_pid_max(tmp_path: Path) -> None:
    f = tmp_path / "pid_max"
    f.write_text("4194304\n")
    assert read_pid_max(str(f)) == 4194304
    f.write_text("garbage")
    assert read_pid_max(str(f)) == 32768
    assert read_pid_max(str(tmp_path / "none")) == 32768
    assert 301 <= read_pid_max() <= 1 << 22


def test_dense_counter_layout() -> None:
    o = TracerOptions()
    assert split_okcount(o, 3 * 65 + 12) == (3, 12)
    assert split_okcount(TracerOptions(retvals=False), 62) == (62, 0)


def test_bucket_range() -> None:
    assert bucket_range(0) == (0, 0)
    assert bucket_range(1) == (1, 1)
    assert bucket_range(2) == (2, 3)
    assert bucket_range(13) == (4096, 8191)
