"""The one door to llama.cpp: load its CPU backend, describe it, and open models through it.

Every part of the project that runs a GGUF in llama.cpp (the engine, ``tsx-eval``'s llama.cpp
backend, the converter's ``verify``, the benchmarks, the tests) opens it with :func:`open_llama`, so
the three things below happen the same way everywhere. No Qt, no torch; ``llama_cpp`` is imported
only when a function here is called.

**A portable build.** The project builds llama-cpp-python itself (``packaging/llamacpp_wheel.py``,
``make`` does it) with ``GGML_NATIVE=OFF GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON``: the CPU
backend is not linked into ``libggml`` but shipped as one shared library per instruction-set level
(``libggml-cpu-haswell.so``, ``ggml-cpu-zen4.dll``, …) beside it in ``llama_cpp/lib``. ggml scores
each against the running CPU and loads the best one — but only from the folders it is told about
(the executable's folder and the working directory by default), and llama-cpp-python 0.3.36 never
tells it about ``llama_cpp/lib``. :func:`ensure_backends` does, once per process, before any model
is opened.

**No AMX.** A native build on a CPU with AMX (and the ``sapphirerapids`` variant of an all-variants
build) repacks weights into an AMX buffer (``load_tensors: AMX model buffer size = …``) and crashes
on the first decode (upstream llama.cpp #20824). The wheel is built without any AMX variant
(:data:`EXCLUDED_VARIANTS`); if a CPU backend with AMX compiled in is found anyway (a native build
from pip's cache, a stray ``sapphirerapids`` library), :func:`open_llama` turns weight repacking off,
the one configuration known to work there, and says so.

**A switch.** ``TSX_NO_REPACK=1`` (or ``repack=False``, the desktop's *Weight repacking* setting)
loads models with ``llama_model_params.use_extra_bufts = false``: no CPU_REPACK (or AMX) buffer,
plain weights. Slower, but the way out the day another CPU-specific kernel misbehaves.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV_NO_REPACK = "TSX_NO_REPACK"
_TRUE = {"1", "true", "yes", "on"}

# ggml's x86 CPU variants (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS) and the instruction-set
# features each is compiled for, in ggml's order. ggml names the features of a loaded backend the
# same way (ggml_backend_get_features), which is how a loaded variant is recognised on every OS.
X86_VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("SSE42",),
    "sandybridge": ("SSE42", "AVX"),
    "ivybridge": ("SSE42", "AVX", "F16C"),
    "piledriver": ("SSE42", "AVX", "F16C", "FMA"),
    "haswell": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"),
    "skylakex": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"),
    "cannonlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"),
    "cascadelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"),
    "icelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"),
    "cooperlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"),
    "zen4": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"),
    "alderlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"),
    "sapphirerapids": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI",
                       "AVX512_BF16", "AMX_TILE", "AMX_INT8"),
}
# ggml builds these only with GCC/Clang (``if (NOT MSVC)``): an MSVC build of Windows lacks them.
NOT_ON_MSVC = ("ivybridge", "piledriver", "cooperlake", "zen4", "sapphirerapids")
# Never built, shipped or loaded: the AMX path crashes (llama.cpp #20824).
EXCLUDED_VARIANTS = ("sapphirerapids",)
AMX_FEATURES = ("AMX_TILE", "AMX_INT8", "AMX_BF16")
# What the project builds and ships (see packaging/llamacpp_wheel.py for why these and not all 13):
# a baseline for every x86-64 CPU, then one variant per instruction-set level clinic PCs and servers
# actually have. The best of them that the CPU supports is loaded; a CPU between two levels gets the
# lower one (ivybridge/piledriver → sandybridge, cannonlake → skylakex, cooperlake → cascadelake,
# sapphirerapids and later Xeons → zen4, which is the same AVX-512 set without AMX).
DEFAULT_VARIANTS = ("x64", "sse42", "sandybridge", "haswell", "alderlake", "skylakex", "cascadelake",
                    "icelake", "zen4")
_VARIANT_FILE = re.compile(r"^(?:lib)?ggml-cpu-([A-Za-z0-9_.]+?)\.(?:so|dll|dylib)$")


def variant_of_file(name: str) -> str | None:
    """``libggml-cpu-haswell.so`` / ``ggml-cpu-haswell.dll`` → ``haswell``; anything else → None."""
    m = _VARIANT_FILE.match(name)
    return m.group(1) if m else None


def repack_disabled_by_env(environ: dict[str, str] | None = None) -> bool:
    """True when ``$TSX_NO_REPACK`` asks for weight repacking to be off."""
    return (environ if environ is not None else os.environ).get(ENV_NO_REPACK, "").strip().lower() in _TRUE


def resolve_repack(repack: bool | None, environ: dict[str, str] | None = None) -> bool:
    """The asked-for repacking: an explicit ``False`` always wins; ``None`` means "unless the env says no".

    ``TSX_NO_REPACK=1`` also overrides an explicit ``True`` (the setting of a desktop whose CPU path
    misbehaves must not need the app to start first).
    """
    return repack is not False and not repack_disabled_by_env(environ)


def lib_dir() -> Path:
    """The folder llama-cpp-python loads its libraries from (``$LLAMA_CPP_LIB_PATH`` or ``llama_cpp/lib``)."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("llama-cpp-python is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def shipped_variants(folder: Path | None = None) -> list[str]:
    """The CPU variant libraries present in llama-cpp-python's library folder (empty for a non-DL build)."""
    folder = folder or lib_dir()
    if not folder.is_dir():
        return []
    names = {variant_of_file(p.name) for p in folder.iterdir()}
    return sorted(n for n in names if n)


class BackendError(RuntimeError):
    """llama.cpp's CPU backend cannot be loaded, or a model would run on a path known to crash."""


@dataclass
class RuntimeInfo:
    """What llama.cpp runs on in this process (the self-test prints it)."""

    llama_cpp_python: str = ""
    lib_dir: str = ""
    backend_dl: bool = False            # CPU backend loaded at run time from a variant library
    variant: str | None = None          # e.g. "zen4"; None for a build with the CPU backend linked in
    variant_file: str | None = None
    shipped_variants: list[str] = field(default_factory=list)
    features: dict[str, str] = field(default_factory=dict)   # ggml_backend_get_features of the CPU backend
    cpu_description: str = ""           # the CPU device's description (the CPU model name)
    backends: list[str] = field(default_factory=list)
    amx: bool = False                   # an AMX-enabled CPU backend is loaded (repacking is then forced off)
    repack_default: bool = True         # what open_llama(repack=None) does in this process
    # The project's ggml patch plain-for-batches (packaging/ggml_patches.py): repacked Q4_K weights keep
    # a plain copy, used from this many activation rows on (prompt batches). None: the loaded CPU
    # backend lacks the patch (not the project's build); 0: turned off (GGML_CPU_REPACK_PLAIN_MIN_ROWS=0).
    plain_batch_rows: int | None = None
    system_info: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Feature(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


_lock = threading.RLock()
_info: RuntimeInfo | None = None
_ggml: ctypes.CDLL | None = None


def _load_ggml(folder: Path) -> ctypes.CDLL:
    """The libggml that libllama itself uses (a second copy would have its own, empty backend registry).

    The wheel holds ``libggml.so``, ``libggml.so.0`` and ``libggml.so.0.x.y`` as three separate files, and
    libllama links ``libggml.so.0``: opening ``libggml.so`` by path would load another instance. So on
    Linux/macOS the symbols are looked up through libllama's own handle (``dlsym`` searches its
    dependencies); on Windows ``ggml.dll`` from the same folder is the module llama.dll already loaded.
    """
    import llama_cpp.llama_cpp as C

    if sys.platform == "win32":
        path = folder / "ggml.dll"
        if not path.exists():
            raise FileNotFoundError(f"ggml.dll not found in {folder}")
        lib = ctypes.CDLL(str(path))
    else:
        lib = ctypes.CDLL(C._lib._name, handle=C._lib._handle)  # own function cache, same handle
    vp, cp, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    for fn, res, args in (
        ("ggml_backend_load_all_from_path", None, [cp]),
        ("ggml_backend_reg_count", sz, []),
        ("ggml_backend_reg_get", vp, [sz]),
        ("ggml_backend_reg_name", cp, [vp]),
        ("ggml_backend_reg_get_proc_address", vp, [vp, cp]),
        ("ggml_backend_dev_count", sz, []),
        ("ggml_backend_dev_get", vp, [sz]),
        ("ggml_backend_dev_type", ctypes.c_int, [vp]),
        ("ggml_backend_dev_description", cp, [vp]),
        ("ggml_backend_dev_backend_reg", vp, [vp]),
    ):
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


def _reg_features(lib: ctypes.CDLL, reg: int) -> dict[str, str]:
    addr = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    if not addr:
        return {}
    get = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), ctypes.c_void_p)(addr)
    arr = get(reg)
    out: dict[str, str] = {}
    i = 0
    while arr and arr[i].name:
        out[arr[i].name.decode()] = (arr[i].value or b"").decode()
        i += 1
    return out


def _mapped_variant_file() -> str | None:
    """The CPU variant library mapped into this process (Linux: /proc/self/maps)."""
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = {line.split()[-1] for line in text.splitlines() if "ggml-cpu-" in line}
    files = sorted(f for f in found if variant_of_file(Path(f).name))
    return files[0] if len(files) == 1 else (", ".join(files) or None)


# ggml_backend_get_features does not name these two (SSE4.2 shows as SSE3/SSSE3, AMX as AMX_INT8).
_NOT_REPORTED = {"SSE42", "AMX_TILE"}
_REPORTED = {f for fs in X86_VARIANTS.values() for f in fs} - _NOT_REPORTED


def reported_features(variant: str) -> set[str]:
    """The names ``ggml_backend_get_features`` gives for a backend built as ``variant``."""
    feats = set(X86_VARIANTS[variant])
    return (feats - _NOT_REPORTED) | ({"SSE3", "SSSE3"} if "SSE42" in feats else set())


def variant_from_features(features: dict[str, str]) -> str | None:
    """The variant whose compile-time feature set is what the loaded backend reports."""
    have = {k for k in features if k in _REPORTED | {"SSE3", "SSSE3"}}
    for name in X86_VARIANTS:
        if reported_features(name) == have:
            return name
    return None


def ensure_backends() -> RuntimeInfo:
    """Load llama.cpp's CPU backend (best variant from ``llama_cpp/lib``) once; return what was loaded.

    Safe to call from any thread, any number of times. Raises :class:`BackendError` when no CPU backend can
    be loaded (a backend-DL build whose variant libraries are missing).
    """
    global _info, _ggml
    with _lock:
        if _info is not None:
            return _info
        import llama_cpp

        folder = lib_dir()
        lib = _load_ggml(folder)
        _install_hooks()
        shipped = shipped_variants(folder)
        if shipped and not _cpu_reg(lib):
            # Only our folder: ggml's default search (executable folder, cwd) could pick up strays.
            # Its "load_backend: loaded CPU backend from …" line is kept out of the user's stderr.
            _tls.quiet = True
            try:
                lib.ggml_backend_load_all_from_path(str(folder).encode())
            finally:
                _tls.quiet = False
        reg = _cpu_reg(lib)
        if not reg:
            raise BackendError(f"llama.cpp could not load a CPU backend from {folder} (variants there: {shipped or 'none'})")
        features = _reg_features(lib, reg)
        description = ""
        for i in range(lib.ggml_backend_dev_count()):
            dev = lib.ggml_backend_dev_get(i)
            if lib.ggml_backend_dev_backend_reg(dev) == reg:
                description = (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace").strip()
                break
        backends = [(lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) or b"").decode()
                    for i in range(lib.ggml_backend_reg_count())]
        mapped = _mapped_variant_file() if shipped else None
        variant = (variant_of_file(Path(mapped).name) if mapped and "," not in mapped else None) or (
            variant_from_features(features) if shipped else None)
        amx = any(k in features for k in AMX_FEATURES) or variant in EXCLUDED_VARIANTS
        try:
            system_info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
        except Exception:  # informational only
            system_info = ""
        _ggml = lib
        plain_rows = plain_batch_rows(mapped) if mapped and "," not in mapped else None
        _info = RuntimeInfo(
            llama_cpp_python=getattr(llama_cpp, "__version__", ""), lib_dir=str(folder), backend_dl=bool(shipped),
            variant=variant, variant_file=mapped, shipped_variants=shipped, features=features,
            cpu_description=description, backends=backends, amx=amx,
            repack_default=resolve_repack(None) and not amx, plain_batch_rows=plain_rows, system_info=system_info)
        if amx:
            import logging

            logging.getLogger(__name__).warning(
                "llama.cpp's CPU backend has AMX compiled in (%s): weight repacking is turned off for every "
                "model (the AMX path crashes, llama.cpp #20824). Rebuild llama-cpp-python with `make` for the "
                "portable build.", variant or "native build")
        return _info


PLAIN_ROWS_ENV = "GGML_CPU_REPACK_PLAIN_MIN_ROWS"
PLAIN_ROWS_DEFAULT = 32  # the patch's own default (packaging/ggml_patches.py)


def plain_batch_rows(variant_file: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> int | None:
    """From how many activation rows repacked Q4_K weights use their plain copy in this CPU backend
    library: None when the library lacks the plain-for-batches patch (it reads ``PLAIN_ROWS_ENV``)."""
    try:
        patched = PLAIN_ROWS_ENV.encode() in Path(variant_file).read_bytes()
    except OSError:
        return None
    if not patched:
        return None
    value = (os.environ if env is None else env).get(PLAIN_ROWS_ENV, "")
    if not value:
        return PLAIN_ROWS_DEFAULT
    number = re.match(r"\s*([+-]?\d+)", value)  # as the patch's atoll() reads it: no number is 0, off
    return max(0, int(number.group(1))) if number else 0


def _cpu_reg(lib: ctypes.CDLL) -> int | None:
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(dev) == 0:  # GGML_BACKEND_DEVICE_TYPE_CPU
            return lib.ggml_backend_dev_backend_reg(dev)
    return None


def runtime_info() -> dict[str, Any]:
    """:func:`ensure_backends` as a plain dict (JSON-ready)."""
    return ensure_backends().as_dict()


# --- model loading -----------------------------------------------------------------------------------

_tls = threading.local()
# "lora for 'blk.4.ffn_down.weight' cannot use buft 'CPU_REPACK', fallback to CPU": a LoRA's own small
# tensors cannot live in the repacked layout of the weight they adapt, so they go to a plain CPU
# buffer. Said once per adapted repacked weight on every load with runtime adapters; harmless.
_EXPECTED_WARNING = re.compile(rb"lora for '[^']*' cannot use buft '[^']*', fallback to CPU")
_patched = False
# load_tensors lines of the last model opened on each thread: "CPU_REPACK model buffer size = 84.94 MiB"
_BUFFER_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([0-9.]+) MiB")


def _install_hooks() -> None:
    """Wrap ``llama_model_default_params`` (per-thread use_extra_bufts) and the log (buffer lines), once."""
    global _patched
    with _lock:
        if _patched:
            return
        import llama_cpp.llama_cpp as C
        from llama_cpp import _logger

        original_defaults = C.llama_model_default_params

        def model_default_params():
            params = original_defaults()
            wanted = getattr(_tls, "use_extra_bufts", None)
            if wanted is not None:
                params.use_extra_bufts = wanted
            return params

        model_default_params.__wrapped__ = original_defaults  # type: ignore[attr-defined]
        C.llama_model_default_params = model_default_params

        forward = _logger.llama_log_callback

        @C.llama_log_callback
        def log_callback(level, text, user_data):
            lines = getattr(_tls, "log_lines", None)
            if lines is not None and text:
                lines.append(text.decode("utf-8", errors="replace"))
            if level == 3 and text and _EXPECTED_WARNING.search(text):
                return  # expected for every runtime LoRA on a repacked weight (runtime.adapters): not news
            if level in (3, 4) or not getattr(_tls, "quiet", False):  # GGML_LOG_LEVEL_WARN, _ERROR always
                forward(level, text, user_data)

        _install_hooks.log_callback = log_callback  # keep the ctypes callback alive
        C.llama_log_set(log_callback, ctypes.c_void_p(0))
        _patched = True


@contextmanager
def _loading(use_extra_bufts: bool) -> Iterator[list[str]]:
    _tls.use_extra_bufts = use_extra_bufts
    _tls.log_lines = lines = []
    try:
        yield lines
    finally:
        _tls.use_extra_bufts = None
        _tls.log_lines = None


def model_buffers(log_text: str) -> dict[str, float]:
    """``{"CPU_REPACK": 84.94, "CPU_Mapped": 373.7}`` from a llama.cpp load log (MiB per buffer type)."""
    out: dict[str, float] = {}
    for name, size in _BUFFER_LINE.findall(log_text):
        out[name] = out.get(name, 0.0) + float(size)
    return out


def open_llama(model_path: str | os.PathLike, *, repack: bool | None = None, **kwargs: Any):
    """``llama_cpp.Llama(model_path, **kwargs)`` with the CPU backend loaded and repacking decided here.

    ``repack``: ``None`` = on unless ``$TSX_NO_REPACK`` is set; ``False`` = off; ``True`` = on unless
    ``$TSX_NO_REPACK`` is set. Always off when the loaded CPU backend has AMX. The returned object
    carries ``tsx_repack`` (what was used) and ``tsx_buffers`` (the weight buffers llama.cpp made,
    MiB per type, parsed from its load log).
    """
    info = ensure_backends()
    _install_hooks()
    import llama_cpp

    use = resolve_repack(repack) and not info.amx
    with _loading(use) as lines:
        llm = llama_cpp.Llama(model_path=str(model_path), **kwargs)
    llm.tsx_repack = bool(llm.model_params.use_extra_bufts)
    llm.tsx_buffers = model_buffers("".join(lines))
    if llm.tsx_repack != use:  # the hook did not reach the model params: refuse to guess
        llm.close()
        raise BackendError("could not set use_extra_bufts for this llama-cpp-python version")
    if "AMX" in llm.tsx_buffers:
        llm.close()
        raise BackendError("llama.cpp made an AMX weight buffer (crashes on decode, llama.cpp #20824)")
    return llm


# --- ggml tensors (attention capture) ----------------------------------------------------------------

_tensor_api: ctypes.CDLL | None = None


def ggml_tensor_api() -> ctypes.CDLL:
    """ggml's tensor functions from the ``libggml-base`` that libllama itself uses, signatures set.

    ``ggml_get_name``, ``ggml_nelements``, ``ggml_nbytes`` and ``ggml_backend_tensor_get``: what an
    eval callback needs to pick a tensor by name and copy it out (``runtime.attention_capture``). As in
    :func:`_load_ggml`, the symbols are found through libllama's own handle on Linux/macOS (its
    dependencies, the very copy it computes with), and in ``ggml-base.dll`` beside it on Windows.
    """
    global _tensor_api
    with _lock:
        if _tensor_api is not None:
            return _tensor_api
        ensure_backends()
        import llama_cpp.llama_cpp as C

        if sys.platform == "win32":
            path = lib_dir() / "ggml-base.dll"
            if not path.exists():
                raise FileNotFoundError(f"ggml-base.dll not found in {lib_dir()}")
            lib = ctypes.CDLL(str(path))
        else:
            lib = ctypes.CDLL(C._lib._name, handle=C._lib._handle)
        vp = ctypes.c_void_p
        for fn, res, args in (
            ("ggml_get_name", ctypes.c_char_p, [vp]),
            ("ggml_nelements", ctypes.c_int64, [vp]),
            ("ggml_nbytes", ctypes.c_size_t, [vp]),
            ("ggml_backend_tensor_get", None, [vp, vp, ctypes.c_size_t, ctypes.c_size_t]),
        ):
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        _tensor_api = lib
        return lib
