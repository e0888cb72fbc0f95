"""Atomic outputs: an interrupted writer leaves the previous file (or directory) intact."""

from __future__ import annotations

import os
import stat

import pytest

from medcore.atomic import atomic_dir, atomic_path, write_json


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise KeyboardInterrupt
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert os.listdir(tmp_path) == ["out.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_dir_replaces_whole_directory_or_nothing(tmp_path):
    target = tmp_path / "adapter"
    with atomic_dir(target) as tmp:
        (tmp / "a.bin").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.bin").write_bytes(b"half")
        raise RuntimeError("disk full")
    assert (target / "a.bin").read_bytes() == b"1"
    with atomic_dir(target) as tmp:
        (tmp / "b.bin").write_bytes(b"2")
    assert sorted(os.listdir(target)) == ["b.bin"]
    assert sorted(os.listdir(tmp_path)) == ["adapter"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root):
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(root.rglob("*"))}


def test_atomic_dir_outputs_get_normal_permissions(tmp_path, umask_022):
    """mkdtemp makes 0700, and writers such as safetensors' save_file make 0600 files: the finished
    directory must be readable by other users like any plain mkdir/open output."""
    target = tmp_path / "adapter"
    with atomic_dir(target) as tmp:
        os.close(os.open(tmp / "adapter_model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600))
        (tmp / "sub").mkdir(mode=0o700)
        os.close(os.open(tmp / "sub" / "w.json", os.O_CREAT | os.O_WRONLY, 0o600))
        os.close(os.open(tmp / "run.sh", os.O_CREAT | os.O_WRONLY, 0o700))
    assert oct(stat.S_IMODE(target.stat().st_mode)) == "0o755"
    assert _modes(target) == {"adapter_model.safetensors": "0o644", "run.sh": "0o755", "sub": "0o755",
                              "sub/w.json": "0o644"}


def test_atomic_path_output_gets_normal_permissions_even_if_the_writer_replaced_it(tmp_path, umask_022):
    target = tmp_path / "weights.bin"
    with atomic_path(target) as tmp:
        private = tmp.with_name("private")
        os.close(os.open(private, os.O_CREAT | os.O_WRONLY, 0o600))
        os.replace(private, tmp)  # what writers that write-then-rename do
    assert oct(stat.S_IMODE(target.stat().st_mode)) == "0o644"


def test_atomic_outputs_respect_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
        write_json(tmp_path / "f.json", {})
    finally:
        os.umask(old)
    assert _modes(tmp_path) == {"d": "0o700", "d/f": "0o600", "f.json": "0o600"}


def test_real_safetensors_writer_in_atomic_dir(tmp_path, umask_022):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    with atomic_dir(tmp_path / "adapter") as tmp:
        save_file({"w": torch.zeros(2)}, tmp / "adapter_model.safetensors")
    assert _modes(tmp_path / "adapter") == {"adapter_model.safetensors": "0o644"}


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temps_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    """A writer killed outright (kill -9) leaves its temporary file; the next write of the same
    target removes it, but not a temporary of a writer that is still running, nor other targets'."""
    dead = _dead_pid()
    names = {
        f".m.gguf.{dead}.abcd_123.tmp": False,  # dead writer: removed
        ".m.gguf.k2j4h5g6.tmp": False,  # written before names carried a pid: removed
        f".m.gguf.{os.getpid()}.zzzzzzzz.tmp": True,  # a live writer (this process): kept
        f".m.gguf.json.{dead}.abcdefgh.tmp": True,  # another target's: kept
        f".m.gguf.{dead}.abcdefgh.tmp.keep": True,  # not a temporary name
        f".other.gguf.{dead}.abcdefgh.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / f".adapter.{dead}.abcdefgh.tmp").mkdir()  # an atomic_dir of a dead writer
    write_json(tmp_path / "m.gguf", {})
    with atomic_dir(tmp_path / "adapter") as tmp:
        (tmp / "a.bin").write_bytes(b"1")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["m.gguf", "adapter"] + [n for n, keep in names.items() if keep])


def test_temp_names_carry_the_writer_pid(tmp_path):
    with atomic_path(tmp_path / "out.bin", suffix=".png") as tmp:
        assert tmp.name.startswith(f".out.bin.{os.getpid()}.") and tmp.name.endswith(".png.tmp")
        tmp.write_bytes(b"1")
    from medcore.atomic import stale_temps

    assert stale_temps(tmp_path / "out.bin") == []
