"""Smoke test of the Linux packages on real parts: build, install into a fresh prefix, self-test
offline under Xvfb as an unprivileged user, report.

    python packaging/smoke.py [--no-build] [--keep DIR]
    make package-smoke                       # the same, with the packaging venv

1. build (``packaging/build.py``; ``--no-build`` reuses ``dist/packages``);
2. install: ``dpkg-deb -x`` of the app and model packages into a fresh temporary prefix (the
   layout of a real install, under ``<prefix>/opt`` and ``<prefix>/usr``; nothing touches the
   system's dpkg database), timed;
3. run, inside a new network namespace (``unshare -n``: only a downed loopback, no route
   anywhere), as user ``nobody`` (``setpriv``) with a fresh empty HOME, under ``xvfb-run``:
   a. ``tsx-medtrans --version`` twice: the first start includes the first-run step (model
      hash check and link into the user's models folder), the second is a plain start;
   b. ``tsx-medtrans --self-test``: model hash, load, one translation, its real attention captured
      from llama.cpp (no torch in the bundle), the term and head views drawn in QtWebEngine; its
      JSON report is printed;
4. exit non-zero if any of it failed.

Needs root for ``unshare -n`` and ``setpriv`` (CI containers and this dev machine run as root);
without root it runs the same steps as the current user with networking left on, and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "dist" / "packages"
NOBODY = (65534, 65534)


def latest(pattern: str) -> Path | None:
    found = sorted(OUT.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def isolated(cmd: list[str], prefix: Path, home: Path, root: bool, display: str | None = None) -> list[str]:
    """``cmd`` wrapped: no network, unprivileged user, a virtual X display (its own ``xvfb-run``, or
    ``display``, an X server the caller runs)."""
    env = {
        "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"), "XDG_RUNTIME_DIR": str(home / ".run"), "LANG": "C.UTF-8",
        "PATH": f"{prefix}/usr/bin:/usr/bin:/bin", "TMPDIR": str(home / "tmp"),
    }
    x11 = [f"DISPLAY={display}"] if display else ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24 -nolisten tcp"]
    inner = ["env", "-i", *[f"{k}={v}" for k, v in env.items()], *x11, *cmd]
    if not root:
        return inner
    drop = ["setpriv", f"--reuid={NOBODY[0]}", f"--regid={NOBODY[1]}", "--clear-groups", "--"]
    probe = "n=$(grep -c : /proc/net/dev); echo \"network interfaces in the namespace: $n (lo only)\" >&2; "
    return ["unshare", "--net", "--", "sh", "-c", probe + 'exec "$@"', "sh", *drop, *inner]


def timed(cmd: list[str], timeout: float) -> tuple[int, float, str, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, time.perf_counter() - t0, proc.stdout, proc.stderr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-build", action="store_true", help="use the packages already in dist/packages")
    p.add_argument("--keep", type=Path, help="install here (kept) instead of a temporary directory")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed for the self-test")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    for tool in ("dpkg-deb", "xvfb-run"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install dpkg-dev xvfb (see packaging/README.md)")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    summary: dict = {"isolation": "unshare -n + setpriv nobody + xvfb-run" if root else "current user, network ON"}

    if not args.no_build:
        cmd = [args.python, str(HERE / "build.py")]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        summary["build_seconds"] = round(time.perf_counter() - t0, 1)
    debs = {"app": latest("tsx-medtrans_*_amd64.deb"), "model": latest("tsx-medtrans-model-*_all.deb")}
    missing = [k for k, v in debs.items() if v is None]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} package in {OUT}: run without --no-build")

    tmp = None
    if args.keep:
        prefix = args.keep.resolve()
        if prefix.exists():
            shutil.rmtree(prefix)
        prefix.mkdir(parents=True)
    else:
        tmp = tempfile.mkdtemp(prefix="tsx-smoke-")
        prefix = Path(tmp)
    try:
        prefix.chmod(0o755)
        install = prefix / "root"
        t0 = time.perf_counter()
        for deb in debs.values():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(install)], check=True)
        summary["install_seconds"] = round(time.perf_counter() - t0, 1)
        summary["packages"] = {k: {"file": v.name, "bytes": v.stat().st_size} for k, v in debs.items()}
        summary["installed_bytes"] = sum(f.stat().st_size for f in install.rglob("*") if f.is_file() and not f.is_symlink())
        home = prefix / "home"
        for d in (home, home / "tmp", home / ".run"):
            d.mkdir(parents=True, exist_ok=True)
        (home / ".run").chmod(0o700)
        if root:
            for d in (home, *home.rglob("*")):
                os.chown(d, *NOBODY)
        launcher = str(install / "usr" / "bin" / "tsx-medtrans")

        for label in ("first_start", "second_start"):
            rc, secs, out, err = timed(isolated([launcher, "--version"], install, home, root), 600)
            summary[f"{label}_seconds"] = round(secs, 2)
            print(f"{label}: {secs:.2f} s, rc={rc}: {out.strip()} {err.strip()}", flush=True)
            if rc != 0:
                print(err, file=sys.stderr)
                summary["ok"] = False
                print(json.dumps(summary, indent=2))
                return 1
        linked = home / ".local" / "share" / "tsx-medtrans" / "models"
        summary["user_models"] = sorted(f"{p.name} -> {os.readlink(p)}" if p.is_symlink() else p.name
                                        for p in linked.glob("*.gguf")) if linked.is_dir() else []

        report_path = home / "selftest.json"
        st_args = ["--self-test", "--json-out", str(report_path), "--keep", str(home / "selftest-pages")]
        cmd = isolated([launcher, *st_args], install, home, root)
        print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        rc, secs, out, err = timed(cmd, args.timeout)
        summary["selftest_seconds"] = round(secs, 1)
        summary["selftest_rc"] = rc
        sys.stderr.write(err)
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
            print(out)
        summary["selftest"] = report
        summary["ok"] = rc == 0 and report is not None and report.get("ok") is True
        if report is not None:
            checks = {c["name"]: c for c in report["checks"]}
            tr = checks.get("translate", {}).get("detail", {})
            summary["first_translation"] = {"translation": tr.get("translation"),
                                            "seconds_since_process_start": tr.get("seconds_since_process_start")}
        (OUT / "smoke-report.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        print(f"smoke test {'PASSED' if summary['ok'] else 'FAILED'}: install {summary['install_seconds']} s, "
              f"first start {summary['first_start_seconds']} s, second start {summary['second_start_seconds']} s, "
              f"self-test {summary['selftest_seconds']} s (report: {OUT / 'smoke-report.json'})")
        return 0 if summary["ok"] else 1
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
