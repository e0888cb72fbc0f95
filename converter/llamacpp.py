"""llama.cpp's own conversion code and quantiser, matched to the installed llama-cpp-python.

The GGUF the app runs must be written by the converter of the llama.cpp version the app loads it
with: llama.cpp changes its tokenizer detection, metadata keys and tensor layouts between versions,
and PyPI's ``gguf`` package tracks llama.cpp master, not the copy vendored in llama-cpp-python
(gguf 0.19.0 against the 0.3.36 converter fails with ``AttributeError: DFLASH``). So the converter
script, its ``conversion/`` package and its ``gguf-py`` are taken from the llama-cpp-python sdist of
exactly the installed version, fetched once with pip into ``<models dir>/.llama-cpp-src/<version>/``
(never committed), and run in a subprocess with that ``gguf-py`` first on the path.

Quantisation uses ``llama_cpp.llama_model_quantize`` in-process (no separate binary).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tarfile
from pathlib import Path

from converter import ConvertError
from medcore import childproc
from medcore.atomic import atomic_dir
from medcore.models import models_dir

log = logging.getLogger(__name__)

# Types the converter script writes itself, and k-quants that need the quantize API.
CONVERT_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANT_TYPES = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
}
ALL_TYPES = tuple(dict.fromkeys(CONVERT_TYPES + tuple(QUANT_TYPES)))
SRC_ENV = "TSX_LLAMA_CPP_SRC"  # a llama.cpp source tree or sdist tarball to use instead of fetching
_NEEDED = ("convert_hf_to_gguf.py", "gguf-py/", "conversion/", "LICENSE", "convert_lora_to_gguf.py")
_SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")


def llama_cpp_version() -> str:
    try:
        import llama_cpp
    except ImportError as exc:  # the convert extra brings it
        raise ConvertError(f"llama-cpp-python is not installed ({exc}); install the project with the [convert] extra") from None
    return llama_cpp.__version__


def _extract(sdist: Path, target: Path) -> None:
    """Copy only the converter, its ``conversion`` package, ``gguf-py`` and the licence out of the sdist."""
    with tarfile.open(sdist) as tar, atomic_dir(target) as tmp:
        members = []
        for member in tar.getmembers():
            parts = member.name.split("/", 3)  # llama_cpp_python-X/vendor/llama.cpp/<rest>
            if len(parts) == 4 and parts[1:3] == ["vendor", "llama.cpp"] and member.isfile() and (
                    parts[3] in _NEEDED or parts[3].startswith(("gguf-py/", "conversion/"))):
                member.name = parts[3]
                members.append(member)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise ConvertError(f"{sdist} has no vendor/llama.cpp/convert_hf_to_gguf.py; is it a llama-cpp-python sdist?")
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=members, **kwargs)


def _download_sdist(version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if found:
        return found[0]
    log.info("fetching the llama-cpp-python %s sdist with pip (once; it carries llama.cpp's converter)", version)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), f"llama-cpp-python=={version}"]
    proc = childproc.run(cmd)
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise ConvertError(
            f"could not fetch the llama-cpp-python {version} sdist with pip (it carries llama.cpp's converter):\n{tail}\n"
            f"Point ${SRC_ENV} at a copy of llama_cpp_python-{version}.tar.gz to work offline.")
    return found[0]


def converter_dir(version: str | None = None, cache_root: str | os.PathLike[str] | None = None) -> Path:
    """The llama.cpp converter tree for ``version`` (default: the installed llama-cpp-python)."""
    version = version or llama_cpp_version()
    if env := os.environ.get(SRC_ENV):
        src = Path(env).expanduser()
        if src.is_dir():
            if not (src / "convert_hf_to_gguf.py").exists():
                raise ConvertError(f"${SRC_ENV}={src} has no convert_hf_to_gguf.py")
            return src
        if not src.name.endswith(f"-{version}.tar.gz"):
            raise ConvertError(f"${SRC_ENV}={src} is not the llama-cpp-python {version} sdist the app runs")
    root = Path(cache_root) if cache_root else models_dir() / ".llama-cpp-src"
    target = root / version
    if all((target / s).exists() for s in _SCRIPTS) and (target / "gguf-py" / "gguf" / "__init__.py").exists():
        return target  # (a tree extracted before the LoRA converter was needed lacks it: extracted again)
    sdist = Path(env).expanduser() if env else _download_sdist(version, root / ".download")
    _extract(sdist, target)
    shutil.rmtree(root / ".download", ignore_errors=True)
    return target


def script_env(src: Path) -> dict[str, str]:
    """The environment llama.cpp's conversion scripts run in: their own gguf-py first, never a hub."""
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    # Its own gguf-py must win over any installed `gguf` package (they drift apart).
    env["PYTHONPATH"] = os.pathsep.join([str(src / "gguf-py"), str(src)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def run_script(script: str, args: list[str], outfile: Path, what: str, name: str, src: Path | None = None) -> float:
    """Run one of llama.cpp's conversion scripts from the sdist with its own gguf-py; returns seconds.

    ``what`` names the thing converted in errors, ``name`` the converter ("converter", "LoRA converter").
    """
    import time

    src = src or converter_dir()
    path = src / script
    if not path.exists():
        raise ConvertError(f"{src} has no {script}")
    start = time.perf_counter()
    # It dies with us (process group + parent-death signal): a killed export leaves no orphan writing.
    proc = childproc.run([sys.executable, str(path), *args], env=script_env(src))
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise ConvertError(f"llama.cpp's {name} failed on {what}:\n{tail}")
    if not outfile.exists() or outfile.stat().st_size == 0:
        raise ConvertError(f"llama.cpp's {name} reported success but wrote nothing to {outfile}")
    return time.perf_counter() - start


def run_convert(model_dir: Path, outfile: Path, outtype: str, src: Path | None = None) -> float:
    """Run llama.cpp's ``convert_hf_to_gguf.py`` on ``model_dir``; returns seconds taken."""
    if outtype not in CONVERT_TYPES:
        raise ConvertError(f"llama.cpp's converter writes {', '.join(CONVERT_TYPES)}, not {outtype}")
    return run_script("convert_hf_to_gguf.py", [str(model_dir), "--outfile", str(outfile), "--outtype", outtype],
                      outfile, str(model_dir), "converter", src)


def quantize(src: Path, dst: Path, qtype: str, threads: int | None = None) -> float:
    """Quantise a GGUF with llama.cpp's quantize API; returns seconds taken."""
    import time

    import llama_cpp

    if qtype not in QUANT_TYPES:
        raise ConvertError(f"unknown quantisation {qtype}; known: {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[qtype])
    params.nthread = threads or (os.cpu_count() or 1)
    start = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0 or not dst.exists():
        raise ConvertError(f"llama.cpp could not quantise {src.name} to {qtype} (return code {rc})")
    return time.perf_counter() - start
