"""Page building: offline (no CDN), escaped, size-limited. No Qt needed here."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np

from desktop.attention import page
from desktop.attention.alignment import align_term
from desktop.attention.page import TermSelection

XSS = '</script><script>window.__xss=1</script><img src=x onerror="window.__xss=2">\u2028&amp;'


def _script_tags(html: str) -> int:
    """Script elements as the page writes them (each starts a line); inline JS text is not counted."""
    return len(re.findall(r"^<script\b", html, flags=re.I | re.M))


def test_safe_json_cannot_break_out_of_script():
    text = page.safe_json({"t": XSS, "zh": "心肌"})
    assert "</script" not in text.lower() and "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text
    assert json.loads(text) == {"t": XSS, "zh": "心肌"}


def _xss_result(result):
    """The tiny result, relabelled so that tokens and texts carry the XSS string."""
    src_tokens = list(result.src_tokens)
    src_tokens[0] = XSS
    return replace(result, source=XSS + result.source, src_tokens=src_tokens, model=XSS)


def test_bertviz_pages_are_offline_and_escaped(tiny_result):
    r = _xss_result(tiny_result)
    term = TermSelection((31, 58))
    clean = {"head": page.head_view_html(tiny_result, term, layer=1),
             "model": page.model_view_html(tiny_result, term, layer=1, head=2)}
    for name, html in (("head", page.head_view_html(r, term, layer=1)),
                       ("model", page.model_view_html(r, term, layer=1, head=2))):
        # the texts add no element: an injection would add <script>/<img> tags
        assert _script_tags(html) == _script_tags(clean[name])
        assert html.count("<img") == clean[name].count("<img") == 0
        assert "cdnjs" not in html and "require.config({" not in html.split("define('jquery'")[1]
        assert XSS not in html  # never verbatim
        assert "Content-Security-Policy" in html and "default-src 'none'" in html
        nonce = re.search(r"'nonce-([^']+)'", html).group(1)
        assert all(f'nonce="{nonce}"' in tag for tag in re.findall(r"^<script\b[^>]*>", html, re.M)
                   if "application/json" not in tag)
        assert '"default_filter":"4"' in html  # opens on Translation -> Source
        assert "Translation → Source" in html
        # the escaped token is still there, as data
        assert "\\u003c/script\\u003e\\u003cscript\\u003ewindow.__xss=1" in html


def test_term_page_escapes_and_embeds_alignment(tiny_result):
    r = _xss_result(tiny_result)
    shift = len(XSS)
    tgt_span = (31, 58)
    a = align_term(r, tgt_span, (shift + 5, shift + 11))
    alt = align_term(r, tgt_span, query="term")
    html = page.term_view_html(r.source, r.translation, r.direction, TermSelection(tgt_span, (shift + 5, shift + 11)),
                               [page.term_panel(r, a, "This model", alt)])
    assert _script_tags(html) == 2 and XSS not in html
    assert "&lt;/script&gt;&lt;script&gt;" in html  # the header shows it as text
    data = json.loads(re.search(r'id="tsx-data">(.*?)</script>', html, re.S).group(1))
    assert data["term"] == "acute myocardial infarction"
    panel = data["panels"][0]
    assert panel["src_tokens"][0] == XSS
    assert set(panel["queries"]) == {"generation", "term"}
    assert len(panel["queries"]["generation"]["per_layer"]) == r.n_layers
    assert panel["queries"]["generation"]["summary"]["src_units"] == a.src_units


def test_layers_are_thinned_to_fit_the_budget(tiny_result):
    big = replace(tiny_result, attentions=np.repeat(tiny_result.attentions, 12, axis=0),
                  kept_mass=np.repeat(tiny_result.kept_mass, 12, axis=0),
                  generation=np.repeat(tiny_result.generation, 12, axis=0),
                  generation_kept_mass=np.repeat(tiny_result.generation_kept_mass, 12, axis=0))
    n = big.n_src + big.n_tgt
    per_layer = n * n * big.n_heads
    html = page.head_view_html(big, TermSelection((31, 58)), layer=13, max_values=per_layer * 5)
    layers = json.loads(re.search(r'"include_layers":(\[[^\]]*\])', html).group(1))
    assert len(layers) == 5 and 13 in layers and layers == sorted(layers)
    assert "Layers shown" in html
    assert page.pick_layers(24, 10, 1000) == list(range(24))
    picked = page.pick_layers(24, 100, 400, keep=[16])
    assert len(picked) == 4 and 16 in picked


def test_vendored_bertviz_without_torch_returns_what_bertviz_itself_returns(tiny_result):
    """The pages come from the vendored BertViz files with a numpy ``util`` (no torch, no IPython);
    the HTML must be exactly what the installed bertviz package (torch tensors) returns."""
    import pytest

    torch = pytest.importorskip("torch")
    bertviz = pytest.importorskip("bertviz")
    from importlib.metadata import version

    assert version("bertviz") == page.BERTVIZ_VERSION  # the vendored copy is the installed release
    r = tiny_result
    arrays = page._layers(r.attentions, range(r.n_layers))
    tensors = [torch.from_numpy(a) for a in arrays]
    for view in ("head_view", "model_view"):
        kwargs = {"tokens": r.tokens, "sentence_b_start": r.n_src, "prettify_tokens": False,
                  "include_layers": [0, 1], "html_action": "return"}
        ours = page._bertviz_view(view)(attention=arrays, **kwargs).data
        theirs = getattr(bertviz, view)(attention=tensors, **kwargs).data
        # BertViz puts a random element id (uuid4) in each page: compare with it normalised.
        norm = [re.sub(r"bertviz-[0-9a-f]{32}", "bertviz-ID", html) for html in (ours, theirs)]
        assert norm[0] == norm[1] and len(ours) > 5000


def _embedded_font(html: str):
    """The @font-face of a page: (its unicode-range characters, the decoded font)."""
    import base64
    import io

    from fontTools.ttLib import TTFont

    face = re.search(r"@font-face \{ font-family: 'TSX CJK'; src: url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\) "
                     r"format\('woff'\); unicode-range: ([^;]+); \}", html)
    assert face, "no embedded CJK font"
    chars = {chr(int(u[2:], 16)) for u in face.group(2).split(",")}
    return chars, TTFont(io.BytesIO(base64.b64decode(face.group(1))))


def test_pages_embed_the_glyphs_of_their_chinese_text(tiny_result):
    """Every CJK character a page shows is in its embedded font subset, and nothing much else."""
    from desktop.fonts import cjk_chars

    term = TermSelection((31, 58))
    alignment = align_term(tiny_result, term.tgt_span)
    pages = {"head": page.head_view_html(tiny_result, term, layer=1),
             "model": page.model_view_html(tiny_result, term, layer=1, head=2),
             "term": page.term_view_html(tiny_result.source, tiny_result.translation, "zh-en", term,
                                         [page.term_panel(tiny_result, alignment, "tuned")])}
    for name, html in pages.items():
        chars, font = _embedded_font(html)
        shown = set(cjk_chars(tiny_result.source))
        assert shown <= chars, name  # the source's every character, tokens included
        cmap = font.getBestCmap()
        assert all(ord(c) in cmap for c in chars), name  # each with a glyph
        assert len(cmap) < len(chars) + 10  # a subset, not the font (which maps ~30,000 characters)
        # a few KB on top of the page, not the 2 MB font
        assert len(html) - len(html.replace(re.search(r"@font-face[^\n]*\n", html).group(0), "")) < 40_000
    assert "@font-face" not in page._doc("English only", "<p>Chest pain.</p>", "n0nce")
    chars, _ = _embedded_font(page._doc("t", "<p>胸痛。</p>", "n0nce"))
    assert chars == {"胸", "痛", "。"}


def test_compact_params_keep_every_weight_and_shrink_the_page(tiny_result):
    """The four sentence-pair blocks are stored as coordinates into the full matrix; cut back out
    (as the page's tsxExpand does) they equal BertViz's own params, value for value."""
    head_view = page._bertviz_view("head_view")
    raw = head_view(attention=page._layers(tiny_result.attentions, range(tiny_result.n_layers)),
                    tokens=tiny_result.tokens, sentence_b_start=tiny_result.n_src, prettify_tokens=False,
                    html_action="return").data
    start = raw.index("const params = ") + len("const params = ")
    original_text = raw[start:raw.index("; // HACK", start)]
    original = json.loads(original_text)
    compact = json.loads(page.compact_params(original_text))
    full = np.asarray(compact["attention"][0]["attn"])
    assert [("tsx_cut" in e, "attn" in e) for e in compact["attention"]] == [(False, True)] + [(True, False)] * 4
    n_src = tiny_result.n_src
    n = n_src + tiny_result.n_tgt
    assert [e["tsx_cut"] for e in compact["attention"][1:]] == [[0, n_src, 0, n_src], [n_src, n, n_src, n],
                                                                [0, n_src, n_src, n], [n_src, n, 0, n_src]]
    for mine, theirs in zip(compact["attention"], original["attention"], strict=True):
        r0, r1, c0, c1 = mine.get("tsx_cut", [0, n, 0, n])
        np.testing.assert_array_equal(full[:, :, r0:r1, c0:c1], np.asarray(theirs["attn"]))
        assert mine["left_text"] == theirs["left_text"] and mine["right_text"] == theirs["right_text"]
    assert len(page.compact_params(original_text)) < 0.45 * len(original_text)
