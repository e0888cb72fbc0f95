"""Build everything a Linux clinic install needs, in one command, and report sizes and times.

    python packaging/build.py [--no-model] [--skip-pyinstaller] [--compression xz|gzip|zstd|none]

(``make package`` runs it with the packaging venv.)

Steps, each timed:

1. ``pyinstaller``: one-folder bundle of the app (no torch: attention comes from llama.cpp) from
   ``packaging/linux/tsx-medtrans.spec`` into ``build/pyinstaller/dist/tsx-medtrans``;
2. ``inspect``: the bundle must hold llama.cpp's libraries (the portable build's CPU variants, none
   with AMX), QtWebEngineProcess, the resources (the vendored BertViz views included) and no torch,
   transformers, bertviz or IPython; every ELF file's unresolved libraries
   are listed (must be none) and the system
   libraries it uses are mapped to Debian packages (``dpkg -S``) for the ``Depends`` line;
3. ``deb-app``: ``tsx-medtrans_<ver>_amd64.deb`` (bundle in /opt/tsx-medtrans, launchers in
   /usr/bin, desktop entry, icons);
4. ``deb-model``: ``tsx-medtrans-model-qwen1.5b_<ver>_all.deb`` (the default GGUF in
   /opt/tsx-medtrans/models plus SHA256SUMS; checked again on each user's first start).

There is no attention add-on any more: the app computes attention with llama.cpp itself
(``desktop.attention.llama_engine``), so the core bundle has the full attention views.

Outputs go to ``dist/packages/``; the report to ``dist/packages/build-report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import spec_common  # noqa: E402

BUILD = ROOT / "build" / "packaging"
PYI = ROOT / "build" / "pyinstaller"
OUT = ROOT / "dist" / "packages"
BUNDLE = PYI / "dist" / spec_common.APP_NAME
MAINTAINER = "TSX-MedTrans maintainers <tsx-medtrans@localhost>"
HOMEPAGE_NOTE = "Offline Chinese<->English medical translation (llama.cpp, Qt)."
MODEL_PACKAGE = "tsx-medtrans-model-qwen1.5b"
# The attention add-on of earlier versions: the app package replaces it (it is no longer needed).
OLD_ATTENTION_PACKAGE = "tsx-medtrans-attention"
# Base system the bundle may rely on without a Depends entry (essential / always present).
ESSENTIAL = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def app_version() -> str:
    text = (ROOT / "desktop" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class Timer:
    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def step(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()
                print(f"== {name}", flush=True)

            def __exit__(self, *exc):
                timer.steps[name] = round(time.perf_counter() - self.t0, 1)
                print(f"   {name}: {timer.steps[name]:.1f} s", flush=True)

        return _Ctx()


# ---------------------------------------------------------------------------------------- steps
def run_pyinstaller(python: str) -> None:
    spec = HERE / "linux" / "tsx-medtrans.spec"
    cmd = [python, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
           "--workpath", str(PYI / "work"), "--distpath", str(PYI / "dist"), str(spec)]
    subprocess.run(cmd, check=True, cwd=ROOT)


def elf_files(root: Path) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and (p.suffix == ".so" or ".so." in p.name or os.access(p, os.X_OK)):
            with open(p, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    out.append(p)
    return out


# Optional Qt plugins: loaded only when the desktop offers what they need (a GTK theme, Wayland);
# a missing system library there disables the plugin, it does not break the app.
OPTIONAL_PREFIXES = ("_internal/PySide6/Qt/plugins/platformthemes/", "_internal/PySide6/Qt/plugins/wayland",
                     "_internal/PySide6/Qt/plugins/platforms/libqwayland", "_internal/PySide6/Qt/lib/libQt6Wayland", "_internal/PySide6/Qt/lib/libQt6Wl",
                     "_internal/PySide6/Qt/plugins/platforminputcontexts/")


def _ldd(elf: Path, env: dict) -> tuple[Path, str]:
    return elf, subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env=env).stdout


def inspect_bundle(bundle: Path) -> dict:
    """Sanity checks and the system libraries the bundle uses (see the module docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    internal = bundle / "_internal"
    problems = []
    must = {
        "executable": bundle / spec_common.APP_NAME,
        "libllama": internal / "llama_cpp" / "lib" / "libllama.so",
        "libggml": internal / "llama_cpp" / "lib" / "libggml.so",
        # the portable build: the CPU backend is loaded at run time from one of these (baseline, AVX2)
        "llama.cpp CPU variant x64": internal / "llama_cpp" / "lib" / "libggml-cpu-x64.so",
        "llama.cpp CPU variant haswell": internal / "llama_cpp" / "lib" / "libggml-cpu-haswell.so",
        "QtWebEngineProcess": internal / "PySide6" / "Qt" / "libexec" / "QtWebEngineProcess",
        "webengine resources": internal / "PySide6" / "Qt" / "resources" / "qtwebengine_resources.pak",
        "webengine locale": internal / "PySide6" / "Qt" / "translations" / "qtwebengine_locales" / "en-US.pak",
        "xcb platform plugin": internal / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so",
        "prompt contract": internal / "resources" / "prompts" / "translation.yaml",
        "vendored d3": internal / "resources" / "web" / "vendor" / "d3-5.7.0.min.js",
        "vendored BertViz head view": internal / "resources" / "web" / "vendor" / "bertviz-1.4.1" / "head_view.py",
        "ui translation": internal / "resources" / "i18n" / "tsx_medtrans_zh_CN.qm",
        "icon": internal / "resources" / "icons" / "tsx-medtrans.svg",
        "CJK font for the attention pages": internal / "resources" / "fonts" / "wqy-microhei.woff",
    }
    for what, path in must.items():
        if not path.exists():
            problems.append(f"missing {what}: {path.relative_to(bundle)}")
    for banned in ("torch", "transformers", "bertviz", "IPython", "PySide6/Qt/qml"):
        if (internal / banned).exists():
            problems.append(f"{banned} is in the core bundle")
    variants = sorted(v for p in (internal / "llama_cpp" / "lib").glob("*ggml-cpu-*")
                      if (v := spec_common.variant_of_file(p.name)))
    problems += [f"llama.cpp CPU variant {v} (AMX, crashes) is in the bundle"
                 for v in variants if v in spec_common.EXCLUDED_VARIANTS]
    # the project's ggml patch (packaging/ggml_patches.py) is in every variant: a wheel from elsewhere is not.
    # Detected as the app detects it at run time.
    from runtime.llamacpp import plain_batch_rows

    problems += [f"llama.cpp CPU variant {p.name} lacks the plain-for-batches patch (not the project's build)"
                 for p in sorted((internal / "llama_cpp" / "lib").glob("*ggml-cpu-*"))
                 if spec_common.variant_of_file(p.name) and plain_batch_rows(p, {}) is None]
    elves = elf_files(bundle)
    # Resolve bundled libraries the way the running app does (bootloader + RUNPATHs): any folder
    # of the bundle that holds a shared library is searched.
    lib_dirs = sorted({str(e.parent) for e in elves if ".so" in e.name})
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(lib_dirs))
    system: dict[str, set[str]] = {}
    unresolved: dict[str, list[str]] = {}
    optional: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for elf, out in pool.map(lambda e: _ldd(e, env), elves):
            rel = str(elf.relative_to(bundle))
            for line in out.splitlines():
                m = re.match(r"\s*(\S+) => (not found|\S+)", line)
                if not m:
                    continue
                name, where = m.groups()
                if where == "not found":
                    target = optional if rel.startswith(OPTIONAL_PREFIXES) else unresolved
                    target.setdefault(name, []).append(rel)
                elif not where.startswith(str(bundle)):
                    system.setdefault(where, set()).add(rel)
    if unresolved:
        problems.append("unresolved libraries: " + "; ".join(f"{k} (needed by {v[:2]})" for k, v in sorted(unresolved.items())))
    packages = dpkg_owners(sorted(system))
    return {"problems": problems, "system_libraries": sorted(system), "unresolved": unresolved,
            "optional_unresolved": optional, "elf_files": len(elves), "llama_cpu_variants": variants,
            "depends": sorted(set(packages.values()) - ESSENTIAL - {"?"}), "owners": packages}


def dpkg_owners(paths: list[str]) -> dict[str, str]:
    """Debian package owning each library (``dpkg -S``; /lib and /usr/lib are the same on merged-usr)."""
    owners: dict[str, str] = {}
    for path in paths:
        candidates = [path, os.path.realpath(path)]
        candidates += [c.replace("/usr/lib/", "/lib/", 1) if c.startswith("/usr/lib/") else c.replace("/lib/", "/usr/lib/", 1)
                       for c in list(candidates)]
        for cand in candidates:
            proc = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if proc.returncode == 0:
                owners[path] = proc.stdout.split(":", 1)[0].split(",")[0].strip()
                break
        else:
            owners[path] = "?"
    return owners


def write_control(debian: Path, fields: dict[str, str], tree: Path) -> None:
    debian.mkdir(parents=True, exist_ok=True)
    fields = dict(fields)
    fields["Installed-Size"] = str(max(1, du(tree) // 1024))
    text = "".join(f"{k}: {v}\n" for k, v in fields.items() if v)
    (debian / "control").write_text(text, encoding="utf-8")


def normalise_modes(tree: Path) -> None:
    """Modes a package must carry whatever the build machine's umask or source files had:
    directories and executables 0755, everything else 0644 (the model file was 0600 in the
    builder's home, and unreadable for every other user once installed)."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink() or path.parts[len(tree.parts):][:1] == ("DEBIAN",):
            continue
        mode = path.stat().st_mode
        path.chmod(0o755 if path.is_dir() or mode & 0o100 else 0o644)


def dpkg_build(tree: Path, out: Path, compression: str) -> Path:
    normalise_modes(tree)
    level = {"xz": ["-z6"], "gzip": ["-z6"], "zstd": ["-z19"], "none": []}[compression]
    cmd = ["dpkg-deb", "--root-owner-group", f"-Z{compression}", *level, "--build", str(tree), str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def copy_tree_fast(src: Path, dst: Path) -> None:
    """A real copy: hard links would let ``normalise_modes`` change the build outputs' modes."""
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)


LAUNCHER = """#!/bin/sh
# TSX-MedTrans launcher: finds the app relative to itself, so the package also runs when it is
# unpacked under another prefix (dpkg-deb -x pkg.deb DIR; DIR/usr/bin/{name}).
here=$(dirname "$(readlink -f "$0")")
exec "$here/../../opt/tsx-medtrans/tsx-medtrans" {args}"$@"
"""

DESKTOP_ENTRY = """[Desktop Entry]
Type=Application
Version=1.0
Name=TSX-MedTrans
Name[zh_CN]=TSX 医学翻译
GenericName=Medical translator
GenericName[zh_CN]=医学翻译
Comment=Offline Chinese-English medical translation
Comment[zh_CN]=离线中英医学翻译
Exec=tsx-medtrans %F
TryExec=tsx-medtrans
Icon=tsx-medtrans
Terminal=false
Categories=Office;Education;Science;MedicalSoftware;
Keywords=translation;medical;Chinese;English;翻译;医学;
MimeType=text/plain;
StartupWMClass=tsx-medtrans
"""


def build_app_deb(version: str, depends: list[str], compression: str) -> Path:
    tree = fresh(BUILD / "deb-app")
    copy_tree_fast(BUNDLE, tree / "opt" / "tsx-medtrans")
    bindir = tree / "usr" / "bin"
    bindir.mkdir(parents=True)
    for name, args in (("tsx-medtrans", ""), ("tsx-medtrans-selftest", "--self-test ")):
        (bindir / name).write_text(LAUNCHER.replace("{name}", name).replace("{args}", args), encoding="utf-8")
        (bindir / name).chmod(0o755)
    apps = tree / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    (apps / "tsx-medtrans.desktop").write_text(DESKTOP_ENTRY, encoding="utf-8")
    icons = ROOT / "resources" / "icons"
    for sub, src in (("scalable", "tsx-medtrans.svg"), ("256x256", "tsx-medtrans-256.png"), ("48x48", "tsx-medtrans-48.png")):
        dest = tree / "usr" / "share" / "icons" / "hicolor" / sub / "apps"
        dest.mkdir(parents=True)
        shutil.copy2(icons / src, dest / ("tsx-medtrans" + Path(src).suffix))
    doc = tree / "usr" / "share" / "doc" / "tsx-medtrans"
    doc.mkdir(parents=True)
    (doc / "README.packaging.md").write_text((HERE / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    vendor_licenses = ROOT / "resources" / "web" / "vendor" / "licenses"
    if vendor_licenses.is_dir():
        shutil.copytree(vendor_licenses, doc / "third-party-licenses")
    # The default medical glossary's sources, licences and the attribution HPO and CC-CEDICT require.
    shutil.copy2(ROOT / "resources" / "glossary" / "NOTICE.md", doc / "GLOSSARY-NOTICE.md")
    # The CJK font the attention pages embed glyphs from: WenQuanYi Micro Hei, Apache-2.0.
    shutil.copy2(ROOT / "resources" / "fonts" / "LICENSE.Apache-2.0", doc / "FONT-LICENSE.wqy-microhei")
    write_control(tree / "DEBIAN", {
        "Package": "tsx-medtrans", "Version": version, "Architecture": "amd64", "Maintainer": MAINTAINER,
        "Section": "science", "Priority": "optional",
        "Depends": ", ".join(depends),
        "Recommends": f"{MODEL_PACKAGE}, fonts-wqy-microhei | fonts-noto-cjk",
        # The old torch add-on (~1 GB) is obsolete: attention now comes from llama.cpp in this package.
        "Replaces": OLD_ATTENTION_PACKAGE, "Conflicts": OLD_ATTENTION_PACKAGE,
        "Description": "offline Chinese<->English medical translator\n"
                       " Translates clinical text between Chinese and English on this computer with a local\n"
                        " llama.cpp model; nothing is sent over the network. Term checks against a built-in\n"
                        " medical glossary (HPO, TICO-19, CC-CEDICT; see GLOSSARY-NOTICE.md) and clinical red flags,\n"
                        " attention views computed by the same llama.cpp model, and a self-test\n"
                       " (tsx-medtrans --self-test) for IT after installation.",
    }, tree)
    return dpkg_build(tree, OUT / f"tsx-medtrans_{version}_amd64.deb", compression)


def build_model_deb(version: str, model_name: str) -> Path:
    from medcore.models import BUNDLED, bundled_path, sha256_file

    model = BUNDLED[model_name]
    src = bundled_path(model_name)
    tree = fresh(BUILD / "deb-model")
    dest = tree / "opt" / "tsx-medtrans" / "models"
    dest.mkdir(parents=True)
    # A copy, not a hard link: the package needs mode 0644, which must not change the builder's file.
    shutil.copyfile(src, dest / model.filename)
    digest = sha256_file(dest / model.filename)
    if digest != model.sha256:
        raise SystemExit(f"{src} does not match its sha256 ({digest} vs {model.sha256}): run `tsx-models fetch`")
    (dest / "SHA256SUMS").write_text(f"{model.sha256}  {model.filename}\n", encoding="utf-8")
    write_control(tree / "DEBIAN", {
        "Package": MODEL_PACKAGE, "Version": f"{version}+{model.version}", "Architecture": "all",
        "Maintainer": MAINTAINER, "Section": "science", "Priority": "optional",
        "Enhances": "tsx-medtrans",
        "Description": f"default model for TSX-MedTrans ({model.description})\n"
                       f" {model.filename}, {model.size:,} bytes, sha256 {model.sha256}.\n"
                       " Apache-2.0 (Qwen2.5). The app checks the hash on each user's first start.",
    }, tree)
    # A quantised GGUF barely compresses: store it, which also makes install a plain copy.
    return dpkg_build(tree, OUT / f"{MODEL_PACKAGE}_{version}+{model.version}_all.deb", "none")


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-model", action="store_true", help="do not build the model package")
    p.add_argument("--model", default=None,
                   help="bundled model for the model package (default: the base of resources/models/default.yaml)")
    p.add_argument("--skip-pyinstaller", action="store_true", help="reuse build/pyinstaller/dist (packaging only)")
    p.add_argument("--compression", default="gzip", choices=("xz", "gzip", "zstd", "none"),
                   help="compression of the app package (gzip: default; xz: smaller but it did not finish in 17 min on a loaded 2-core machine)")
    p.add_argument("--python", default=sys.executable, help="interpreter with PyInstaller, PySide6, llama-cpp-python")
    args = p.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("dpkg-deb is missing: apt-get install dpkg-dev fakeroot")
    version = app_version()
    OUT.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    started = time.perf_counter()
    report: dict = {"version": version, "python": args.python}
    if not args.skip_pyinstaller:
        with timer.step("pyinstaller"):
            run_pyinstaller(args.python)
    if not BUNDLE.is_dir():
        raise SystemExit(f"no bundle at {BUNDLE}: run without --skip-pyinstaller")
    with timer.step("inspect"):
        info = inspect_bundle(BUNDLE)
    report["inspect"] = {k: info[k] for k in ("problems", "depends", "unresolved", "optional_unresolved", "elf_files",
                                              "llama_cpu_variants")}
    if info["problems"]:
        print("bundle problems:\n  " + "\n  ".join(info["problems"]), file=sys.stderr)
        return 1
    packages: dict[str, Path] = {}
    with timer.step("deb-app"):
        packages["app"] = build_app_deb(version, info["depends"], args.compression)
    if not args.no_model:
        with timer.step("deb-model"):
            from medcore.modelspec import default_base_name

            packages["model"] = build_model_deb(version, args.model or default_base_name())
    files = sorted(BUNDLE.rglob("*"))
    sizes = {
        "bundle_dir_bytes": du(BUNDLE), "bundle_files": sum(1 for f in files if f.is_file()),
        **{f"deb_{k}_bytes": v.stat().st_size for k, v in packages.items()},
    }
    sizes["download_without_model_bytes"] = sizes["deb_app_bytes"]
    if "model" in packages:
        sizes["download_with_model_bytes"] = sizes["deb_app_bytes"] + sizes["deb_model_bytes"]
    report.update({"steps_seconds": timer.steps, "total_seconds": round(time.perf_counter() - started, 1),
                   "sizes": sizes, "packages": {k: str(v) for k, v in packages.items()}})
    (OUT / "build-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n== packages")
    for v in packages.values():
        print(f"   {v.name:<55} {mb(v.stat().st_size):>12}")
    print(f"   one-folder bundle: {mb(sizes['bundle_dir_bytes'])} in {sizes['bundle_files']:,} files")
    print(f"   download without model: {mb(sizes['download_without_model_bytes'])}"
          + (f", with model: {mb(sizes['download_with_model_bytes'])}" if "model" in packages else ""))
    print("== times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timer.steps.items())
          + f"; total {report['total_seconds']:.0f} s")
    print(f"   report: {OUT / 'build-report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
