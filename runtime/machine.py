"""What this computer can give a model: free memory, the memory a model needs, decode threads."""

from __future__ import annotations

import os
from pathlib import Path

from medcore.models import ModelError
from runtime.gguf_header import GGUFInfo
from runtime.options import LoadOptions

# Headroom for llama.cpp's compute buffers and the process itself, on top of weights and KV cache.
_OVERHEAD_BYTES = 200 * 1024**2


def available_memory() -> int | None:
    """Bytes of RAM this process can still use (MemAvailable, capped by a cgroup limit), if known."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            import psutil  # optional: macOS / Windows

            avail = int(psutil.virtual_memory().available)
        except Exception:
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def estimate_memory(info: GGUFInfo, options: LoadOptions) -> int:
    """RAM needed to run ``info`` with ``options``: CPU-resident weights + KV cache + buffers."""
    layers = max(info.n_layers, 1)
    on_gpu = min(max(options.n_gpu_layers, 0), layers) / layers if options.n_gpu_layers >= 0 else 1.0
    weights = int(info.size * (1.0 - on_gpu))
    logits = info.n_vocab * min(options.n_batch, options.n_ctx) * 4
    return weights + info.kv_cache_bytes(options.n_ctx) + logits + _OVERHEAD_BYTES


def check_memory(info: GGUFInfo, options: LoadOptions, available: int | None = None) -> int:
    """Raise :class:`ModelError` if the estimate exceeds the available RAM; return the estimate."""
    need = estimate_memory(info, options)
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ModelError(
            f"{info.path.name} is too large for this computer's free memory: it needs about "
            f"{need / 1024**3:.1f} GB with a context of {options.n_ctx} tokens, and {available / 1024**3:.1f} GB are "
            "available. Close other programs, lower the context size, or choose a smaller model."
        )
    return need


def default_threads() -> int:
    """Physical-ish core count: llama.cpp decodes slower with hyper-threads than without."""
    count = os.cpu_count() or 2
    return max(1, count // 2) if count > 4 else count
