"""Child processes that die with their parent, and a test of whether a process is still alive.

A plain ``subprocess.run`` child outlives its parent: ``kill -9`` on ``tsx-convert`` left llama.cpp's
``convert_hf_to_gguf.py`` running as an orphan that went on to write a 550 MB temporary file.
:func:`run` starts the child

* in a process group of its own, which is killed (``killpg``) whenever the parent leaves the wait
  with an exception: Ctrl-C, ``SystemExit`` from a SIGTERM/SIGHUP handler, any error;
* on Linux, with a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so the kernel kills it
  even when the parent cannot run any code (SIGKILL, OOM killer). The signal fires when the *thread*
  that started the child ends; :func:`run` blocks that thread until the child is gone, so that is
  never early.

The group is the child's own session (``start_new_session``): a Ctrl-C in the terminal reaches the
parent only, and the parent's handler ends the group.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _pdeathsig_setup() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGKILL the child when the parent dies (Linux only).

    Everything is resolved before the fork: between fork and exec the child may only make the one
    foreign call and a system call or two (``preexec_fn`` runs while other threads' locks are frozen).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    sig = int(signal.SIGKILL)

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect: nobody would signal us
            os._exit(137)

    return setup


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it leads it), then reap the child.

    Called before the child is reaped, so its id (the group's id) cannot have been reused.
    """
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)  # grandchildren too: the group outlives its leader
        elif proc.poll() is None:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def run(cmd: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True)`` whose child cannot outlive the caller."""
    posix = os.name == "posix"
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=posix,
                            preexec_fn=_pdeathsig_setup() if posix else None)
    try:
        out, err = proc.communicate()
    except BaseException:  # KeyboardInterrupt, SystemExit from a signal handler, anything
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie. Unsure (no permission, unknown OS): True."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would *terminate* the process on Windows
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie (killed, not yet reaped) writes nothing any more
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _pid_alive_windows(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
