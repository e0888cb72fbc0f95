"""Source patches to the llama.cpp that the project builds (``packaging/llamacpp_wheel.py``), as a table.

Each patch is a list of exact replacements in one file of the sdist's ``vendor/llama.cpp``; every
``old`` text must occur exactly once, so a new llama.cpp version that moved the code fails the build
loudly instead of building something unpatched. The table's text is part of the wheel's build key:
changing a patch means a new build, never a reused wheel.

``plain-for-batches`` (issue 10). On x86, ggml repacks Q4_K weights into an interleaved layout
(``CPU_REPACK``) whose GEMV decodes faster than the plain layout, but whose GEMM processes long
batches more slowly: on the bundled 1.5B at 2 threads, 128-token prompts ran at 98 tok/s repacked
against 124 tok/s plain, while decoding ran at 13.1 against 11.1 tok/s. With the patch a repacked
Q4_K weight also keeps its original bytes (right after the repacked ones, in the same buffer, so they
live and die together), and a matrix multiplication with at least 32 rows of activations (a prompt
batch; not decoding, not side-by-side decoding of fewer than 32 sentences) runs ggml's own plain
kernels on them. The result for such batches is the plain path's, bit for bit; decoding keeps the
repacked kernels. The price is memory: the 1.5B's Q4_K weights are held twice (+597 MiB; the 0.5B,
+28 MiB). ``GGML_CPU_REPACK_PLAIN_MIN_ROWS`` sets the threshold; ``0`` restores upstream behaviour
(no copy, no extra memory). x86 only: on ARM, upstream's repacked Q4_K GEMM (i8mm) is the faster one
on prompts (llama.cpp #16739), so the patch compiles to nothing there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

REPACK_CPP = "ggml/src/ggml-cpu/repack.cpp"


@dataclass(frozen=True)
class Patch:
    name: str
    file: str  # relative to vendor/llama.cpp
    replacements: tuple[tuple[str, str], ...]


PLAIN_FOR_BATCHES = Patch("plain-for-batches", REPACK_CPP, (
    ('#include "repack.h"\n',
     '''#include "repack.h"
#include "ops.h"
#include <cstdlib>

// tsx-medtrans patch plain-for-batches (packaging/ggml_patches.py): a repacked Q4_K weight keeps its
// original bytes after the repacked ones, and matmuls of at least tsx_plain_min_rows() activation
// rows (prompt batches) run the plain kernels on them; the repacked GEMM is slower there on x86.
static int64_t tsx_plain_min_rows() {
    static const int64_t rows = [] {
        const char * v = getenv("GGML_CPU_REPACK_PLAIN_MIN_ROWS");
        return v && *v ? (int64_t) atoll(v) : (int64_t) 32;
    }();
    return rows;
}

static bool tsx_keeps_plain(const struct ggml_tensor * t) {
#if defined(__x86_64__) || defined(_M_X64)
    return tsx_plain_min_rows() > 0 && t->type == GGML_TYPE_Q4_K && ggml_n_dims(t) == 2;
#else
    GGML_UNUSED(t);
    return false;  // measured on x86 only; on ARM upstream's repacked Q4_K GEMM is the faster one
#endif
}
'''),
    ('''    void forward_mul_mat(ggml_compute_params * params, ggml_tensor * op) {
        const ggml_tensor * src0 = op->src[0];
''',
     '''    void forward_mul_mat(ggml_compute_params * params, ggml_tensor * op) {
        if (tsx_keeps_plain(op->src[0]) && ggml_nrows(op->src[1]) >= tsx_plain_min_rows()) {
            ggml_tensor plain_src0 = *op->src[0];
            plain_src0.data  = (char *) op->src[0]->data + ggml_nbytes(op->src[0]);
            plain_src0.extra = nullptr;
            ggml_tensor plain_op = *op;
            plain_op.src[0] = &plain_src0;
            ggml_compute_forward_mul_mat(params, &plain_op);
            return;
        }
        const ggml_tensor * src0 = op->src[0];
'''),
    ('''    auto OK            = tensor_traits->repack(tensor, data, size);

    GGML_ASSERT(OK == 0);
''',
     '''    auto OK            = tensor_traits->repack(tensor, data, size);

    GGML_ASSERT(OK == 0);
    if (tsx_keeps_plain(tensor)) {
        memcpy((char *) tensor->data + size, data, size);
    }
'''),
    ('static size_t ggml_backend_cpu_repack_buffer_type_get_alignment(ggml_backend_buffer_type_t buft) {',
     '''static size_t ggml_backend_cpu_repack_buffer_type_get_alloc_size(ggml_backend_buffer_type_t buft,
                                                                   const struct ggml_tensor * tensor) {
    return tsx_keeps_plain(tensor) ? 2 * ggml_nbytes(tensor) : ggml_nbytes(tensor);

    GGML_UNUSED(buft);
}

static size_t ggml_backend_cpu_repack_buffer_type_get_alignment(ggml_backend_buffer_type_t buft) {'''),
    ('                           /* .get_alloc_size   = */ nullptr,  // defaults to ggml_nbytes\n'
     '                           /* .is_host          = */ nullptr,\n'
     '                           },\n'
     '        /* .device  = */ ggml_backend_reg_dev_get(ggml_backend_cpu_reg(), 0),\n'
     '        /* .context = */ new ggml::cpu::repack::extra_buffer_type(),',
     '                           /* .get_alloc_size   = */ ggml_backend_cpu_repack_buffer_type_get_alloc_size,\n'
     '                           /* .is_host          = */ nullptr,\n'
     '                           },\n'
     '        /* .device  = */ ggml_backend_reg_dev_get(ggml_backend_cpu_reg(), 0),\n'
     '        /* .context = */ new ggml::cpu::repack::extra_buffer_type(),'),
))

PATCHES: tuple[Patch, ...] = (PLAIN_FOR_BATCHES,)


def patches_digest(patches: tuple[Patch, ...] = PATCHES) -> str:
    """A hash of the patches' full text, for the wheel's build key."""
    text = json.dumps([[p.name, p.file, [list(r) for r in p.replacements]] for p in patches])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def apply_patches(llama_cpp_root: Path, patches: tuple[Patch, ...] = PATCHES) -> list[str]:
    """Apply every patch to the llama.cpp tree at ``llama_cpp_root``; returns the names applied."""
    for patch in patches:
        path = llama_cpp_root / patch.file
        text = path.read_text(encoding="utf-8")
        for old, new in patch.replacements:
            count = text.count(old)
            if count != 1:
                raise SystemExit(f"patch {patch.name}: expected one occurrence in {patch.file}, found {count} "
                                 f"(another llama.cpp version?): {old.splitlines()[0][:80]!r}")
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
    return [p.name for p in patches]
