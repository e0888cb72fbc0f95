"""``tsx-medtrans --self-test``: prove an installation works, offline, and exit non-zero if it does not.

Used by the packaging smoke test (``make package-smoke``) and by a clinic's IT after an install.
Each check is timed and reported as JSON on stdout (a short summary goes to stderr):

1. ``environment``: interpreter, frozen bundle or not, library versions (information only);
2. ``resources``: the data files the app reads at run time are in the installation (prompt
   contract, vendored web JavaScript, term-view script, UI translations);
3. ``model``: the model resolves (``--model`` or the default of ``resources/models/default.yaml``:
   a bundled model or a tuned-model spec), its GGUF has a header and, when it is one of the bundled
   models, its sha256 matches ``medcore.models.BUNDLED``; a tuned model's adapter files are present,
   match the spec's sha256 and were trained on this base;
4. ``llama_backend``: llama.cpp's CPU backend is loaded the way the app loads it
   (``medcore.llamacpp_runtime``); the report names the CPU variant ggml chose for this CPU (the
   portable build ships one library per instruction-set level), the features that variant was
   built with, the CPU's description, every variant shipped, and whether weight repacking is on.
   A loaded AMX backend (crashes on decode, llama.cpp #20824) turns repacking off and is reported;
5. ``load`` and ``translate``: the app's own engine (``desktop.engine``) loads the model and
   translates one medical sentence; the output must be non-empty, in the target language
   (``medcore.textnorm.detect_lang``) and not cut off by the output budget; ``load`` names the weight
   buffers llama.cpp made (``CPU_REPACK``, ``CPU_Mapped``; an ``AMX`` buffer is a failure);
6. ``attention_engine``: the real attention of the translated pair, captured from llama.cpp's own
   forward pass on the same weights (the model's runtime adapters included, same weight-repacking
   setting: ``desktop.attention.llama_engine``): every layer and head of the model, rows that sum to 1,
   a best-aligned source span for a term of the translation, the capture time; and torch must not
   have been imported by anything so far (the app ships without it);
7. ``attention_page:<view>``: the term view and the head view of that attention are built by the
   app's own page code and drawn in QtWebEngine (the bundled web-view runtime); every request the
   page makes is recorded and any non-``file:``/``data:`` request is a failure; a picture of the page
   must not be blank.

Exit status: 0 when every check passed, 1 when any failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SENTENCES = {
    "zh-en": "患者确诊为急性心肌梗死，行经皮冠状动脉介入治疗。",
    "en-zh": "The patient was diagnosed with acute myocardial infarction and underwent percutaneous coronary intervention.",
}
# Files the app opens at run time; a bundle that lacks one breaks only when that feature is used.
REQUIRED_RESOURCES = (
    ("prompts", "translation.yaml"),
    ("web", "term_view.js"),
    ("web", "term_view.css"),
    ("web", "bertviz_highlight.js"),
    ("web", "vendor", "require-2.3.6.js"),
    ("web", "vendor", "d3-5.7.0.min.js"),
    ("web", "vendor", "jquery-2.2.4.min.js"),
    ("i18n", "tsx_medtrans_zh_CN.qm"),
    ("glossary", "medical_glossary.tsv"),  # the default medical glossary, loaded at first start
    ("glossary", "sources.json"),
    ("glossary", "NOTICE.md"),
    ("models", "default.yaml"),
)


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    status: str = "ok"  # ok | failed | skipped
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "status": self.status,
                               "seconds": round(self.seconds, 3)}
        if self.detail:
            out["detail"] = self.detail
        if self.error:
            out["error"] = self.error
        return out


class CheckFailed(Exception):
    """A check's expected failure (message for the report, no traceback)."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.detail = detail or {}


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.started = time.perf_counter()

    def run(self, name: str, fn: Callable[[], tuple[str, dict[str, Any]] | dict[str, Any] | None]) -> Check:
        """Run ``fn``; it returns detail (or ``(status, detail)``); an exception fails the check."""
        t0 = time.perf_counter()
        try:
            out = fn()
            status, detail = out if isinstance(out, tuple) else ("ok", out or {})
            check = Check(name, True, time.perf_counter() - t0, status, detail)
        except CheckFailed as exc:
            check = Check(name, False, time.perf_counter() - t0, "failed", exc.detail, str(exc))
        except Exception as exc:  # noqa: BLE001 - the report must name any failure, whatever it is
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            check = Check(name, False, time.perf_counter() - t0, "failed", {"traceback": "".join(tb[-6:])},
                          f"{type(exc).__name__}: {exc}")
        self.checks.append(check)
        mark = {"ok": "PASS", "skipped": "SKIP", "failed": "FAIL"}[check.status]
        tail = f": {check.error}" if check.error else ""
        print(f"[{mark}] {name} ({check.seconds:.2f} s){tail}", file=sys.stderr, flush=True)
        return check

    def fail(self, name: str, message: str) -> None:
        self.checks.append(Check(name, False, 0.0, "failed", {}, message))
        print(f"[FAIL] {name}: {message}", file=sys.stderr, flush=True)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"ok": self.ok, "failed": [c.name for c in self.checks if not c.ok],
                "total_seconds": round(time.perf_counter() - self.started, 3), **extra,
                "checks": [c.to_dict() for c in self.checks]}


def seconds_since_process_start() -> float | None:
    """Wall time since this process was created (Linux /proc), i.e. including a frozen bundle's
    unpacking and imports before ``main`` ran; None where it cannot be known."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# ---------------------------------------------------------------------------------------- checks
def check_environment() -> dict[str, Any]:
    from desktop import __version__

    info: dict[str, Any] = {
        "app_version": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "frozen": bool(getattr(sys, "frozen", False)), "executable": sys.executable,
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    if getattr(sys, "frozen", False):
        info["bundle_dir"] = getattr(sys, "_MEIPASS", None)
    for module in ("llama_cpp", "PySide6", "numpy", "torch", "transformers", "bertviz"):
        info[f"{module}_version"] = _module_version(module)
    return info


def _module_version(module: str) -> str | None:
    """Version of an importable module without importing heavy ones (torch is not imported here)."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    dist = {"llama_cpp": "llama-cpp-python", "PySide6": "PySide6"}.get(module, module)
    try:
        if find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return version(dist)
    except PackageNotFoundError:
        try:  # PyInstaller bundles do not always carry dist-info: fall back to the module attribute
            return str(getattr(__import__(module), "__version__", "present"))
        except Exception:  # noqa: BLE001
            return "present"


def check_llama_backend() -> dict[str, Any]:
    """Which CPU variant and features llama.cpp runs with here (see the module docstring)."""
    from medcore.llamacpp_runtime import BackendError, ensure_backends

    try:
        info = ensure_backends()
    except (ImportError, OSError, BackendError) as exc:
        raise CheckFailed(f"llama.cpp's CPU backend could not be loaded: {exc}") from None
    build = "portable (CPU variants loaded at run time)" if info.backend_dl else "CPU backend built in (not portable)"
    detail: dict[str, Any] = {
        "cpu_variant": info.variant, "variant_file": info.variant_file,
        "features": [k for k, v in info.features.items() if v == "1"],
        "feature_values": {k: v for k, v in info.features.items() if v != "1"},
        "cpu": info.cpu_description, "build": build, "shipped_variants": info.shipped_variants,
        "backends": info.backends, "amx": info.amx, "repack_default": info.repack_default,
        "llama_cpp_python": info.llama_cpp_python, "lib_dir": info.lib_dir,
    }
    if info.amx:
        detail["warning"] = ("this llama.cpp has AMX compiled in (crashes on decode, llama.cpp #20824): "
                             "weight repacking is off for every model; reinstall the portable build")
    return detail


def check_resources() -> dict[str, Any]:
    from medcore.resources import RESOURCES_DIR

    missing = [os.path.join(*parts) for parts in REQUIRED_RESOURCES if not RESOURCES_DIR.joinpath(*parts).is_file()]
    if missing:
        raise CheckFailed(f"missing from the installation under {RESOURCES_DIR}: {', '.join(missing)}",
                          {"resources_dir": str(RESOURCES_DIR), "missing": missing})
    return {"resources_dir": str(RESOURCES_DIR), "files": len(REQUIRED_RESOURCES)}


def bundled_entry(path: Path):
    """The ``BUNDLED`` model whose file name this is (following a symlink), else None."""
    from medcore.models import BUNDLED

    names = {path.name, path.resolve().name}
    for model in BUNDLED.values():
        if model.filename in names:
            return model
    return None


def check_model(spec: str | None, verify_hash: bool = True) -> tuple[str, dict[str, Any]]:
    from medcore.lora import check_stack, read_adapter
    from medcore.models import (
        ModelError,
        check_gguf_header,
        models_dir,
        sha256_file,
    )
    from medcore.modelspec import default_model, resolve

    spec = spec or default_model()
    try:
        resolved = resolve(spec)
        path = resolved.base
        check_gguf_header(path)
        adapters = [read_adapter(p, expected_sha256=sha) for p, sha in zip(resolved.adapters, resolved.adapter_sha256,
                                                                          strict=True)]
    except ModelError as exc:
        raise CheckFailed(str(exc), {"models_dir": str(models_dir()), "spec": spec}) from None
    detail: dict[str, Any] = {"path": str(path), "size": path.stat().st_size, "models_dir": str(models_dir()),
                              "model": spec, "source": str(resolved.source)}
    if resolved.spec is not None:
        detail["tuned_model"] = resolved.spec.name
        detail["adapters"] = [a.provenance() for a in adapters]
        if adapters:  # the adapters' recorded base must be this file (hashes it; the bundled check reuses it)
            t0 = time.perf_counter()
            digest = sha256_file(path)
            detail["hash_seconds"] = round(time.perf_counter() - t0, 2)
            try:
                check_stack(adapters, digest, path.name)
            except ModelError as exc:
                raise CheckFailed(str(exc), detail) from None
            detail["sha256"] = digest
    if path.is_symlink():
        detail["links_to"] = str(path.resolve())
    model = bundled_entry(path)
    if model is None:
        detail.setdefault("sha256", "not checked: not one of the bundled models")
        return "ok", detail
    detail["bundled"] = model.name
    if not verify_hash and "sha256" not in detail:
        detail["sha256"] = "not checked (--no-hash)"
        return "ok", detail
    if "sha256" not in detail:
        t0 = time.perf_counter()
        detail["sha256"] = sha256_file(path)
        detail["hash_seconds"] = round(time.perf_counter() - t0, 2)
    digest = detail["sha256"]
    if detail["size"] != model.size or digest != model.sha256:
        raise CheckFailed(
            f"{path} is damaged: size {detail['size']:,} / sha256 {digest[:16]}… but {model.name} is "
            f"{model.size:,} bytes / {model.sha256[:16]}…; reinstall the model package", detail)
    detail["verified"] = True
    return "ok", detail


# ---------------------------------------------------------------------------------------- attention
def pick_term(translation: str, tgt_lang: str) -> tuple[int, int]:
    """A term to inspect in the translation: the longest Latin word (en) or 4-character run (zh)."""
    import re

    pattern = r"[A-Za-z][A-Za-z-]{2,}" if tgt_lang == "en" else r"[\u4e00-\u9fff]{2,4}"
    spans = [m.span() for m in re.finditer(pattern, translation)]
    if not spans:
        spans = [m.span() for m in re.finditer(r"\S+", translation)]
    if not spans:
        raise CheckFailed("the translation has no word to inspect")
    return max(spans, key=lambda s: s[1] - s[0])


def check_attention(engine: Any, source: str, translation: str, direction: str) -> tuple[dict[str, Any], Any]:
    """Real attention of the pair from llama.cpp (``engine``: a LlamaAttentionEngine); checks and a summary."""
    import time as _time

    from desktop.attention.alignment import align_term
    from medcore.prompt import split_direction

    started = _time.perf_counter()
    engine.load()
    load_s = _time.perf_counter() - started
    _, tgt_lang = split_direction(direction)
    span = pick_term(translation, tgt_lang)
    t0 = _time.perf_counter()
    result = engine.compute(source, translation, direction)
    compute_s = _time.perf_counter() - t0
    result.validate()  # shapes; every row sums to 1
    alignment = align_term(result, span)
    capture = engine.capture
    detail = {"engine": "llama.cpp", "model": engine.describe(), "layers": result.n_layers, "heads": result.n_heads,
              "tokens": {"source": result.n_src, "translation": result.n_tgt},
              "term": translation[span[0]:span[1]], "src_text": alignment.src_text,
              "confidence": round(alignment.confidence, 3), "weak": alignment.weak,
              "kept_mass_mean": round(float(result.kept_mass.mean()), 3), "compare_with_base": engine.has_base,
              "load_seconds": round(load_s, 3), "compute_seconds": round(compute_s, 3),
              "repack": result.meta.get("repack"), "torch_imported": "torch" in sys.modules}
    if (result.n_layers, result.n_heads) != (capture.n_layers, capture.n_heads):
        raise CheckFailed("the attention does not cover every layer and head of the model", detail)
    if not (0.0 < result.kept_mass.mean() < 1.0):
        raise CheckFailed("the attention rows do not look like the model's (no share on the prompt scaffolding)", detail)
    if detail["torch_imported"]:
        raise CheckFailed("torch was imported on the app's path (the bundle ships without it)", detail)
    return detail, span


def build_attention_pages(engine: Any, source: str, translation: str, direction: str, span: tuple[int, int],
                          out_dir: Path) -> tuple[str, dict[str, Any], Any]:
    """The term view and the head view of the pair's real attention, written as the app writes them."""
    from desktop.attention.session import ViewRequest, build_views

    request = ViewRequest(source, translation, direction, span, None, views=("term", "head"))
    built = build_views(engine, request, out_dir)
    detail = {"engine": engine.describe(), "term": translation[span[0]:span[1]],
              "pages": {k: {"path": str(v), "bytes": v.stat().st_size} for k, v in built.paths.items()},
              "timings": {k: round(v, 3) for k, v in built.timings.items()},
              "tokens": {"source": len(built.result.src_tokens), "translation": len(built.result.tgt_tokens)}}
    return "ok", detail, built


def prepare_qt_environment() -> dict[str, str]:
    """Environment QtWebEngine needs here: offscreen without a display, no sandbox as root."""
    changed = {}
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        changed["QT_QPA_PLATFORM"] = os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        changed["QTWEBENGINE_CHROMIUM_FLAGS"] = os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Chromium refuses to run sandboxed as root
        changed["QTWEBENGINE_DISABLE_SANDBOX"] = os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    return changed


def render_page(path: Path, png: Path, timeout_ms: int) -> dict[str, Any]:
    """Draw one page in the app's AttentionView; fail on timeout, remote requests or a blank picture."""
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from desktop.attention import view as view_mod

    app = QApplication.instance()
    view = view_mod.AttentionView()
    view.resize(1100, 700)
    view.show()
    try:
        t0 = time.perf_counter()
        drawn = view.load_and_wait(path, timeout_ms=timeout_ms)
        detail: dict[str, Any] = {"draw_seconds": round(time.perf_counter() - t0, 3), "drawn": drawn,
                                  "requests": len(view.interceptor.requests)}
        remote = view.interceptor.remote_requests()
        console = list(getattr(view.page(), "console", []))
        errors = [c for c in console if c.lower().startswith("error")]
        if errors:
            detail["console_errors"] = errors[:5]
        if remote:
            raise CheckFailed(f"the page asked for {len(remote)} remote resource(s): {remote[:3]}",
                              {**detail, "remote": remote})
        if not drawn:
            raise CheckFailed(f"the page did not report it was drawn within {timeout_ms / 1000:.0f} s", detail)
        view.save_png(png, full_page=False)
        image = QImage(str(png))
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        detail.update({"png": str(png), "png_size": [image.width(), image.height()], "colours_sampled": len(colours)})
        if image.isNull() or len(colours) < 3:
            raise CheckFailed("the picture of the page is blank", detail)
        return detail
    finally:
        view.dispose()
        view.deleteLater()
        if app is not None:
            app.processEvents()


# ---------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsx-medtrans --self-test", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="tuned-model spec, GGUF file or bundled model name "
                                   "(default: resources/models/default.yaml)")
    p.add_argument("--direction", choices=tuple(SENTENCES), default="zh-en", help="direction of the test sentence")
    p.add_argument("--sentence", help="translate this instead of the built-in sentence")
    p.add_argument("--attention-model", help="model for the attention check (default: --model, with its adapters)")
    p.add_argument("--no-page", action="store_true", help="skip drawing the attention pages (no Qt)")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 check of a bundled model")
    p.add_argument("--ctx", type=int, default=2048, help="context size for the load check (default 2048)")
    p.add_argument("--no-repack", action="store_true",
                   help="load without llama.cpp's weight repacking (also: TSX_NO_REPACK=1)")
    p.add_argument("--page-timeout", type=float, default=60.0, help="seconds to wait for a page to draw")
    p.add_argument("--keep", type=Path, help="keep the pages and pictures in this directory")
    p.add_argument("--json-out", type=Path, help="also write the JSON report to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:
        argv = argv[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 for --help
        return int(exc.code or 0)
    since_start = seconds_since_process_start()
    report = Report()
    state: dict[str, Any] = {}

    report.run("environment", check_environment)
    report.run("resources", check_resources)

    def model() -> tuple[str, dict[str, Any]]:
        status, detail = check_model(args.model, verify_hash=not args.no_hash)
        state["model_path"] = Path(detail["path"])       # the GGUF (the attention engine reads it)
        state["model_source"] = Path(detail["source"])   # what the app loads: a spec (base + adapters) or the GGUF
        return status, detail

    report.run("model", model)
    source = args.sentence or SENTENCES[args.direction]

    backend = report.run("llama_backend", check_llama_backend)
    if "model_path" in state and backend.ok:
        from desktop.engine import LoadOptions, TranslationEngine

        engine = TranslationEngine()

        def load() -> dict[str, Any]:
            info = engine.load(state["model_source"], LoadOptions(n_ctx=args.ctx, repack=not args.no_repack))
            detail = {"name": info.name, "architecture": info.architecture, "layers": info.n_layers,
                      "n_ctx": info.n_ctx, "load_seconds": round(info.load_seconds, 3),
                      "estimated_ram_gb": round(info.estimated_bytes / 1024**3, 2),
                      "cpu_variant": info.cpu_variant, "repack": info.repack,
                      "weight_buffers_mib": {k: round(v, 2) for k, v in info.buffers.items()},
                      "tuned_model": info.spec, "adapters": [a["file"] for a in info.adapters]}
            if any(k.upper().startswith("AMX") for k in info.buffers):
                raise CheckFailed("llama.cpp put weights in an AMX buffer (crashes on decode)", detail)
            return detail

        if report.run("load", load).ok:
            def translate() -> dict[str, Any]:
                from medcore.prompt import split_direction
                from medcore.textnorm import detect_lang

                result = engine.translate(source, args.direction)
                _, tgt = split_direction(result.direction)
                text = result.translation.strip()
                state["translation"] = text
                detail = {"direction": result.direction, "source": source, "translation": text,
                          "detected_lang": detect_lang(text) if text else None, **result.stats(),
                          "finish": [s.finish_reason for s in result.segments]}
                if not text:
                    raise CheckFailed("the model produced an empty translation", detail)
                if detect_lang(text) != tgt:
                    raise CheckFailed(f"the translation is not in the target language ({tgt})", detail)
                if any(s.finish_reason != "stop" for s in result.segments) or result.warnings:
                    raise CheckFailed(f"the translation did not finish cleanly: {result.warnings}", detail)
                if since_start is not None:
                    detail["seconds_since_process_start"] = round(seconds_since_process_start() or 0.0, 3)
                return detail

            report.run("translate", translate)
        engine.unload()
    else:
        report.fail("load", "skipped: " + ("no model" if "model_path" not in state else "no llama.cpp backend"))

    # Attention: captured from llama.cpp on the weights that translated (adapters included).
    attention_box: dict[str, Any] = {}
    if "translation" in state:
        from desktop.attention.llama_engine import LlamaAttentionEngine

        attention = LlamaAttentionEngine(args.attention_model or state["model_source"], repack=not args.no_repack,
                                         n_ctx=args.ctx)

        def attention_engine() -> dict[str, Any]:
            detail, span = check_attention(attention, source, state["translation"], args.direction)
            attention_box.update(engine=attention, span=span)
            return detail

        report.run("attention_engine", attention_engine)
    else:
        report.fail("attention_engine", "skipped: no translation to inspect")

    if args.no_page:
        pass
    elif "engine" not in attention_box:
        report.fail("attention_page", "skipped: no attention to show")
    else:
        keep = args.keep
        tmp = None
        if keep is None:
            tmp = tempfile.TemporaryDirectory(prefix="tsx-selftest-")
            keep = Path(tmp.name)
        keep.mkdir(parents=True, exist_ok=True)
        built_box: dict[str, Any] = {}

        def build_pages() -> tuple[str, dict[str, Any]]:
            status, detail, built = build_attention_pages(attention_box["engine"], source, state["translation"],
                                                          args.direction, attention_box["span"], keep)
            built_box["built"] = built
            return status, detail

        if report.run("attention_pages_built", build_pages).ok:
            qt_env = prepare_qt_environment()
            import PySide6.QtWebEngineWidgets  # noqa: F401  (must precede the QApplication)
            from PySide6.QtWidgets import QApplication

            app = QApplication.instance() or QApplication([sys.argv[0]])
            state["qt_env"] = qt_env
            for view, path in built_box["built"].paths.items():
                report.run(f"attention_page:{view}",
                           lambda path=path, view=view: render_page(path, keep / f"{view}.png",
                                                                    int(args.page_timeout * 1000)))
            from desktop.attention import view as view_mod

            view_mod._release_pages()  # pages before their profile, or Chromium crashes at exit
            app.processEvents()
        if tmp is not None:
            tmp.cleanup()
    if "engine" in attention_box:
        attention_box["engine"].close()

    extra = {"seconds_since_process_start_at_main": None if since_start is None else round(since_start, 3)}
    if "qt_env" in state:
        extra["qt_env"] = state["qt_env"]
    payload = report.to_dict(extra)
    text = json.dumps(payload, ensure_ascii=False, indent=2)
    print(text, flush=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n", encoding="utf-8")
    verdict = "PASSED" if report.ok else f"FAILED ({', '.join(payload['failed'])})"
    print(f"self-test {verdict} in {payload['total_seconds']:.1f} s", file=sys.stderr, flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
