"""Atomic file output: a reader sees the old file or the new one, never half of either.

Writers go to a temporary sibling and ``os.replace`` it into place, so an interrupted job
(Ctrl-C, kill, full disk) leaves the previous output intact and no partial file behind.

A job killed outright (``kill -9``, power loss) cannot remove its temporary sibling. Temporary
names carry the writing process's id, ``.<target name>.<pid>.<random>[suffix].tmp``, so the next
write of the same target removes the ones whose writer is gone and leaves those of a writer that
is still running (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere: set and restore (briefly process-wide; other threads may create files meanwhile).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(path: Path, mask: int) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would: 0666/0777 less the umask.

    Temporary files and directories (``mkstemp``, ``mkdtemp``) are created 0600/0700, and some
    writers do the same for their own output (safetensors' ``save_file`` writes 0600 files), so a
    finished output would be unreadable to other users (a packaging build, a service account).
    Executable files keep their execute bits.
    """
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return
    full = 0o777 if stat.S_ISDIR(mode) or mode & 0o111 else 0o666
    os.chmod(path, full & ~mask)


def _normal_modes(root: Path) -> None:
    """:func:`_normal_mode` for ``root`` and everything under it (symlinks are left alone)."""
    mask = _umask()
    _normal_mode(root, mask)
    if root.is_dir() and not root.is_symlink():
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                _normal_mode(Path(dirpath) / name, mask)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary siblings of ``target`` (files or directories) whose writing process is gone.

    Names without a process id (written before ids were added) count as stale too. A temporary
    of another target never matches: the name must be ``.<target name>.`` followed by the id and
    mkstemp's 8 random characters (or, for the old names, the 8 characters alone).
    """
    from medcore.childproc import pid_alive

    target = Path(target)
    if not target.parent.is_dir():
        return []
    name = re.escape(target.name)
    with_pid = re.compile(rf"\.{name}\.(\d+)\.[a-z0-9_]{{8}}(\.[^.]+)?\.tmp")
    legacy = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}(\.[^.]+)?\.tmp")
    stale = []
    for entry in target.parent.iterdir():
        if m := with_pid.fullmatch(entry.name):
            if not pid_alive(int(m.group(1))):
                stale.append(entry)
        elif legacy.fullmatch(entry.name):
            stale.append(entry)
    return sorted(stale)


def remove_stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Remove :func:`stale_temps` of ``target``; returns what was removed."""
    removed = []
    for stale in stale_temps(target):
        log.warning("removing %s, left by an interrupted write", stale)
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` if the block succeeds.

    Stale temporaries of the same target (their writer was killed) are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _normal_modes(tmp_path)  # mkstemp makes 0600 files; outputs follow the umask
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def write_jsonl(target: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``target`` (old one removed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _normal_modes(tmp)  # the directory (mkdtemp: 0700) and every file a writer put in it
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
