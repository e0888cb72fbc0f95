"""The portable llama.cpp: the CPU variant the loader picks, no AMX anywhere, the repacking switch."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from runtime import llamacpp as rt

ROOT = Path(__file__).resolve().parents[2]
# ggml's x86 score (ggml-cpu/arch/x86/cpu-feats.cpp): the weight of each feature a variant needs.
SCORE = {"FMA": 1, "F16C": 2, "SSE42": 4, "BMI2": 8, "AVX": 16, "AVX2": 32, "AVX_VNNI": 64, "AVX512": 128,
         "AVX512_VBMI": 256, "AVX512_BF16": 512, "AVX512_VNNI": 1024, "AMX_INT8": 2048, "AMX_TILE": 0}
# /proc/cpuinfo flags behind each feature (AVX512 = F, CD, VL, DQ, BW as ggml checks it).
CPUINFO = {"FMA": ["fma"], "F16C": ["f16c"], "SSE42": ["sse4_2"], "BMI2": ["bmi2"], "AVX": ["avx"],
           "AVX2": ["avx2"], "AVX_VNNI": ["avx_vnni"], "AVX512": ["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"],
           "AVX512_VBMI": ["avx512vbmi"], "AVX512_BF16": ["avx512_bf16"], "AVX512_VNNI": ["avx512_vnni"],
           "AMX_INT8": ["amx_int8"], "AMX_TILE": ["amx_tile"]}


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    return set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split())


def best_variant(flags: set[str], shipped: list[str]) -> str:
    """What ggml's loader must pick: the highest-scoring shipped variant whose features the CPU has."""
    ok = [v for v in shipped if all(f in flags for feat in rt.X86_VARIANTS[v] for f in CPUINFO[feat])]
    return max(ok, key=lambda v: 1 + sum(SCORE[f] for f in rt.X86_VARIANTS[v]))


# ------------------------------------------------------------------------------------- pure logic
def test_variant_file_names():
    assert rt.variant_of_file("libggml-cpu-haswell.so") == "haswell"
    assert rt.variant_of_file("ggml-cpu-zen4.dll") == "zen4"
    assert rt.variant_of_file("libggml-cpu.so") is None and rt.variant_of_file("libggml-base.so.0") is None


def test_no_amx_variant_is_built_by_default():
    assert "x64" in rt.DEFAULT_VARIANTS and "haswell" in rt.DEFAULT_VARIANTS
    for name in rt.DEFAULT_VARIANTS:
        assert name not in rt.EXCLUDED_VARIANTS and not set(rt.X86_VARIANTS[name]) & set(rt.AMX_FEATURES)
    assert [v for v, f in rt.X86_VARIANTS.items() if set(f) & set(rt.AMX_FEATURES)] == list(rt.EXCLUDED_VARIANTS)


def test_variant_from_features_matches_ggml_feature_names():
    feats = {"SSE3": "1", "SSSE3": "1", "AVX": "1", "AVX2": "1", "F16C": "1", "FMA": "1", "BMI2": "1", "SSE42": "1",
             "LLAMAFILE": "1", "OPENMP": "1", "REPACK": "1"}
    assert rt.variant_from_features(feats) == "haswell"
    assert rt.variant_from_features({"LLAMAFILE": "1", "OPENMP": "1", "REPACK": "1"}) == "x64"
    assert rt.variant_from_features({"SSE3": "1", "SSSE3": "1", "REPACK": "1"}) == "sse42"
    assert rt.variant_from_features({**feats, "AVX512": "1", "AVX512_VBMI": "1", "AVX512_VNNI": "1",
                                     "AVX512_BF16": "1"}) == "zen4"
    assert rt.variant_from_features({**feats, "AVX512": "1", "AVX512_VBMI": "1", "AVX512_VNNI": "1",
                                     "AVX512_BF16": "1", "AMX_INT8": "1"}) == "sapphirerapids"


@pytest.mark.parametrize(("env", "asked", "expected"), [
    ({}, None, True), ({}, True, True), ({}, False, False),
    ({"TSX_NO_REPACK": "1"}, None, False), ({"TSX_NO_REPACK": "yes"}, True, False),
    ({"TSX_NO_REPACK": "0"}, None, True), ({"TSX_NO_REPACK": ""}, True, True),
])
def test_repack_switch_resolution(env, asked, expected):
    assert rt.resolve_repack(asked, env) is expected


def test_plain_batch_rows_reads_the_patch_and_its_variable(tmp_path):
    lib = tmp_path / "libggml-cpu-zen4.so"
    lib.write_bytes(b"\x7fELF...GGML_CPU_REPACK_PLAIN_MIN_ROWS\0...")
    assert rt.plain_batch_rows(lib, {}) == 32
    assert rt.plain_batch_rows(lib, {rt.PLAIN_ROWS_ENV: "64"}) == 64
    assert rt.plain_batch_rows(lib, {rt.PLAIN_ROWS_ENV: "0"}) == 0
    assert rt.plain_batch_rows(lib, {rt.PLAIN_ROWS_ENV: "off"}) == 0  # as atoll() reads it
    assert rt.plain_batch_rows(lib, {rt.PLAIN_ROWS_ENV: "-3"}) == 0
    unpatched = tmp_path / "libggml-cpu-x64.so"
    unpatched.write_bytes(b"\x7fELF...")
    assert rt.plain_batch_rows(unpatched, {}) is None and rt.plain_batch_rows(tmp_path / "gone.so", {}) is None


def test_wheel_recipe_refuses_amx_and_keys_on_flags(tmp_path):
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import llamacpp_wheel as lw
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    with pytest.raises(SystemExit, match="AMX"):
        lw.parse_variants("x64 haswell sapphirerapids")
    with pytest.raises(SystemExit, match="x64"):
        lw.parse_variants("haswell")
    assert "sapphirerapids" not in lw.parse_variants("all")
    assert lw.build_key("0.3.36", ("x64", "haswell")) != lw.build_key("0.3.36", ("x64", "haswell", "zen4"))
    assert lw.build_key("0.3.36", lw.parse_variants(None)).startswith("0.3.36-portable-")
    assert "-DGGML_NATIVE=OFF" in lw.CMAKE_ARGS and "-DGGML_BACKEND_DL=ON" in lw.CMAKE_ARGS
    # the variant list is patched in ggml's CMakeLists: the AMX line goes, the kept ones stay
    cmake = tmp_path / "CMakeLists.txt"
    cmake.write_text(
        "if (GGML_CPU_ALL_VARIANTS)\n"
        '    if (GGML_SYSTEM_ARCH STREQUAL "x86")\n'
        "        ggml_add_cpu_backend_variant(x64)\n"
        "        ggml_add_cpu_backend_variant(haswell            SSE42 AVX F16C FMA AVX2 BMI2)\n"
        "        ggml_add_cpu_backend_variant(cannonlake         SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI)\n"
        "        if (NOT MSVC)\n"
        "            ggml_add_cpu_backend_variant(sapphirerapids SSE42 AVX AMX_TILE AMX_INT8)\n"
        "        endif()\n"
        '    elseif(GGML_SYSTEM_ARCH STREQUAL "ARM")\n'
        "        ggml_add_cpu_backend_variant(armv8.0_1)\n"
        "    endif()\nendif()\n")
    assert lw.patch_variants(cmake, ("x64", "haswell")) == ["x64", "haswell"]
    active = re.findall(r"^\s*ggml_add_cpu_backend_variant\((\S+?)[\s)]", cmake.read_text(), re.M)
    assert active == ["x64", "haswell", "armv8.0_1"]
    with pytest.raises(SystemExit, match="zen4"):
        lw.patch_variants(cmake, ("x64", "zen4"))


def _packaging_module(name: str):
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "packaging"))


def test_ggml_patches_apply_to_the_pinned_sdist_and_key_the_build(tmp_path):
    """Every replacement of every patch matches exactly once in the pinned llama.cpp (else the build
    stops), and the patches' text is part of the wheel's key."""
    import tarfile

    lw, gp = _packaging_module("llamacpp_wheel"), _packaging_module("ggml_patches")
    version = lw.pinned_version()
    sdist = ROOT / ".whl" / "sdist" / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        pytest.skip("the pinned sdist is fetched by the first `make` (packaging/llamacpp_wheel.py build)")
    tree = tmp_path / "llama.cpp"
    with tarfile.open(sdist) as tar:
        for patch in gp.PATCHES:
            member = tar.getmember(f"llama_cpp_python-{version}/vendor/llama.cpp/{patch.file}")
            (tree / patch.file).parent.mkdir(parents=True, exist_ok=True)
            (tree / patch.file).write_bytes(tar.extractfile(member).read())
    assert gp.apply_patches(tree) == ["plain-for-batches"]
    text = (tree / gp.REPACK_CPP).read_text()
    assert "tsx_plain_min_rows()" in text and "ggml_compute_forward_mul_mat(params, &plain_op)" in text
    with pytest.raises(SystemExit, match="expected one occurrence"):
        gp.apply_patches(tree)  # the anchors are gone once applied: a changed source is not patched blindly
    changed = (gp.Patch("x", gp.REPACK_CPP, (("a", "b"),)),)
    assert gp.patches_digest(changed) != gp.patches_digest()


# ------------------------------------------------------------------------------- the installed build
@pytest.fixture(scope="module")
def runtime():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    return rt.ensure_backends()


def test_installed_llama_cpp_is_the_portable_build(runtime):
    """`make` installs .whl/<key>/*.whl: CPU variants beside libggml, none with AMX."""
    shipped = rt.shipped_variants()
    assert runtime.backend_dl and shipped == runtime.shipped_variants
    assert {"x64", "haswell"} <= set(shipped)
    assert not set(shipped) & set(rt.EXCLUDED_VARIANTS)
    assert not list(Path(runtime.lib_dir).glob("*ggml-cpu-sapphirerapids*"))


def test_loader_picks_the_best_non_amx_variant_for_this_cpu(runtime):
    if sys.platform != "linux":
        pytest.skip("reads /proc/cpuinfo")
    expected = best_variant(cpu_flags(), runtime.shipped_variants)
    assert runtime.variant == expected, (runtime.variant, runtime.features)
    assert runtime.variant_file and runtime.variant_file.endswith(f"ggml-cpu-{expected}.so")
    assert not runtime.amx and not set(runtime.features) & set(rt.AMX_FEATURES)
    # the features ggml reports are the variant's compile-time set (plus ones every x86 build has)
    assert rt.reported_features(expected) <= set(runtime.features)
    assert rt.variant_from_features(runtime.features) == expected
    assert runtime.cpu_description and "CPU" in runtime.backends and runtime.repack_default in (True, False)
    assert runtime.plain_batch_rows == 32  # the project's build carries the plain-for-batches patch


@pytest.mark.bundled
def test_repack_switch_reaches_the_model_params(runtime, small_gguf, monkeypatch):
    monkeypatch.delenv("TSX_NO_REPACK", raising=False)
    on = rt.open_llama(small_gguf, n_ctx=64, n_threads=1, verbose=False)
    try:
        assert on.tsx_repack is True and on.model_params.use_extra_bufts is True
        assert "AMX" not in on.tsx_buffers and on.tsx_buffers  # the load log was read
        if "AVX2" in runtime.features:  # ggml's safe repacks (Q4_K, Q4_0 …) on AVX2 and up
            assert on.tsx_buffers.get("CPU_REPACK", 0) > 0
    finally:
        on.close()
    monkeypatch.setenv("TSX_NO_REPACK", "1")
    off = rt.open_llama(small_gguf, repack=True, n_ctx=64, n_threads=1, verbose=False)
    try:
        assert off.tsx_repack is False and off.model_params.use_extra_bufts is False
        assert "CPU_REPACK" not in off.tsx_buffers and "AMX" not in off.tsx_buffers
    finally:
        off.close()
    # the default params of llama-cpp-python itself are untouched outside open_llama
    import llama_cpp

    assert llama_cpp.llama_model_default_params().use_extra_bufts is True


@pytest.mark.bundled
def test_repacked_q4k_runs_prompt_batches_on_the_plain_copy(runtime, small_gguf, monkeypatch):
    """plain-for-batches (packaging/ggml_patches.py): with repacking on, a batch of >= 32 tokens gets
    the plain path's logits bit for bit, a short one the repacked kernels'; the Q4_K weights are held
    twice, and GGML_CPU_REPACK_PLAIN_MIN_ROWS=0 gives upstream ggml (one copy)."""
    import os
    import subprocess

    import numpy as np

    if "AVX2" not in runtime.features:
        pytest.skip("ggml repacks Q4_K on AVX2 and up only")
    monkeypatch.delenv("TSX_NO_REPACK", raising=False)
    monkeypatch.delenv("GGML_CPU_REPACK_PLAIN_MIN_ROWS", raising=False)
    kwargs = {"n_ctx": 256, "n_threads": 2, "verbose": False, "logits_all": True}
    on, off = rt.open_llama(small_gguf, repack=True, **kwargs), rt.open_llama(small_gguf, repack=False, **kwargs)
    try:
        ids = on.tokenize("患者男性，62岁，因突发胸痛3小时入院。既往高血压病史10年，规律服用氨氯地平，"
                          "否认糖尿病史。查体：血压150/90 mmHg，双肺呼吸音清。".encode(), add_bos=False)
        assert len(ids) >= 40

        def logits(llm, n: int) -> np.ndarray:
            llm.reset()
            llm.eval(ids[:n])
            return np.array(llm.scores[:n])

        assert np.array_equal(logits(on, 40), logits(off, 40))  # a prompt batch: the plain kernels
        assert not np.array_equal(logits(on, 8), logits(off, 8))  # a short batch: the repacked ones
        doubled = on.tsx_buffers["CPU_REPACK"]
    finally:
        on.close()
        off.close()
    probe = ("import sys; from runtime import llamacpp as rt; rt.ensure_backends(); "
             "llm = rt.open_llama(sys.argv[1], repack=True, n_ctx=64, n_threads=1, verbose=False); "
             "print(llm.tsx_buffers.get('CPU_REPACK', 0))")
    upstream = subprocess.run([sys.executable, "-c", probe, str(small_gguf)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "GGML_CPU_REPACK_PLAIN_MIN_ROWS": "0"}, timeout=120)
    assert upstream.returncode == 0, upstream.stderr[-2000:]
    single = float(upstream.stdout.split()[-1])
    assert single > 0 and doubled == pytest.approx(2 * single, rel=0.02)


@pytest.mark.bundled
def test_amx_backend_forces_repacking_off(runtime, small_gguf, monkeypatch):
    """A CPU backend with AMX compiled in (a native build) must never get the AMX buffer."""
    monkeypatch.delenv("TSX_NO_REPACK", raising=False)
    monkeypatch.setattr(rt, "_info", rt.RuntimeInfo(**{**runtime.as_dict(), "amx": True}))
    llm = rt.open_llama(small_gguf, repack=True, n_ctx=64, n_threads=1, verbose=False)
    try:
        assert llm.tsx_repack is False and llm.model_params.use_extra_bufts is False
    finally:
        llm.close()


@pytest.mark.bundled
def test_engine_load_options_and_env_switch(runtime, small_gguf, monkeypatch):
    from runtime.engine import TranslationEngine
    from runtime.options import LoadOptions

    monkeypatch.delenv("TSX_NO_REPACK", raising=False)
    engine = TranslationEngine()
    try:
        info = engine.load(small_gguf, LoadOptions(n_ctx=256, n_threads=1, repack=False))
        assert info.repack is False and engine.llm.model_params.use_extra_bufts is False
        assert info.cpu_variant == runtime.variant
        monkeypatch.setenv("TSX_NO_REPACK", "1")
        info = engine.load(small_gguf, LoadOptions(n_ctx=256, n_threads=1))
        assert info.repack is False and "CPU_REPACK" not in info.buffers
    finally:
        engine.unload()


def test_make_installs_the_portable_wheel_by_path_before_the_project():
    """pip must never build llama-cpp-python itself nor take a (possibly native) wheel from its cache."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make")
    for stamp, extra in ((".venv/.stamp-dev", '".[dev]"'), (".venv/.stamp-app", '".[desktop,attention]"')):
        lines = subprocess.run(["make", "-n", "-B", stamp], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
        build = next(i for i, x in enumerate(lines) if "llamacpp_wheel.py build" in x)
        wheel = next(i for i, x in enumerate(lines) if "--no-cache-dir --no-deps --force-reinstall" in x)
        project = next(i for i, x in enumerate(lines) if f"-e {extra}" in x)
        assert build < wheel < project
        assert "llamacpp_wheel.py path" in lines[wheel]
        assert "--only-binary llama-cpp-python" in lines[project]
        assert any(".stamp-llama-" in x and "-portable-" in x for x in lines[wheel:project])
