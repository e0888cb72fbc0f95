"""One description of the bundle, shared by the Linux and the Windows PyInstaller specs.

Both ``packaging/linux/tsx-medtrans.spec`` and ``packaging/windows/tsx-medtrans.spec`` call
:func:`analysis_kwargs`, so the two recipes always list the same data files, hidden imports,
excludes and runtime hooks; only the executable options (icon, console, strip) differ.

The parts that matter (each a known way for a frozen llama.cpp / QtWebEngine app to break):

* **llama.cpp's shared libraries**: llama-cpp-python opens ``llama_cpp/lib/libllama.so`` (``llama.dll``
  on Windows) with ctypes, so PyInstaller's import analysis never sees them. They are collected
  explicitly, into the same ``llama_cpp/lib`` folder the package looks in. The wheel carries three
  identical copies of each library (``.so``, ``.so.0``, ``.so.0.x.y``): only the names that are
  opened (``lib*.so``) or linked (``lib*.so.0``) are kept; ``libmtmd`` (image input) and
  ``libllama-common`` (llama.cpp's example helpers) are left out.
  The project's portable build (``packaging/llamacpp_wheel.py``) has no CPU code in ``libggml``: the
  CPU backend is one library per instruction-set level (``libggml-cpu-haswell.so``,
  ``ggml-cpu-zen4.dll``, …), loaded at run time by ``runtime.llamacpp`` from that same folder.
  Every one of them is collected (the clinic's CPU is not the build machine's), except an AMX
  variant (crashes, llama.cpp #20824), and a llama-cpp-python without them is refused: it would be a
  native build that carries the build machine's instruction set into the bundle.
* **QtWebEngine**: ``QtWebEngineProcess``, its ``.pak`` resources and ICU data come with PyInstaller's
  PySide6 hooks; one-folder mode is required (one-file unpacks to a temp dir per start and breaks
  the helper process). Chromium's UI locales are trimmed to English and Chinese.
* **Data**: ``resources/`` (prompt contract, vendored JavaScript with licences, term-view script,
  ``.qm`` UI translations, icons, sample documents, the default medical glossary) goes to ``resources/``
  beside the code, which is
  where ``medcore.resources`` looks for it.
* **No torch, full attention**: the app computes attention with llama.cpp itself
  (``desktop.attention.llama_engine`` on ``runtime.attention_capture``) and draws the BertViz views
  from the vendored BertViz files in ``resources/web/vendor`` (no torch, no IPython). The reference
  engine (``TransformersAttentionEngine``) still imports torch/transformers lazily, and PyInstaller
  would follow those imports and pull in ~1 GB: they are excluded. There is no attention add-on.
  The bundle carries the complete standard library (a few MB): the vendored BertViz modules are
  compiled from resource files at run time, so PyInstaller never sees their imports (json, os,
  uuid), and neither does it see what Jinja2 chat templates or llama-cpp-python import lazily.

This module is plain Python (no PyInstaller import at module level) so tests can check the lists.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from runtime.llamacpp import EXCLUDED_VARIANTS, variant_of_file  # noqa: E402

APP_NAME = "tsx-medtrans"
ENTRY = ROOT / "packaging" / "entry.py"
RUNTIME_HOOK = ROOT / "packaging" / "rthook_tsx.py"

# resources/ sub-folders the app reads at run time (trainer configs and converter probes are not).
# models: tuned-model specs + adapters; glossary: the default medical glossary with its sources and NOTICE.md;
# fonts: the CJK font whose glyphs the attention pages embed (desktop.fonts)
RESOURCE_DIRS = ("prompts", "web", "i18n", "icons", "samples", "models", "glossary", "fonts")
# Qt Linguist sources (the .qm files are what loads); PEFT adapters (the app loads their GGUF LoRAs)
RESOURCE_SKIP_SUFFIXES = (".ts", ".pyc", ".safetensors")

HIDDEN_IMPORTS = [
    # entered only through importlib / lazily inside functions that the analysis may miss
    "desktop.cli", "desktop.app", "desktop.main_window", "desktop.selftest", "desktop.selftest.run",
    "desktop.selftest.report", "desktop.selftest.checks", "desktop.selftest.attention", "desktop.webengine_env",
    "desktop.attention.cli", "desktop.attention.dock", "desktop.attention.view",
    "desktop.attention.session", "desktop.attention.page", "desktop.attention.alignment",
    "desktop.attention.engine", "desktop.attention.tokens", "desktop.attention.worker",
    "desktop.attention.llama_engine", "desktop.fonts", "runtime.attention_capture",
    # fontTools imports each font table's module by its tag, at run time
    "fontTools.subset", "fontTools.ttLib.woff2", "fontTools.ttLib.tables._c_m_a_p", "fontTools.ttLib.tables._g_l_y_f",
    "fontTools.ttLib.tables._l_o_c_a", "fontTools.ttLib.tables._h_m_t_x", "fontTools.ttLib.tables._h_e_a_d",
    "fontTools.ttLib.tables._h_h_e_a", "fontTools.ttLib.tables._m_a_x_p", "fontTools.ttLib.tables._n_a_m_e",
    "fontTools.ttLib.tables._p_o_s_t", "fontTools.ttLib.tables.O_S_2f_2", "fontTools.ttLib.tables._g_a_s_p",
    "fontTools.ttLib.tables._f_p_g_m", "fontTools.ttLib.tables._p_r_e_p", "fontTools.ttLib.tables._c_v_t",
    "fontTools.ttLib.tables.G_D_E_F_", "fontTools.ttLib.tables.G_P_O_S_", "fontTools.ttLib.tables.G_S_U_B_",
    "tsx_firstrun", "runtime.llamacpp", "runtime.adapters", "medcore.lora", "medcore.modelspec",
    "llama_cpp", "llama_cpp.llama_chat_format", "jinja2",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtSvg",
]

# Never in the bundle: the transformers reference engine's stack (the app's attention runs in llama.cpp).
ATTENTION_MODULES = ["torch", "transformers", "peft", "accelerate", "bertviz", "tokenizers",
                     "safetensors", "huggingface_hub", "sentencepiece", "gguf", "hfmodel", "trainer"]
EXCLUDES = [
    *ATTENTION_MODULES,
    "converter", "evaluation", "llama_cpp.server", "matplotlib", "IPython", "pytest", "tkinter", "_tkinter",
    "sacrebleu", "comet", "pandas", "scipy", "sklearn",
    # Qt modules the app does not use (their Python bindings would drag the Qt libraries in)
    "PySide6.Qt3DAnimation", "PySide6.Qt3DCore", "PySide6.Qt3DExtras", "PySide6.Qt3DInput",
    "PySide6.Qt3DLogic", "PySide6.Qt3DRender", "PySide6.QtBluetooth", "PySide6.QtCharts",
    "PySide6.QtDataVisualization", "PySide6.QtGraphs", "PySide6.QtMultimedia", "PySide6.QtMultimediaWidgets",
    "PySide6.QtNfc", "PySide6.QtQuick3D", "PySide6.QtRemoteObjects", "PySide6.QtScxml", "PySide6.QtSensors",
    "PySide6.QtSerialBus", "PySide6.QtSerialPort", "PySide6.QtSpatialAudio", "PySide6.QtTextToSpeech",
    "PySide6.QtDesigner", "PySide6.QtHelp", "PySide6.QtSql", "PySide6.QtTest", "PySide6.QtPdf",
    "PySide6.QtPdfWidgets", "PySide6.QtHttpServer", "PySide6.QtLocation",
    # QtWebEngineCore links libQt6Quick/Qml, and PyInstaller's Qt hooks would then collect every QML
    # plugin (+~150 MB of Quick3D, Charts, Multimedia...). The widgets-based web view loads no QML:
    # the libraries themselves still come along as link-time dependencies.
    "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtQuickControls2",
    "PySide6.QtQuickTest", "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets", "PySide6.QtPositioning",
    "PySide6.QtWebSockets", "PySide6.QtWebView", "PySide6.QtUiTools", "PySide6.QtDBus",
]
# Standard-library modules never needed by the app.
STDLIB_SKIP = {"tkinter", "turtle", "turtledemo", "idlelib", "test", "ensurepip", "lib2to3", "pydoc_data",
               "venv", "this", "antigravity", "__phello__", "_tkinter", "msilib", "winsound", "_msi",
               "msvcrt", "_winapi", "winreg", "_overlapped", "nt", "_wmi", "_scproxy", "_osx_support",
               "_aix_support", "_ios_support", "_dbm", "_gdbm"}

# Chromium UI locales kept (QtWebEngine ships ~50; each ~0.5–1 MB).
WEBENGINE_LOCALES = ("en-US.pak", "en-GB.pak", "zh-CN.pak", "zh-TW.pak")
QT_TRANSLATION_PREFIXES = ("qt_zh_CN", "qtbase_zh_CN", "qtwebengine_zh_CN", "qt_en", "qtbase_en", "qtwebengine_en")


def resource_datas(root: Path = ROOT) -> list[tuple[str, str]]:
    """(source file, destination folder) for every resource file the app reads at run time."""
    out = []
    base = root / "resources"
    for sub in RESOURCE_DIRS:
        for path in sorted((base / sub).rglob("*")):
            if path.is_file() and path.suffix not in RESOURCE_SKIP_SUFFIXES and "__pycache__" not in path.parts:
                out.append((str(path), str(path.parent.relative_to(root))))
    return out


def stdlib_hidden_imports() -> list[str]:
    """Every top-level stdlib module of this interpreter (see the module docstring for why)."""
    import importlib.util
    import pkgutil

    names = {n for n in getattr(sys, "stdlib_module_names", ()) if n not in STDLIB_SKIP and not n.startswith("_test")}
    out = set(names)
    for name in sorted(names):  # packages: every submodule too (http.cookies, email.mime.text, ...)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for info in pkgutil.walk_packages(list(spec.submodule_search_locations), prefix=name + ".",
                                          onerror=lambda _name: None):
            parts = info.name.split(".")
            if not {"test", "tests", "idle_test"} & set(parts):
                out.add(info.name)
    return sorted(out)


def llama_binaries(platform: str | None = None) -> list[tuple[str, str]]:
    """llama.cpp's shared libraries, as (file, destination folder) for ``Analysis(binaries=...)``."""
    import importlib.util

    platform = platform or sys.platform
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llama-cpp-python is not installed in the build environment")
    lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
    # libmtmd (image input) and libllama-common (llama.cpp's example helpers) are never loaded.
    unused = ("mtmd", "llama-common")
    if platform == "win32":
        files = [p for p in lib.glob("*.dll") if not any(u in p.name for u in unused)]
    else:
        files = [p for p in lib.iterdir()
                 if (p.name.endswith(".so") or p.name.endswith(".so.0")) and not any(u in p.name for u in unused)]
    names = {p.name for p in files}
    needed = {"llama.dll", "ggml.dll", "ggml-base.dll"} if platform == "win32" else {"libllama.so", "libggml.so", "libggml-base.so.0"}
    if not needed & names:
        raise SystemExit(f"llama.cpp libraries not found in {lib} (have: {sorted(names)})")
    variants = {n: v for n in names if (v := variant_of_file(n))}
    if not variants:
        raise SystemExit(f"the llama-cpp-python in {lib} is not the portable build (no ggml-cpu-<variant> "
                         "libraries): install .whl/<key>/*.whl (`make llama-wheel`, packaging/llamacpp_wheel.py)")
    if "x64" not in variants.values():
        raise SystemExit(f"the baseline CPU variant (ggml-cpu-x64) is missing from {lib}")
    files = [p for p in files if variants.get(p.name) not in EXCLUDED_VARIANTS]
    return [(str(p), "llama_cpp/lib") for p in sorted(files)]


def analysis_kwargs(flavour: str = "core", platform: str | None = None, root: Path = ROOT) -> dict:
    """Keyword arguments for PyInstaller's ``Analysis`` (shared by both specs)."""
    if flavour != "core":
        raise ValueError(f"unknown flavour {flavour!r}: there is one bundle, with attention (llama.cpp)")
    return {
        "scripts": [str(ENTRY)],
        "pathex": [str(root), str(root / "packaging")],
        "binaries": llama_binaries(platform),
        "datas": resource_datas(root),
        "hiddenimports": HIDDEN_IMPORTS + stdlib_hidden_imports(),
        "excludes": EXCLUDES,
        "runtime_hooks": [str(RUNTIME_HOOK)],
        "noarchive": False,
    }


def trim_toc(toc, platform: str | None = None):
    """Drop Chromium locales and Qt translations the app does not show (PyInstaller TOC filter)."""
    out = []
    for entry in toc:
        dest = str(entry[0]).replace("\\", "/")
        name = dest.rsplit("/", 1)[-1]
        if "/qtwebengine_locales/" in dest:
            if not name.endswith(WEBENGINE_LOCALES):
                continue
        elif (dest.startswith("PySide6/") and "/translations/" in dest and name.endswith(".qm")
              and not name.startswith(QT_TRANSLATION_PREFIXES)):
            continue
        out.append(entry)
    return out
