"""The shared spec description: what goes into the bundle, and that both recipes use it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medcore.models import BUNDLED

ROOT = Path(__file__).resolve().parents[2]


def test_resource_datas_cover_runtime_files_and_skip_sources(spec_common):
    datas = spec_common.resource_datas()
    dests = {(Path(src).relative_to(ROOT).as_posix(), dest) for src, dest in datas}
    for needed in ("resources/prompts/translation.yaml", "resources/web/term_view.js",
                   "resources/web/vendor/require-2.3.6.js", "resources/web/vendor/d3-5.7.0.min.js",
                   "resources/web/vendor/jquery-2.2.4.min.js", "resources/i18n/tsx_medtrans_zh_CN.qm",
                   "resources/icons/tsx-medtrans.svg", "resources/glossary/medical_glossary.tsv",
                   "resources/glossary/sources.json", "resources/glossary/NOTICE.md",
                   "resources/web/vendor/bertviz-1.4.1/head_view.py", "resources/web/vendor/bertviz-1.4.1/model_view.js"):
        folder = needed.rsplit("/", 1)[0]
        assert (needed, folder) in dests, needed
    sources = [src for src, _ in datas]
    assert not [s for s in sources if s.endswith((".ts", ".pyc"))]
    assert not [s for s in sources if "/configs/" in s or "/converter/" in s]  # trainer-only files
    # every vendored licence goes along with the scripts it covers
    assert sum("/vendor/licenses/" in s for s in sources) == 4  # require.js, d3, jQuery, BertViz


def test_bundle_excludes_torch_and_has_the_llama_cpp_attention_engine(spec_common):
    for module in ("torch", "transformers", "bertviz", "IPython", "peft", "hfmodel", "trainer", "evaluation",
                   "llama_cpp.server"):
        assert module in spec_common.EXCLUDES
    assert not set(spec_common.HIDDEN_IMPORTS) & set(spec_common.EXCLUDES)
    for module in ("desktop.selftest", "desktop.cli", "tsx_firstrun", "PySide6.QtWebEngineWidgets",
                   "desktop.attention.llama_engine", "runtime.attention_capture"):
        assert module in spec_common.HIDDEN_IMPORTS


def test_full_stdlib_for_code_the_analysis_cannot_see(spec_common):
    names = spec_common.stdlib_hidden_imports()
    # the vendored BertViz views (compiled from resources at run time) import uuid; and a sample of the rest
    for module in ("uuid", "unittest", "sqlite3", "pdb", "cProfile", "multiprocessing", "ctypes", "timeit", "http.cookies",
                   "email.mime.text", "concurrent.futures.thread", "importlib.metadata"):
        assert module in names
    for module in ("tkinter", "idlelib", "test", "ensurepip", "unittest.test", "ctypes.test"):
        assert module not in names


def test_llama_binaries_keep_only_loaded_names(spec_common):
    pytest.importorskip("llama_cpp")
    binaries = spec_common.llama_binaries("linux")
    names = {Path(src).name for src, _ in binaries}
    assert {"libllama.so", "libggml.so", "libggml-base.so.0"} <= names
    # the portable build: every CPU variant library (the clinic's CPU decides), never the AMX one
    assert {"libggml-cpu-x64.so", "libggml-cpu-haswell.so"} <= names
    assert not [n for n in names if "sapphirerapids" in n]
    assert all(dest == "llama_cpp/lib" for _, dest in binaries)
    assert not [n for n in names if "mtmd" in n or "llama-common" in n or re.search(r"\.so\.\d+\.\d+", n)]


def test_trim_toc_drops_unused_locales(spec_common):
    toc = [
        ("PySide6/Qt/translations/qtwebengine_locales/de.pak", "/x/de.pak", "DATA"),
        ("PySide6/Qt/translations/qtwebengine_locales/zh-CN.pak", "/x/zh-CN.pak", "DATA"),
        ("PySide6/Qt/translations/qtbase_fr.qm", "/x/qtbase_fr.qm", "DATA"),
        ("PySide6/Qt/translations/qtbase_zh_CN.qm", "/x/qtbase_zh_CN.qm", "DATA"),
        ("resources/prompts/translation.yaml", "/x/translation.yaml", "DATA"),
    ]
    kept = [e[0].rsplit("/", 1)[-1] for e in spec_common.trim_toc(toc)]
    assert kept == ["zh-CN.pak", "qtbase_zh_CN.qm", "translation.yaml"]


def test_linux_and_windows_recipes_stay_in_step(spec_common):
    linux = (ROOT / "packaging/linux/tsx-medtrans.spec").read_text()
    windows = (ROOT / "packaging/windows/tsx-medtrans.spec").read_text()
    assert 'analysis_kwargs("core", platform="linux")' in linux
    assert 'analysis_kwargs("core", platform="win32")' in windows
    for spec in (linux, windows):
        assert "trim_toc(a.datas" in spec and "COLLECT(" in spec and "onefile" not in spec.lower()
    iss = (ROOT / "packaging/windows/tsx-medtrans.iss").read_text()
    ps1 = (ROOT / "packaging/windows/build.ps1").read_text()
    # The model the installer ships is the default's base, named once (resources/models/default.yaml):
    # build.ps1 asks medcore.modelspec and hands it to Inno Setup, which refuses to build without it.
    assert "-m medcore.modelspec base-file" in ps1 and '"/DModelFile=$ModelFile" "/DModelSha256=$ModelSha256"' in ps1
    assert "#ifndef ModelFile" in iss and "#error" in iss
    for model in BUNDLED.values():
        for recipe in (iss, ps1, (ROOT / "packaging/build.py").read_text(), (ROOT / "Makefile").read_text()):
            assert model.filename not in recipe and model.sha256 not in recipe
    build = (ROOT / "packaging/build.py").read_text()
    # one bundle with attention on both platforms: no torch add-on is built or installed anywhere
    for recipe in (ps1, iss, build, (ROOT / "packaging/smoke.py").read_text(), (ROOT / "Makefile").read_text()):
        assert "--attention" not in recipe and "pip install -q --target" not in recipe
        assert "attention-overlay" not in recipe and 'Name: "attention"' not in recipe


def test_installers_learn_the_default_model_from_one_line(capsys):
    from medcore.modelspec import default_base_name, main

    assert main(["base-file"]) == 0
    filename, sha256 = capsys.readouterr().out.split()
    model = BUNDLED[default_base_name()]
    assert (filename, sha256) == (model.filename, model.sha256)
