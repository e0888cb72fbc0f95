"""The pages in a real QtWebEngine (offscreen): drawn, offline, XSS inert, dock end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWebEngineWidgets")
pytest.importorskip("pytestqt")

from desktop.attention import page  # noqa: E402
from desktop.attention.alignment import align_term  # noqa: E402
from desktop.attention.page import TermSelection  # noqa: E402
from tests.attention.conftest import EN, ZH  # noqa: E402
from tests.attention.test_page import XSS  # noqa: E402

TERM = (EN.index("acute myocardial infarction"), EN.index("acute myocardial infarction") + 27)


@pytest.fixture
def view(qtbot):
    from desktop.attention.view import AttentionView

    v = AttentionView()
    v.resize(1000, 700)
    qtbot.addWidget(v)
    v.show()
    yield v
    v.dispose()


def _js(view, script):
    return view.evaluate(script)


def test_bertviz_views_render_offline_with_term_highlighted(view, tiny_result, tmp_path):
    head = page.write_page(page.head_view_html(tiny_result, TermSelection(TERM), layer=1), tmp_path / "head.html")
    assert view.load_and_wait(head)
    units = tiny_result.units_in(TERM, "tgt")
    # Translation -> Source: left = translation tokens, the term's are red and bold
    marked = _js(view, "Array.from(document.querySelectorAll('#left text')).filter(e => e.style.fill).map(e => e.textContent)")
    assert marked == [tiny_result.tgt_tokens[u] for u in units]
    assert _js(view, "document.querySelectorAll('#left text').length") == tiny_result.n_tgt
    assert _js(view, "document.querySelectorAll('#right text').length") == tiny_result.n_src
    # the first term token is preselected: only its attention lines are visible
    visible = _js(view, "document.querySelectorAll('line[visibility=\"visible\"]').length")
    assert visible == tiny_result.n_src * tiny_result.n_heads

    model = page.write_page(page.model_view_html(tiny_result, TermSelection(TERM), layer=1, head=2),
                            tmp_path / "model.html")
    assert view.load_and_wait(model)
    assert _js(view, "document.querySelectorAll('rect.attn_background').length") == tiny_result.n_layers * tiny_result.n_heads
    assert _js(view, "document.querySelectorAll('text.detail').length") == 1  # detail opened
    assert "Layer 1, Head 2" in _js(view, "document.querySelector('text.detail').textContent")
    assert view.interceptor.remote_requests() == []
    assert all(r.startswith("file:") for r in view.interceptor.requests)
    assert [c for c in view.page().console if "Error" in c] == []
    # a remote load would also show up as a CSP refusal in the console: there is none
    assert not [c for c in view.page().console if "Content Security Policy" in c]


def test_chinese_tokens_draw_with_the_embedded_font(view, tiny_result, tmp_path, qtbot):
    """The page's own CJK font loads from the page (no system font needed) and the source tokens use it."""
    head = page.write_page(page.head_view_html(tiny_result, TermSelection(TERM), layer=1), tmp_path / "head.html")
    assert view.load_and_wait(head)
    status = ("Array.from(document.fonts).filter(f => f.family.replace(/[\"']/g, '') === 'TSX CJK')"
              ".map(f => f.status)")
    qtbot.waitUntil(lambda: _js(view, status) == ["loaded"], timeout=10000)
    assert _js(view, "document.fonts.check(\"14px 'TSX CJK'\", '心')") is True
    family = _js(view, "getComputedStyle(document.querySelector('#right text')).fontFamily")
    assert "TSX CJK" in family  # BertViz's own inline font stack was extended
    assert view.interceptor.remote_requests() == []


def test_xss_string_renders_as_text_and_runs_nothing(view, tiny_result, tmp_path):
    from tests.attention.test_page import _xss_result

    r = _xss_result(tiny_result)
    shift = len(XSS)
    a = align_term(r, TERM)
    pages = {
        "term": page.term_view_html(r.source, r.translation, r.direction, TermSelection(TERM, (shift + 5, shift + 11)),
                                    [page.term_panel(r, a, XSS, align_term(r, TERM, query="term"))]),
        "head": page.head_view_html(r, TermSelection(TERM), layer=1),
    }
    for name, html in pages.items():
        path = page.write_page(html, tmp_path / f"{name}.html")
        assert view.load_and_wait(path), name
        assert _js(view, "typeof window.__xss") == "undefined", name
        assert _js(view, "document.querySelectorAll('img').length") == 0, name
        shown = _js(view, "document.body.innerText")
        assert "</script><script>window.__xss=1</script>" in shown, name  # visible as plain text
    assert view.interceptor.remote_requests() == []


def test_interceptor_blocks_and_records_remote_requests(view, tmp_path):
    """An unmodified BertViz page asks cdnjs for require.js: blocked and recorded."""
    import torch
    from bertviz import head_view

    raw = head_view([torch.full((1, 1, 2, 2), 0.5)], ["a", "b"], html_action="return").data
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><img src='http://example.invalid/x.png'>" + raw + "</body></html>")
    view.load_and_wait(bad, timeout_ms=3000)  # never reports ready: its scripts cannot load
    blocked = view.interceptor.blocked
    assert any(u.startswith("https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/") for u in blocked)
    assert "http://example.invalid/x.png" in blocked
    assert set(view.interceptor.remote_requests()) == set(blocked)


def test_dock_click_to_view_export_and_compare(qtbot, tiny_qwen2_dir, tiny_adapters, tmp_path):
    """The pane's mechanics, on the transformers reference engine (PEFT adapters on a tiny HF model);
    the app's own engine (llama.cpp) in the pane: ``test_dock_default_engine_is_llama_cpp``."""
    from desktop.attention.dock import AttentionDock
    from desktop.attention.engine import TransformersAttentionEngine

    dock = AttentionDock(adapters=[str(a) for a in tiny_adapters],
                         engine_factory=lambda model, adapters, base: TransformersAttentionEngine(
                             model, adapters=adapters, base_model=base, threads=1))
    qtbot.addWidget(dock)
    dock.resize(1100, 800)
    dock.show()
    src_span = (ZH.index("急性心肌梗死"), ZH.index("急性心肌梗死") + 6)
    with qtbot.waitSignal(dock.alignmentReady, timeout=120000) as aligned, \
            qtbot.waitSignal(dock.viewShown, timeout=120000) as shown:
        dock.show_term(ZH, EN, src_span, TERM, "zh-en", str(tiny_qwen2_dir))
    assert shown.args[0] == "term" and shown.args[1] > 0
    summary = aligned.args[0]
    assert summary["term"] == "acute myocardial infarction" and summary["expected_units"]
    assert dock.warning.isVisible() == summary["weak"]  # weak terms are flagged in the pane
    out = dock.export_html(tmp_path / "term.html")
    data = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in data and "acute myocardial infarction" in data
    png = dock.export_png(tmp_path / "term.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    # Compare with base model: two panels, the base one computed with adapters disabled
    with qtbot.waitSignal(dock.viewShown, timeout=120000):
        dock.compare.setChecked(True)
    assert dock.view.evaluate("document.querySelectorAll('section.panel').length") == 2
    assert "base" in dock.last_alignment

    with qtbot.waitSignal(dock.viewShown, timeout=120000) as shown:
        dock.tabs.setCurrentIndex(1)  # head view
    assert shown.args[0] == "head"
    assert dock.view.interceptor.remote_requests() == []
    dock.shutdown()


@pytest.mark.bundled
def test_dock_default_engine_is_llama_cpp(qtbot, small_gguf, tmp_path):
    """A click in the app's pane: attention captured from llama.cpp on the GGUF itself, term and head view drawn."""
    from desktop.attention.dock import AttentionDock
    from desktop.attention.llama_engine import LlamaAttentionEngine

    dock = AttentionDock()
    qtbot.addWidget(dock)
    dock.resize(1100, 800)
    dock.show()
    src_span = (ZH.index("急性心肌梗死"), ZH.index("急性心肌梗死") + 6)
    with qtbot.waitSignal(dock.alignmentReady, timeout=120000) as aligned, \
            qtbot.waitSignal(dock.viewShown, timeout=120000) as shown:
        dock.show_term(ZH, EN, src_span, TERM, "zh-en", str(small_gguf))
    engine = dock.engine_for(str(small_gguf))
    assert isinstance(engine, LlamaAttentionEngine) and engine.loaded
    assert shown.args[0] == "term"
    assert aligned.args[0]["src_text"] == "急性心肌梗死" and not aligned.args[0]["weak"]
    assert not dock.compare.isEnabled()  # a plain GGUF has no adapters to switch off
    with qtbot.waitSignal(dock.viewShown, timeout=120000) as shown:
        dock.tabs.setCurrentIndex(1)  # head view
    assert shown.args[0] == "head" and dock.view.interceptor.remote_requests() == []
    dock.shutdown()


def test_cli_writes_offline_html_png_and_json(tiny_qwen2_dir, tmp_path, capsys):
    from desktop.attention.cli import main

    out, png, js = tmp_path / "page.html", tmp_path / "page.png", tmp_path / "a.json"
    rc = main(["attention", "--model", str(tiny_qwen2_dir), "--source", ZH, "--translation", EN,
               "--term", "acute myocardial infarction", "--source-term", "急性心肌梗死", "--out", str(out),
               "--png", str(png), "--json", str(js)])
    assert rc == 0
    summary = json.loads(js.read_text())
    assert summary["view"] == "term" and summary["alignment"]["term"] == "acute myocardial infarction"
    assert json.loads(capsys.readouterr().out)["alignment"] == summary["alignment"]
    assert "cdnjs" not in out.read_text() and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="does not occur"):
        main(["--model", str(tiny_qwen2_dir), "--source", ZH, "--translation", EN, "--term", "stroke",
              "--out", str(tmp_path / "x.html")])


def test_add_parser_registers_the_subcommand():
    import argparse

    from desktop.attention.cli import add_parser, run

    parser = argparse.ArgumentParser(prog="tsx-medtrans")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["attention", "--source", "a", "--translation", "b", "--out", "x.html"])
    assert args.func is run and args.out == Path("x.html") and args.view is None
