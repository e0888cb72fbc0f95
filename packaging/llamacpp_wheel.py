"""Build the project's portable llama-cpp-python wheel once, into ``.whl/<key>/``, and print its path.

    python packaging/llamacpp_wheel.py key      # the folder key (version + flags + variants), no build
    python packaging/llamacpp_wheel.py build    # build if missing; prints the wheel's path
    python packaging/llamacpp_wheel.py path     # the wheel's path if built (exit 1 if not)

``make`` installs exactly that file (``pip install --no-cache-dir <path>``) before the project's own
requirements, so pip neither builds llama-cpp-python again nor takes a wheel from its cache that was
built with other flags (pip caches wheels by sdist, not by ``CMAKE_ARGS``: a native build cached there
would come back silently).

Why these flags (details in docs/packaging.md):

* ``GGML_NATIVE=OFF`` — a native build bakes the build machine's instruction set into every bundle
  made from it, and on an AMX CPU turns on the AMX path that crashes on the first decode (upstream
  llama.cpp #20824).
* ``GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON`` — the CPU backend is one shared library per
  instruction-set level; ggml loads the best one the running CPU supports
  (``runtime.llamacpp.ensure_backends``).
* The variant list is patched in the sdist's ``ggml/src/CMakeLists.txt`` (ggml has no option for
  it): ``sapphirerapids``, the only variant with AMX, is never built, and on 2 cores only the
  variants that matter are (``runtime.llamacpp.DEFAULT_VARIANTS``; ``--variants all`` builds
  every non-AMX one).
* Source patches (``packaging/ggml_patches.py``, part of the key): ``plain-for-batches`` keeps
  ggml's repacked Q4_K kernels for decoding and runs prompt batches (>= 32 rows) on a kept plain
  copy of those weights, where the repacked GEMM is slower (issue 10).
* ``LLAVA_BUILD=OFF`` — the app has no image input; ``libmtmd`` is not shipped anyway.
* ``CMAKE_INSTALL_{BIN,LIB}DIR=llama_cpp/lib`` — ggml installs backend modules into ``bin/``, which
  would put them at ``site-packages/bin``; here they land beside ``libggml`` where the loader looks.

Stdlib only; runs with any Python ≥ 3.10 (the build itself happens in pip's isolated environment).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))
from ggml_patches import apply_patches, patches_digest  # noqa: E402

from runtime.llamacpp import (  # noqa: E402
    AMX_FEATURES,
    DEFAULT_VARIANTS,
    EXCLUDED_VARIANTS,
    NOT_ON_MSVC,
    X86_VARIANTS,
    variant_of_file,
)

OUT_ROOT = ROOT / ".whl"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
PATCH_REV = 2  # bump when the patch or the layout below changes: a new key, a new build
CMAKE_ARGS = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=ON",
    "-DGGML_CPU_ALL_VARIANTS=ON",
    "-DGGML_CCACHE=OFF",
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DCMAKE_INSTALL_BINDIR=llama_cpp/lib",
    "-DCMAKE_INSTALL_LIBDIR=llama_cpp/lib",
    "-DCMAKE_INSTALL_INCLUDEDIR=llama_cpp/include",
]
_VARIANT_CALL = re.compile(r"^(\s*)ggml_add_cpu_backend_variant\((\w+)\b([^)]*)\)", re.M)


def pinned_version(constraints: Path = CONSTRAINTS) -> str:
    for line in constraints.read_text().splitlines():
        m = re.match(r"\s*llama[-_]cpp[-_]python\s*==\s*([\w.]+)", line, re.I)
        if m:
            return m.group(1)
    raise SystemExit(f"no llama-cpp-python==… pin in {constraints}")


def parse_variants(spec: str | None) -> tuple[str, ...]:
    if not spec:
        names = DEFAULT_VARIANTS
    elif spec == "all":
        names = tuple(v for v in X86_VARIANTS if v not in EXCLUDED_VARIANTS)
    else:
        names = tuple(v.strip() for v in spec.replace(",", " ").split() if v.strip())
    unknown = [v for v in names if v not in X86_VARIANTS]
    banned = [v for v in names if v in EXCLUDED_VARIANTS or set(X86_VARIANTS[v]) & set(AMX_FEATURES)]
    if unknown:
        raise SystemExit(f"unknown CPU variants {unknown}; known: {sorted(X86_VARIANTS)}")
    if banned:
        raise SystemExit(f"variants {banned} enable AMX, which crashes (llama.cpp #20824): not built")
    if "x64" not in names:
        raise SystemExit("the x64 baseline variant is required: without it an older CPU gets no backend at all")
    return tuple(dict.fromkeys(names))


def build_key(version: str, variants: tuple[str, ...]) -> str:
    recipe = {"version": version, "cmake_args": CMAKE_ARGS, "variants": sorted(variants), "patch": PATCH_REV,
              "ggml_patches": patches_digest(), "platform": f"{sys.platform}-{platform.machine()}"}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{version}-portable-{digest}"


def patch_variants(cmakelists: Path, keep: tuple[str, ...]) -> list[str]:
    """Comment out every x86 ``ggml_add_cpu_backend_variant(...)`` not in ``keep``; return what stays."""
    text = cmakelists.read_text()
    start = text.index('if (GGML_SYSTEM_ARCH STREQUAL "x86")', text.index("if (GGML_CPU_ALL_VARIANTS)"))
    end = text.index("elseif(GGML_SYSTEM_ARCH STREQUAL", start)
    block = text[start:end]
    kept: list[str] = []

    def edit(m: re.Match) -> str:
        name = m.group(2)
        if name in keep:
            kept.append(name)
            return m.group(0)
        return f"{m.group(1)}# tsx-medtrans: not built: ggml_add_cpu_backend_variant({name}{m.group(3)})"

    block = _VARIANT_CALL.sub(edit, block)
    missing = set(keep) - set(kept)
    if missing:
        raise SystemExit(f"variants {sorted(missing)} are not in {cmakelists} (another ggml version?)")
    if re.search(r"^\s*ggml_add_cpu_backend_variant\([^)]*AMX", block, re.M):
        raise SystemExit("an AMX variant survived the patch")
    cmakelists.write_text(text[:start] + block + text[end:])
    return kept


def fetch_sdist(version: str, dest: Path) -> Path:
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
                    "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", str(dest)], check=True)
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        raise SystemExit(f"pip did not download llama_cpp_python-{version}.tar.gz")
    return found[0]


def check_wheel(wheel: Path, variants: tuple[str, ...]) -> dict:
    """The wheel holds exactly the variant libraries asked for, next to libggml, and nothing with AMX."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    libs = [n for n in names if n.startswith("llama_cpp/lib/")]
    found = sorted({v for n in libs if (v := variant_of_file(n.rsplit("/", 1)[-1]))})
    stray = [n for n in names if variant_of_file(n.rsplit("/", 1)[-1]) and not n.startswith("llama_cpp/lib/")]
    problems = []
    if sys.platform == "win32":  # MSVC skips some variants (see NOT_ON_MSVC)
        variants = tuple(v for v in variants if v not in NOT_ON_MSVC or v in found)
    if sorted(variants) != found:
        problems.append(f"variant libraries {found} != requested {sorted(variants)}")
    if set(found) & set(EXCLUDED_VARIANTS):
        problems.append(f"excluded variants shipped: {sorted(set(found) & set(EXCLUDED_VARIANTS))}")
    if stray:
        problems.append(f"variant libraries outside llama_cpp/lib: {stray}")
    if not any(n.rsplit("/", 1)[-1] in ("libggml.so", "ggml.dll", "libggml.dylib") for n in libs):
        problems.append("libggml missing from llama_cpp/lib")
    if problems:
        raise SystemExit(f"{wheel.name}: " + "; ".join(problems))
    return {"variants": found, "files": len(names)}


def build(version: str, variants: tuple[str, ...], jobs: int) -> Path:
    key = build_key(version, variants)
    out = OUT_ROOT / key
    done = sorted(out.glob("*.whl"))
    if done and (out / "BUILD_INFO.json").exists():
        return done[0]
    sdist = fetch_sdist(version, OUT_ROOT / "sdist")
    OUT_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"build-{key}-", dir=OUT_ROOT) as tmp:
        tmp = Path(tmp)
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)  # noqa: S202
        src = next(tmp.glob("llama_cpp_python-*"))
        kept = patch_variants(src / "vendor" / "llama.cpp" / "ggml" / "src" / "CMakeLists.txt", variants)
        patched = apply_patches(src / "vendor" / "llama.cpp")
        env = dict(os.environ, CMAKE_ARGS=" ".join(CMAKE_ARGS), CMAKE_BUILD_PARALLEL_LEVEL=str(jobs),
                   FORCE_CMAKE="1")
        env.pop("SOURCE_DATE_EPOCH", None)
        print(f"building llama-cpp-python {version} (portable; CPU variants: {', '.join(kept)}; patches: "
              f"{', '.join(patched)}) with {jobs} jobs\n  CMAKE_ARGS={env['CMAKE_ARGS']}", flush=True)
        t0 = time.monotonic()
        wheel_dir = tmp / "wheel"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps",
                        "--no-cache-dir", "-w", str(wheel_dir), str(src)], check=True, env=env)
        seconds = time.monotonic() - t0
        wheel = next(wheel_dir.glob("*.whl"))
        checked = check_wheel(wheel, variants)
        staging = tmp / "out"
        staging.mkdir()
        shutil.move(str(wheel), staging / wheel.name)
        info = {"key": key, "version": version, "cmake_args": CMAKE_ARGS, "variants": checked["variants"],
                "ggml_patches": patched, "ggml_patches_sha256": patches_digest(),
                "excluded": list(EXCLUDED_VARIANTS), "build_seconds": round(seconds, 1), "jobs": jobs,
                "cpu_count": os.cpu_count(), "built_on": platform.platform(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sdist_sha256": _sha256(sdist),
                "wheel": wheel.name, "wheel_sha256": _sha256(staging / wheel.name)}
        (staging / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
        print(f"built in {seconds / 60:.1f} min: {out / wheel.name}", flush=True)
    return out / wheel.name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("key", "build", "path"))
    ap.add_argument("--version", help="llama-cpp-python version (default: the pin in requirements/constraints.txt)")
    ap.add_argument("--variants", default=os.environ.get("LLAMA_CPU_VARIANTS") or None,
                    help="CPU variants to build: 'all' (every non-AMX one) or a list "
                         f"(default: {' '.join(DEFAULT_VARIANTS)}; env LLAMA_CPU_VARIANTS)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or os.cpu_count() or 2))
    args = ap.parse_args(argv)
    version = args.version or pinned_version()
    variants = parse_variants(args.variants)
    if args.action == "key":
        print(build_key(version, variants))
        return 0
    if args.action == "path":
        found = sorted((OUT_ROOT / build_key(version, variants)).glob("*.whl"))
        if not found:
            print(f"not built: {OUT_ROOT / build_key(version, variants)}", file=sys.stderr)
            return 1
        print(found[0])
        return 0
    print(build(version, variants, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
