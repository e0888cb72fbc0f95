"""Runtime LoRA adapters: a stack of GGUF LoRAs that llama.cpp applies on top of a quantised base.

The adapter files, their provenance sidecars and the rules of a valid stack (same base, training
order) are :mod:`medcore.lora`'s; this module puts a checked stack into llama.cpp. llama.cpp keeps
the base as it is and adds every adapter's ``scale * (alpha / r) * B @ A @ x`` at run time.

Low-level llama-cpp-python API used (0.3.36; its high-level ``lora_path`` takes one adapter and
turns mmap off): ``llama_adapter_lora_init(model, path)`` per file, ``llama_set_adapters_lora(ctx,
adapters, n, scales)`` for the whole stack (n = 0 switches them off: the base alone, no reload),
``llama_adapter_lora_free`` when the model closes. The stack is a per-context setting: the
``Llama``'s own context, the parallel decoder's and the attention capture's each get it through
:func:`set_stack`. No Qt, no torch; ``llama_cpp`` is imported only when a model is opened.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medcore.lora import AdapterError, LoraAdapter, as_adapters, check_stack
from medcore.models import sha256_file


def _free_handles(llm: Any, llama_cpp: Any) -> None:
    """Adapters off, then freed. ``llama_cpp`` is passed in: this also runs from ``Llama.__del__`` at
    interpreter exit, when importing is no longer possible."""
    handles = getattr(llm, "tsx_lora_handles", None) or []
    ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
    if ctx and handles:
        llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
    for handle in handles:
        llama_cpp.llama_adapter_lora_free(handle)
    llm.tsx_lora_handles = []


def attach(llm: Any, adapters: Sequence[LoraAdapter]) -> None:
    """Load ``adapters`` into an open ``llama_cpp.Llama`` and make them active (in this order)."""
    import llama_cpp

    handles: list[Any] = []
    llm.tsx_lora_handles = handles
    llm.tsx_adapters = list(adapters)
    llm.tsx_adapters_active = False
    if not adapters:
        return
    llm._stack.callback(_free_handles, llm, llama_cpp)  # on close(), before the context and the model go
    for adapter in adapters:
        handle = llama_cpp.llama_adapter_lora_init(llm._model.model, str(adapter.path).encode("utf-8"))
        if not handle:
            raise AdapterError(
                f"llama.cpp could not load the LoRA adapter {adapter.path.name}: it does not fit this model "
                "(another architecture or other tensor shapes)")
        handles.append(handle)
    set_active(llm, True)


def set_stack(ctx: Any, llm: Any, active: bool) -> bool:
    """Put ``llm``'s loaded adapter stack on the llama.cpp context ``ctx`` (``active``) or take it off.

    ``ctx`` is the ``Llama``'s own context or another one made on its model. False when llama.cpp refuses.
    """
    import llama_cpp

    handles = getattr(llm, "tsx_lora_handles", None) or []
    n = len(handles) if active else 0
    arr = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*handles) if n else None
    scales = (ctypes.c_float * n)(*[a.scale for a in llm.tsx_adapters]) if n else None
    return llama_cpp.llama_set_adapters_lora(ctx, arr, n, scales) == 0


def set_active(llm: Any, active: bool) -> None:
    """Switch the loaded adapter stack on or off (off: the base model alone). No reload."""
    if not set_stack(llm._ctx.ctx, llm, active):
        raise AdapterError("llama.cpp refused the LoRA adapter stack")
    llm.tsx_adapters_active = bool(active and getattr(llm, "tsx_lora_handles", None))
    # The KV cache and llama-cpp-python's prompt cache were computed with the other weights.
    llm.reset()
    llm._ctx.kv_cache_clear()


def open_llama_with_adapters(model_path: str | os.PathLike[str],
                             adapters: Sequence[LoraAdapter | str | os.PathLike[str]] = (), *,
                             base_sha256: str | None = None, hasher: Callable[[Path], str] | None = None,
                             repack: bool | None = None, **kwargs: Any):
    """:func:`runtime.llamacpp.open_llama` plus a runtime LoRA stack, checked against the base first.

    ``base_sha256``: the base GGUF's sha256 if known; else ``hasher(path)`` (default: hash the file).
    The returned ``Llama`` carries ``tsx_adapters`` (the stack), ``tsx_adapters_active`` and
    ``tsx_base_sha256`` (when adapters were given).
    """
    from runtime.llamacpp import open_llama

    model_path = Path(model_path)
    stack = as_adapters(adapters)
    if stack:
        base_sha256 = base_sha256 or (hasher or sha256_file)(model_path)
        check_stack(stack, base_sha256, model_path.name)
    llm = open_llama(model_path, repack=repack, **kwargs)
    try:
        attach(llm, stack)
    except BaseException:
        llm.close()
        raise
    llm.tsx_base_sha256 = base_sha256
    return llm


__all__ = ["attach", "open_llama_with_adapters", "set_active", "set_stack"]
