"""Reports: text golden, 72 columns, escaping of hostile capture strings, no
network resources, bundle integrity, the CLI, and real headless Chromium."""

from __future__ import annotations

import copy
import html.parser
import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import replace
from html import escape as html_escape
from pathlib import Path
from typing import ClassVar

import pytest
from support.sample import sample_captures, sample_result

from regress.cli.main import run
from regress.model.capture import Capture, ProbeStatus
from regress.model.result import DiffResult, DiffWarning
from regress.report import render_html, render_text, write_bundle
from regress.report.html import environment
from regress.report.text import WIDTH

DATA = Path(__file__).resolve().parent / "testdata" / "report"
OLD = DATA / "ps-loop-old.json"
NEW = DATA / "ps-loop-new.json"

HOSTILE = "<script>alert(1)</script>"


def sample() -> tuple[DiffResult, Capture, Capture]:
    old, new = sample_captures()
    return sample_result(old, new), old, new


def hostile() -> tuple[DiffResult, Capture, Capture]:
    """Every string a capture or workload can carry, made an injection attempt."""
    result, old, new = sample()
    old, new, result = copy.deepcopy(old), copy.deepcopy(new), copy.deepcopy(result)
    for side, c in (("old", old), ("new", new)):
        c.workload.name = HOSTILE
        c.workload.spec["description"] = '"><img src=x onerror=alert(2)>'
        c.workload.spec["command"] = "ps </pre><script>alert(3)</script>"
        c.kernel.release = f'6.1-{side}"><img src=x onerror=alert(4)>'
        c.kernel.version = "</td></tr></table><script>alert(5)</script>\x1b[31mRED"
        c.kernel.cmdline = "root=/dev/vda <style>body{display:none}</style>\r\x07"
        assert c.kernel.config is not None
        c.kernel.config["CONFIG_<svg onload=alert(6)>"] = f"<b>{side}</b>"
        c.machine.hostname = "<iframe src=https://evil.example/></iframe>"
        c.bcc_version = "0.26</style><script>alert(7)</script>"
        c.tracer.bpf_text = "</pre></details><script>alert(8)</script>"
        c.probes.append(ProbeStatus("function", "<u>f</u>", "failed", "<a href=//evil>x</a>"))
        c.runs[0].lost["<em>lost</em>"] = 1
        c.notes.append("<marquee>note</marquee>")
    rows = list(result.divergences)
    fn = next(i for i, d in enumerate(rows) if d.kind == "function" and d.significant)
    rows[fn] = replace(
        rows[fn],
        name='<script>alert(9)</script>find_ge_pid<img src="http://evil.example/p.png">',
        notes=("<blink>remark</blink>",),
    )
    result = replace(
        result,
        divergences=tuple(rows),
        warnings=(*result.warnings, DiffWarning("<x>", "url(http://evil.example/w.css) <link>")),
        old=replace(result.old, path="old<script>.json"),
    )
    return result, old, new


# --------------------------------------------------------------------------- text


def test_text_report_matches_golden() -> None:
    result, old, new = sample()
    got = render_text(result, old, new)
    golden = DATA / "ps-loop.txt"
    if not golden.exists() or golden.read_text() != got:
        golden.with_suffix(".txt.got").write_text(got)
    assert golden.exists(), f"no golden file; wrote {golden}.got"
    assert got == golden.read_text(), f"text report changed; see {golden}.got"


def _table_lines(lines: list[str]) -> set[int]:
    """Line numbers of fixed-width tables: a header, a dashes rule, rows up to a blank."""
    out: set[int] = set()
    for i, line in enumerate(lines):
        if i and re.fullmatch(r"  -+( +-+)*", line):
            j = i - 1
            while j < len(lines) and lines[j].strip():
                out.add(j)
                j += 1
    return out


def test_text_report_is_72_columns_and_plain() -> None:
    for result, old, new in (sample(), hostile()):
        text = render_text(result, old, new)
        lines = text.splitlines()
        tables = _table_lines(lines)
        assert tables, "expected at least the divergence table"
        # tables may be wider; the regzbot command must stay on one line to be parsed
        wide = [
            (i, line)
            for i, line in enumerate(lines)
            if len(line) > WIDTH and i not in tables and not line.startswith("#regzbot ")
        ]
        assert not wide, wide
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), "control characters leaked"
    text = render_text(*sample())
    assert not re.search(r"</?[a-z]+[ >]", text), "HTML in the text report"
    assert text.startswith("Subject: [REGRESSION] ps-loop: ")
    assert "#regzbot introduced: v6.1.153..v6.1.158\n" in text  # upstream versions
    assert (
        "Last known good: 6.1.0-47-cloud-amd64\n"
        "                 (Debian 6.1.153-1, upstream v6.1.153)\n"
        "First known bad: 6.1.0-56-cloud-amd64\n"
    ) in text


def test_text_report_without_divergence_is_not_a_regression() -> None:
    result, old, new = sample()
    quiet = replace(result, divergences=tuple(d for d in result.divergences if not d.significant))
    text = render_text(quiet, old, new)
    assert text.startswith("Subject: [NO CHANGE] ps-loop: no significant divergence")
    assert "#regzbot" not in text
    assert "No divergence is significant" in text


# --------------------------------------------------------------------------- html


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "main", "footer", "nav",
    "section", "h1", "h2", "h3", "p", "span", "b", "ul", "ol", "li", "a", "table", "thead",
    "tbody", "tr", "th", "td", "code", "sup", "details", "summary", "div", "pre", "svg",
    "line", "text", "circle", "rect", "script", "path", "tspan",
}  # fmt: skip


def test_hostile_strings_render_inert() -> None:
    result, old, new = hostile()
    page = render_html(result, old, new)
    parser = _Tags()
    parser.feed(page)
    names = {t for t, _ in parser.tags}
    assert names <= ALLOWED_TAGS, names - ALLOWED_TAGS
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src"):
                assert value is not None and value.startswith("#"), (tag, name, value)
    own_script = environment().loader.get_source(environment(), "sort.js")[0]  # type: ignore[union-attr]
    assert [s.strip() for s in parser.scripts] == [own_script.strip()]
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "alert(" not in own_script
    for marker in ("<img", "<iframe", "<svg onload", "<style>body", "<marquee", "<link"):
        assert marker not in page, marker


class _Resources(html.parser.HTMLParser):
    """Every place HTML can name a resource: attributes, <style> text, style attributes."""

    URL_ATTRS: ClassVar[set[str]] = {
        "src",
        "href",
        "srcset",
        "action",
        "formaction",
        "poster",
        "data",
        "xlink:href",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in self.URL_ATTRS:
                self.urls.append(value or "")
            if name == "style":
                self.styles.append(value or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_html_loads_nothing_from_the_network() -> None:
    result, old, new = sample()
    page = render_html(result, old, new)
    assert "http://" not in page and "https://" not in page  # not even an svg xmlns
    for result, old, new in (sample(), hostile()):
        found = _Resources()
        found.feed(render_html(result, old, new))
        assert found.urls and all(u.startswith("#") for u in found.urls), found.urls
        css = "\n".join(found.styles)
        assert css and "url(" not in css and "@import" not in css


def test_html_shows_the_story() -> None:
    result, old, new = sample()
    page = render_html(result, old, new)
    assert page == render_html(result, old, new), "rendering must be deterministic"
    for text in (
        "liveness check fails in 37 of 200 iterations (was 0 of 200)",
        "find_ge_pid() calls",
        "find_ge_pid() calls fell from 4.00 to 2.60 per iteration",
        "exact",
        "CONFIG_RANDOMIZE_KSTACK_OFFSET_DEFAULT",
        "not in available_filter_functions",
        "sys_exits_full",
        "regress run --old debian:6.1.0-47-cloud-amd64 --new debian:6.1.0-56-cloud-amd64",
        "log2 return-value histograms of getdents64",
        "produced 0 significant divergence(s)",
        "TRACEPOINT_PROBE(raw_syscalls, sys_exit)",
    ):
        assert text in page, text
    # the unchanged config options are not listed
    assert "CONFIG_PID_NS" not in page
    # the absent side is shown as absent, never as a count of 0
    row = page[page.index('key">function:pid_nr_ns') :][:800]
    assert 'data-label="old">absent<' in row


# --------------------------------------------------------------------------- bundle


def test_bundle_manifest_hashes_every_member(tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    log = tmp_path / "old-boot0.console.log"
    log.write_text("[    0.000000] Linux version ...\n")
    manifest = write_bundle(
        out,
        old_path=OLD,
        new_path=NEW,
        html="<p>h</p>",
        text="t\n",
        meta={"workload": "w"},
        repro="#!/bin/sh\necho hi\n",
        logs=[log],
        top="regress-w-a..b",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz", log.name], "temp left"
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert all(n.startswith("regress-w-a..b/") for n in names), names  # one top folder
        assert names[0] == "regress-w-a..b/manifest.json"
        inner = json.loads(tar.extractfile(names[0]).read())  # type: ignore[union-attr]
        assert inner == manifest
        files = {f["name"]: f for f in inner["files"]}
        assert set(files) == {
            "old-capture.json",
            "new-capture.json",
            "report.html",
            "report.txt",
            "repro.sh",
            f"logs/{log.name}",
        }
        assert tar.getmember("regress-w-a..b/repro.sh").mode == 0o755
        tar.extractall(tmp_path / "x", filter="data")
    # checkable with the standard tool, from inside the folder
    folder = tmp_path / "x" / "regress-w-a..b"
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.count(": OK") == 6, check.stdout
    (folder / "report.txt").write_text("altered\n")
    bad = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "report.txt: FAILED" in bad.stdout
    again = tmp_path / "c.tar.gz"
    write_bundle(again, old_path=OLD, new_path=NEW, html="<p>h</p>", text="t\n",
                 meta={"workload": "w"}, repro="#!/bin/sh\necho hi\n", logs=[log],
                 top="regress-w-a..b")  # fmt: skip
    assert again.read_bytes() == out.read_bytes(), "bundles must be reproducible"


@pytest.mark.root
def test_repro_sh_from_a_bundle_counts_on_this_host(tmp_path: Path) -> None:
    """The bundle's repro.sh runs without regress on this host's kernel and prints the top
    divergences' counts (the planted statx ENOENT of the bisect captures)."""
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace not installed (scripts/setup.sh installs it)")
    data = Path(__file__).parent / "testdata" / "bisect"
    old, new = data / "6.1.0-51-cloud-amd64.json.gz", data / "6.1.0-52-cloud-amd64.json.gz"
    out = tmp_path / "bug.tar.gz"
    assert run(["bundle", str(old), str(new), "-o", str(out)]) == 0
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path, filter="data")
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert folder.name.startswith("regress-bisect-plant-6.1.0-51")
    proc = subprocess.run(
        ["sh", str(folder / "repro.sh")], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if "syscall:statx:ENOENT" in x)
    here = float(line.split(":")[-1].split()[0])
    assert here > 0, proc.stdout  # this host takes the "new" branch of the planted workload
    assert "outcomes:" in proc.stdout and "exit 0" in proc.stdout


# --------------------------------------------------------------------------- CLI


def test_cli_report_html_text_and_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r" / "report.html"
    assert run(["report", str(OLD), str(NEW), "-o", str(out)]) == 2  # no such directory
    assert "directory" in capsys.readouterr().err and not out.parent.exists()
    out.parent.mkdir()
    assert run(["report", str(OLD), str(NEW), "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert "liveness check fails in 37 of 200" in page
    capsys.readouterr()
    assert run(["report", str(OLD), str(NEW), "--text", "-"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Subject: [REGRESSION] ps-loop: liveness check fails in 37/200")
    bundle = tmp_path / "b.tar.gz"
    assert run(["bundle", str(OLD), str(NEW), "-o", str(bundle)]) == 0
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    top = "regress-ps-loop-6.1.0-47-cloud-amd64..6.1.0-56-cloud-amd64"
    assert {f"{top}/report.html", f"{top}/repro.sh", f"{top}/SHA256SUMS"} <= set(names)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", str(OLD), str(NEW)], "pass -o FILE.html"),
        (["report", str(OLD), "/nonexistent.json", "--text", "-"], "/nonexistent.json"),
        (["report", str(OLD), str(NEW), "--text", "-", "--html", "-"], "only one output"),
        (["report", str(OLD), str(NEW), "-o", "x.html", "--html", "y.html"], "both ask for"),
        (["report", str(OLD), str(NEW), "--html", "x.r", "--text", "x.r"], "asked for both"),
        (["bundle", str(OLD), str(NEW), "-o", "x.zip"], "must end in .tar.gz"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


# --------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from support.chromium import DESKTOP, PHONE, render_page

    result, old, new = sample()
    page = tmp_path / "report.html"
    page.write_text(render_html(result, old, new))
    ranks = "[...document.querySelectorAll('#divtable tbody.row')].map(b => b.dataset.rank)"
    sort_by_ratio = (
        "document.querySelector('#divtable th[data-sort=ratio]').click();" + ranks + ".join()"
    )
    seen = render_page(page, {"desktop": DESKTOP, "phone": PHONE}, tmp_path, evaluate=sort_by_ratio)
    # the optional sort script works: ratio ascending, the liveness row (no count ratio)
    # after the counts, the absent row (no ratio at all) last
    assert seen.evaluated == "2,3,4,1,5", seen.evaluated
    assert seen.console_errors == []
    assert seen.external_requests == [] and seen.failed_requests == []
    assert "liveness check failed" in seen.text  # the top divergence row
    # "Where it diverges" leads, naming the culprit; the contrast names its return class
    html = page.read_text()
    assert html.index('id="where"') < html.index('id="divergences"')
    assert "find_ge_pid() -- what it returns differs when the workload fails" in seen.text
    # the failing/passing contrast names the culprit's return class
    assert "Failing vs passing iterations" in seen.text
    assert "find_ge_pid() returned NULL/0" in seen.text
    assert "find_ge_pid() calls" in seen.text
    for shot in seen.screenshots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert "NEW RAW" not in seen.text.upper(), "per-run tables start collapsed on screen"
    printed = render_page(page, {"print": (800, 1100, 1.0, False)}, tmp_path, media="print")
    assert printed.console_errors == []
    assert "NEW RAW" in printed.text.upper(), "printing must expand the per-run values"

    # the same harness does see a broken page: a script error and an external fetch
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><p>x</p><img src="http://198.51.100.1/x.png">'
        "<script>undefinedFunction();</script>"
    )
    seen = render_page(bad, {"desktop": DESKTOP}, tmp_path)
    assert any("undefinedFunction" in e for e in seen.console_errors), seen.console_errors
    assert seen.external_requests == ["http://198.51.100.1/x.png"]


@pytest.mark.browser
def test_first_screen_leads_with_the_verdict_and_the_overview(tmp_path: Path) -> None:
    """At 1400x900 the verdict, the headline naming the top divergence and the overview
    chart are on the first screen; at 390 px (a phone) nothing scrolls sideways."""
    from support.chromium import render_page

    result, old, new = sample()
    page = tmp_path / "report.html"
    page.write_text(render_html(result, old, new))
    layout = (
        "JSON.stringify({verdict: document.querySelector('.verdict').getBoundingClientRect()"
        ".bottom, headline: document.querySelector('#headline').getBoundingClientRect().bottom,"
        " overview: document.querySelector('svg.overview').getBoundingClientRect().bottom,"
        " wide: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    shots = {"phone": (390, 844, 2.0, True), "desk1400": (1400, 900, 1.0, False)}
    seen = render_page(page, shots, tmp_path, full_page=False, evaluate=layout)
    assert seen.console_errors == [] and seen.external_requests == []
    at = json.loads(str(seen.evaluated))
    assert at["verdict"] < at["headline"] < at["overview"] <= 900, at
    assert at["wide"] <= at["view"], at
    assert "find_ge_pid" in page.read_text().split('id="overview"', 1)[1].split("</svg>", 1)[0]
    phone = render_page(
        page, {"phone": (390, 844, 2.0, True)}, tmp_path, evaluate=layout.replace("JSON", "JSON")
    )
    assert json.loads(str(phone.evaluated))["wide"] <= 390, phone.evaluated
    for shot in seen.screenshots + phone.screenshots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_size_follows_what_changed() -> None:
    """Unchanged rows keep their numbers but no charts: a no-change report stays small."""
    from regress.diff.differ import diff_captures

    old, _new = sample_captures()
    same = diff_captures(old, old)
    page = render_html(same, old, old)
    assert page.count("<svg") <= 2, page.count("<svg")  # (no overview when nothing moved)
    assert len(page) < 200_000, len(page)


def test_cli_diff_writes_reports_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html_out, text_out = tmp_path / "d.html", tmp_path / "d.txt"
    argv = ["diff", str(OLD), str(NEW), "--html", str(html_out), "--text", str(text_out)]
    assert run([*argv, "--fail-on", "none"]) == 0
    assert "liveness" in capsys.readouterr().out  # the usual table still goes to stdout
    assert "find_ge_pid()" in html_out.read_text()
    assert text_out.read_text().startswith("Subject: [REGRESSION] ps-loop:")
    assert html_out.stat().st_mode & 0o044, "reports are for sharing, not 0600 temp files"


def test_reproduction_commands_follow_the_captures() -> None:
    from regress.report.view import build_view

    result, old, new = sample()
    steps = build_view(result, old, new).repro
    # the fixture's ps-loop spec is older than today's built-in: the spec file is named
    assert "built-in ps-loop is a different spec" in steps[0].title and not steps[0].command
    assert [s.command for s in steps[1:]] == [
        "regress run --old debian:6.1.0-47-cloud-amd64 --new debian:6.1.0-56-cloud-amd64 "
        "--workload ps-loop.toml --runs 5 --cpus 2 --mem 2048"
    ]
    old, new = copy.deepcopy(old), copy.deepcopy(new)
    for c in (old, new):
        c.machine.backend, c.machine.accel = "host", None
        c.workload.spec["iterations"] = 50  # captured with --iterations 40
        c.tracer.options["functions"] = ["find_ge_pid", "my_probe"]  # not in the spec
        c.kernel.config = None
    view = build_view(result, old, new)
    commands = [s.command for s in view.repro]
    assert commands[1] == (
        "regress capture --workload ps-loop.toml --runs 5 --iterations 40 "
        "--functions find_ge_pid --functions my_probe -o old.json"
    )
    assert commands[3:] == [
        "regress diff old.json new.json",
        "regress report old.json new.json -o report.html",
    ]
    assert view.config_note == "Kernel config not recorded on the old and new kernel."


DIFF_DATA = Path(__file__).resolve().parent / "testdata" / "diff"
DIFFER_PAIRS = [(p, p.with_name(p.name.replace(".old.", ".new."))) for p in
                sorted(DIFF_DATA.glob("*.old.json"))]  # fmt: skip
if (DIFF_DATA / "bt_ps_aux.json").exists():
    DIFFER_PAIRS.append((DIFF_DATA / "bt_ps_aux.json", DIFF_DATA / "bt_ps_e.json"))


@pytest.mark.parametrize(("old_path", "new_path"), DIFFER_PAIRS, ids=lambda p: p.name)
def test_reports_render_every_differ_fixture(old_path: Path, new_path: Path) -> None:
    """The real differ on its own fixtures (every statistical path, bpftrace imports)."""
    from regress.diff.differ import diff_captures, load_side

    old, new = load_side(old_path), load_side(new_path)
    result = diff_captures(old, new, force=True, old_path=old_path.name, new_path=new_path.name)
    page = render_html(result, old, new)
    found = _Resources()
    found.feed(page)
    assert all(u.startswith("#") for u in found.urls)
    lines = render_text(result, old, new).splitlines()
    tables = _table_lines(lines)
    assert not [
        line
        for i, line in enumerate(lines)
        if len(line) > WIDTH and i not in tables and not line.startswith("#regzbot ")
    ]
    if result.significant:
        top = result.significant[0]
        assert f'key">{html_escape(top.key)}</code>' in page


def test_text_report_without_divergence_blames_no_kernel() -> None:
    """A clean comparison must not name a 'first bad' kernel or a regzbot range."""
    from regress.diff.differ import diff_captures

    old, _new = sample_captures()
    result = diff_captures(old, old, old_path="old.json", new_path="old-again.json")
    assert not result.significant
    text = render_text(result, old, old)
    assert text.startswith("Subject: [NO CHANGE] ")
    assert "First known bad" not in text and "#regzbot" not in text
    assert (
        "Old kernel: 6.1.0-47-cloud-amd64\n            (Debian 6.1.153-1, upstream v6.1.153)\n"
        "New kernel: 6.1.0-47-cloud-amd64\n" in text
    )
    assert "vanilla" not in text  # nothing to report, nothing to check upstream
    assert "the divergences are" not in text
    tables = _table_lines(text.splitlines())
    wide = [ln for i, ln in enumerate(text.splitlines()) if len(ln) > WIDTH and i not in tables]
    assert not wide, wide


def test_two_own_builds_of_one_release_are_two_sides_with_exact_reproduction() -> None:
    """Same release string, other modules: named apart everywhere, not an A/A, and the
    Reproduce block re-runs exactly this comparison (every path option, the labels)."""
    from regress.diff.differ import diff_captures

    old, new = sample_captures()

    def own(c: Capture, key: str, label: str) -> Capture:
        build = {
            "kernel": "/src/linux/arch/x86/boot/bzImage",
            "modules": f"/src/{label}/lib/modules/6.9.0-test",
            "headers": "/src/linux",
            "key": key,
        }
        k = replace(c.kernel, release="6.9.0-test", version="#1 SMP", label=label, build=build)
        return replace(c, kernel=k)

    a, b = own(old, "aaaa", "baseline"), own(new, "bbbb", "patched")
    result = diff_captures(a, b, old_path="old.json", new_path="new.json")
    assert "same-kernel" not in {w.code for w in result.warnings}
    text = render_text(result, a, b)
    assert "6.9.0-test [baseline]..6.9.0-test [patched]" in text.replace("\n ", " ")
    flat = " ".join(text.replace(" \\\n", " ").split())
    for fragment in (
        "--old-kernel /src/linux/arch/x86/boot/bzImage",
        "--old-modules /src/baseline/lib/modules/6.9.0-test",
        "--old-headers /src/linux",
        "--old-label baseline",
        "--new-modules /src/patched/lib/modules/6.9.0-test",
        "--new-label patched",
    ):
        assert fragment in flat, fragment
    page = render_html(result, a, b)
    assert "6.9.0-test [baseline]" in page and "6.9.0-test [patched]" in page
    # the same build on both sides is an A/A, said so
    same = diff_captures(a, own(new, "aaaa", "baseline"))
    assert "same-kernel" in {w.code for w in same.warnings}


def test_a_workload_spec_of_the_wrong_types_still_renders() -> None:
    """The capture's workload spec is free-form: fields of the wrong type (found by the
    long fuzz profile: ``files`` a number made the reproducer raise TypeError) are read as
    none, and the report and its repro.sh still render."""
    result, old, new = sample()
    old = copy.deepcopy(old)
    old.workload.spec.update(
        {"files": 1.5, "command": 3, "setup": {"x": 1}, "liveness": ["pgrep", "-x", "init"]}
    )
    page = render_html(result, old, new)
    assert "the workload names files" not in page
    assert "pgrep -x init" in page  # a list is one command line, as the runner runs it
    old.workload.spec.update({"files": ["a.conf", 7], "iterations": "many"})
    assert "names files (7, a.conf)" in render_html(result, old, new)
