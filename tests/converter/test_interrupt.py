"""A killed export leaves no orphan and no stale temporary file behind (issue 10).

``kill -9`` on ``tsx-convert gguf`` used to leave llama.cpp's ``convert_hf_to_gguf.py`` running as an
orphan that went on writing a ``.m.gguf.*.tmp``, and a rerun did not remove it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medcore.childproc import pid_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; prctl is Linux-only")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _children(pid: int) -> list[int]:
    """Live descendants of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return [p for p in found if pid_alive(p)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _parent_script(tmp_path: Path, child_code: str) -> subprocess.Popen:
    """A parent that runs ``child_code`` through ``medcore.childproc.run`` (SIGTERM unwinds it, as in the CLIs)."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import signal, sys
        from medcore import childproc
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        childproc.run([sys.executable, "-c", {child_code!r}])
    """))
    return subprocess.Popen([sys.executable, str(script)], env=ENV)


def test_child_dies_when_its_parent_is_sigkilled(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = _parent_script(tmp_path, f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                                      "time.sleep(120)")
    child = int(_wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, "the child to start"))
    assert pid_alive(child)
    parent.kill()  # SIGKILL: the parent runs no code at all
    parent.wait()
    _wait_until(lambda: not pid_alive(child), 10, "the child to die with its parent")


def test_sigterm_on_the_parent_kills_the_whole_group(tmp_path):
    pids = tmp_path / "pids"
    parent = _parent_script(tmp_path, textwrap.dedent(f"""
        import os, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{grandchild.pid}}")
        time.sleep(120)
    """))
    child, grandchild = map(int, _wait_until(lambda: pids.exists() and pids.read_text().split(), 60,
                                             "the child and grandchild to start"))
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 143
    _wait_until(lambda: not pid_alive(child) and not pid_alive(grandchild), 10, "the process group to die")


def test_sigkilled_export_leaves_no_orphan_and_a_rerun_no_stale_temp(qwen2_merged, tmp_path):
    pytest.importorskip("llama_cpp")
    out_dir = tmp_path / "DIR"
    cmd = [sys.executable, "-m", "converter.cli", "gguf", str(qwen2_merged), "--out", str(out_dir / "m.gguf"),
           "--type", "f16", "--no-verify"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        converter = _wait_until(
            lambda: [p for p in _children(proc.pid) if "convert_hf_to_gguf" in _cmdline(p)], 180,
            "llama.cpp's convert_hf_to_gguf.py to start")
        assert any(out_dir.glob(".m.gguf.*.tmp")), "the export's temporary file is not there"
        proc.kill()  # kill -9 mid-conversion
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    # The converter was caught while still starting up (importing torch takes seconds), so one that
    # is gone within a second was killed, not finished; a survivor would go on to fill the file.
    survivors = converter
    deadline = time.monotonic() + 1.0
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = [p for p in survivors if pid_alive(p)]
    sizes = {p.name: p.stat().st_size for p in out_dir.iterdir()}
    time.sleep(0 if survivors else 3.0)
    for pid in survivors:  # do not leave it running whatever happens
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"convert_hf_to_gguf.py ({survivors}) outlived its killed parent"
    assert {p.name: p.stat().st_size for p in out_dir.iterdir()} == sizes  # nobody writes any more
    assert any(name.endswith(".tmp") for name in sizes), sizes  # what the kill left behind

    rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(p.name for p in out_dir.iterdir()) == ["m.gguf", "m.gguf.json"]
    assert "left by an interrupted write" in rerun.stderr
