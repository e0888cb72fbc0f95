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
