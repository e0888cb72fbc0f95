"""Self-contained, offline HTML pages for the attention views.

Three pages, each one file that needs nothing but itself (so the same file is what the app shows,
what "Export HTML" writes and what a browser opens offline):

* ``head_view_html`` / ``model_view_html``: BertViz's own head view and model view, produced by
  BertViz's ``head_view`` / ``model_view`` with ``html_action='return'`` (loaded with a numpy
  ``util`` in place of its torch one, so no torch: :func:`_bertviz_view`) and then rewritten:
  the require.js ``<script src=cdnjs...>`` and the ``require.config`` CDN paths are removed, and the
  vendored require.js, d3 5.7.0 and jQuery 2.2.4 (``resources/web/vendor``) are inlined and
  registered as the AMD modules ``d3`` and ``jquery``. The selected term's tokens are highlighted
  and preselected by a small script of ours.
* ``term_view_html``: our term view (``resources/web/term_view.js``): attention of the selected
  target term to each source token by layer, the best-aligned source span and its confidence,
  optionally side by side with the base model.

Safety: everything from the user (source, translation, tokens, model names) reaches the page only
as JSON inside ``<script>`` elements, through :func:`safe_json` (``<``, ``>``, ``&``, U+2028 and
U+2029 escaped, so ``</script>`` can never end the element), or as HTML text through
``html.escape``. Pages are rendered with ``textContent``/d3 ``.text()`` only. Every page also
carries a Content-Security-Policy that forbids all network access and runs only scripts carrying
the page's random nonce, so even an injected ``<script>`` would not run.

Size: BertViz embeds every layer x head x n x n weight as JSON, and each sentence-pair filter's
block of it a second time. Weights are rounded to 3 decimals, the filters' blocks are cut from the
full matrix in the page (:func:`compact_params`), and layers are thinned to stay under
``max_values`` numbers (the pages load from files, so the 2 MB ``setHtml`` limit does not apply,
but a 50 MB page is slow to parse and draw). The CJK glyphs the page shows are embedded
(:mod:`desktop.fonts`).
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from desktop.attention.alignment import TermAlignment
from desktop.attention.engine import AttentionResult
from medcore.resources import resource_path

MAX_VALUES = 1_200_000  # numbers embedded in a BertViz page (~6 MB of JSON)
MAX_MODEL_VIEW_LINES = 30_000  # SVG lines the model view draws for its default filter (~8 layers of 0.5B)
FILTER_NAMES = {  # bertviz's sentence-pair filter names -> ours (sentence A = source, B = translation)
    "Sentence A -> Sentence A": "Source → Source",
    "Sentence B -> Sentence B": "Translation → Translation",
    "Sentence A -> Sentence B": "Source → Translation",
    "Sentence B -> Sentence A": "Translation → Source",
}
FILTER_ALL, FILTER_TGT_SRC = "0", "4"  # indices of bertviz's filters for sentence pairs

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def escape_json_text(text: str) -> str:
    """Make JSON text safe inside ``<script>``: the escaped characters occur only inside strings."""
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def safe_json(obj: Any) -> str:
    """``json.dumps`` for embedding in HTML ``<script>`` elements (see module docstring)."""
    return escape_json_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


@dataclass(frozen=True)
class TermSelection:
    """The term the user clicked: a span of the translation, and optionally the source term."""

    tgt_span: tuple[int, int]
    src_span: tuple[int, int] | None = None


@lru_cache(maxsize=8)
def _web_file(*parts: str) -> str:
    text = resource_path("web", *parts).read_text(encoding="utf-8")
    if "</script" in text.lower():  # would end the inline element early
        text = re.sub(r"(?i)</script", r"<\\/script", text)
    return text


def vendor_scripts(nonce: str) -> str:
    """Inline require.js, then d3 and jQuery registered as named AMD modules (no loader fetches).

    d3's UMD wrapper calls an *anonymous* ``define`` when one exists, which require.js rejects for
    inline scripts ("mismatched anonymous define"), so ``define`` is hidden while the libraries
    run (they then attach ``window.d3`` / ``window.jQuery``) and named modules are defined after.
    """
    n = html.escape(nonce, quote=True)
    return (
        f'<script nonce="{n}">{_web_file("vendor", "require-2.3.6.js")}</script>\n'
        f'<script nonce="{n}">window.__tsxDefine = window.define; window.define = undefined;</script>\n'
        f'<script nonce="{n}">{_web_file("vendor", "d3-5.7.0.min.js")}</script>\n'
        f'<script nonce="{n}">{_web_file("vendor", "jquery-2.2.4.min.js")}</script>\n'
        f'<script nonce="{n}">window.define = window.__tsxDefine; delete window.__tsxDefine;\n'
        "define('d3', [], function () { return window.d3; });\n"
        "define('jquery', [], function () { return window.jQuery; });</script>\n"
    )


CSS = """
body { font-family: "Helvetica Neue", Helvetica, Arial, "TSX CJK", "WenQuanYi Micro Hei", "Noto Sans CJK SC",
       "Microsoft YaHei", "PingFang SC", sans-serif; margin: 12px; color: #222; background: #fff; }
/* BertViz sets its own font stack inline, without CJK fonts: add the embedded one. */
div[style*="font-family"] { font-family: "Helvetica Neue", Helvetica, Arial, "TSX CJK", sans-serif !important; }
header.tsx { margin-bottom: 10px; font-size: 13px; line-height: 1.5; }
header.tsx h1 { font-size: 16px; margin: 0 0 4px 0; }
header.tsx .pair span.label { color: #777; display: inline-block; min-width: 90px; }
header.tsx .note { color: #666; font-size: 12px; }
mark.term { background: #fde2e1; color: #b03a2e; font-weight: bold; padding: 0 1px; }
"""


def _doc(title: str, body: str, nonce: str, extra_css: str = "") -> str:
    """The page around ``body``, with the glyphs of every CJK character in it embedded (:mod:`desktop.fonts`)."""
    from desktop.fonts import font_face_css

    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
           "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=False)}">\n'
        f"<title>{html.escape(title)}</title>\n<style>{font_face_css(title + body)}{CSS}{extra_css}</style>\n</head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _marked(text: str, span: tuple[int, int] | None) -> str:
    """HTML-escaped ``text`` with ``span`` wrapped in ``<mark class=term>``."""
    if not span:
        return html.escape(text)
    a, b = span
    return html.escape(text[:a]) + '<mark class="term">' + html.escape(text[a:b]) + "</mark>" + html.escape(text[b:])


def _header(result: AttentionResult, title: str, term: TermSelection | None, note: str) -> str:
    src = _marked(result.source, term.src_span if term else None)
    tgt = _marked(result.translation, term.tgt_span if term else None)
    return (
        f'<header class="tsx"><h1>{html.escape(title)}</h1><div class="pair">'
        f'<div><span class="label">Source</span> {src}</div>'
        f'<div><span class="label">Translation</span> {tgt}</div>'
        f'<div><span class="label">Model</span> {html.escape(result.model)} ({html.escape(result.variant)}), '
        f'{result.n_layers} layers × {result.n_heads} heads, {html.escape(result.direction)}</div></div>'
        f'<div class="note">{html.escape(note)}</div></header>'
    )


def pick_layers(n_layers: int, per_layer_values: int, budget: int, keep: Sequence[int] = ()) -> list[int]:
    """All layers if they fit in ``budget`` numbers, else an evenly spaced subset incl. ``keep``."""
    fit = max(1, budget // max(per_layer_values, 1))
    if fit >= n_layers:
        return list(range(n_layers))
    chosen = {int(k) for k in keep if 0 <= k < n_layers}
    for x in np.linspace(0, n_layers - 1, num=max(fit - len(chosen), 1)):
        if len(chosen) >= fit:
            break
        chosen.add(int(round(x)))
    return sorted(chosen)[:max(fit, len(chosen))]


_MARK = "PYTHON_PARAMS"


BERTVIZ_VERSION = "1.4.1"  # the vendored copy: resources/web/vendor/bertviz-1.4.1 (see its README)
_IPYTHON_IMPORT = "from IPython.display import display, HTML, Javascript"


def _bertviz_version() -> str:
    return BERTVIZ_VERSION


def _bertviz_dir() -> Path:
    """The vendored BertViz view files (two ``.py``, two ``.js``; Apache-2.0)."""
    return resource_path("web", "vendor", f"bertviz-{BERTVIZ_VERSION}")


class _NumpyBertvizUtil:
    """``bertviz.util`` for numpy arrays: the only part of BertViz's page code that needs torch.

    BertViz's ``head_view``/``model_view`` stack the per-layer tensors (``torch.stack``), slice them and
    call ``.tolist()``; numpy does the same with ``np.stack``, so the JSON (and the page) is identical.
    """

    @staticmethod
    def format_attention(attention: Sequence[np.ndarray], layers: Sequence[int] | None = None,
                         heads: Sequence[int] | None = None) -> np.ndarray:
        if layers:
            attention = [attention[i] for i in layers]
        squeezed = []
        for layer_attention in attention:
            if len(layer_attention.shape) != 4:
                raise ValueError("each layer's attention must be [1, heads, n, n]")
            layer_attention = layer_attention[0]
            if heads:
                layer_attention = layer_attention[list(heads)]
            squeezed.append(layer_attention)
        return np.stack(squeezed)

    @staticmethod
    def num_layers(attention: Sequence[np.ndarray]) -> int:
        return len(attention)

    @staticmethod
    def num_heads(attention: Sequence[np.ndarray]) -> int:
        return int(attention[0][0].shape[0])

    @staticmethod
    def format_special_chars(tokens: Sequence[str]) -> list[str]:
        return [t.replace("Ġ", " ").replace("▁", " ").replace("</w>", "") for t in tokens]


class _Markup:
    """Stand-in for IPython's ``HTML``/``Javascript``: BertViz only reads ``.data`` back (``html_action='return'``)."""

    def __init__(self, data: str = ""):
        self.data = data


def _no_display(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("BertViz's notebook display is not available here (use html_action='return')")


@lru_cache(maxsize=2)
def _bertviz_view(view: str) -> Any:
    """BertViz's ``head_view``/``model_view`` function, from the vendored file, without torch or IPython.

    The file is compiled as a module of a private package (``desktop.attention._bertviz``) whose
    ``util`` is :class:`_NumpyBertvizUtil`; its one IPython import line is pointed at this module's
    stand-ins (the line is checked to be there, so a different BertViz fails loudly). The real
    ``bertviz`` package, if installed, is neither needed nor touched.
    """
    import sys
    import types

    package = "desktop.attention._bertviz"
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = []  # type: ignore[attr-defined]
        util = types.ModuleType(package + ".util")
        for name in ("format_attention", "num_layers", "num_heads", "format_special_chars"):
            setattr(util, name, getattr(_NumpyBertvizUtil, name))
        sys.modules[package], sys.modules[package + ".util"] = pkg, util
    name = f"{package}.{view}"
    if name not in sys.modules:
        path = _bertviz_dir() / f"{view}.py"
        code = path.read_text(encoding="utf-8")
        if code.count(_IPYTHON_IMPORT) != 1:
            raise ImportError(f"{path} is not the BertViz {BERTVIZ_VERSION} file this code expects")
        code = code.replace(_IPYTHON_IMPORT, "from desktop.attention.page import _no_display as display, "
                                             "_Markup as HTML, _Markup as Javascript")
        module = types.ModuleType(name)
        module.__file__, module.__package__ = str(path), package
        sys.modules[name] = module
        try:
            exec(compile(code, str(path), "exec"), module.__dict__)  # noqa: S102 - vendored, checked file
        except BaseException:
            del sys.modules[name]
            raise
    return getattr(sys.modules[name], view)


@lru_cache(maxsize=4)
def _bertviz_template(view: str) -> str:
    return (_bertviz_dir() / f"{view}.js").read_text(encoding="utf-8")


def _rewrite_bertviz(raw: str, view: str, nonce: str) -> tuple[str, str]:
    """Split BertViz's returned HTML into (markup, script) with CDN references removed and the
    params JSON escaped for inline use.

    BertViz pastes ``json.dumps(params)`` into its JS template at every ``PYTHON_PARAMS`` marker
    (the code, and once more in a comment). Its length follows from the lengths of the template
    and of the returned text; the rebuilt text is compared with the original to prove the split
    (a token that looks like template code cannot fool a full comparison). The script is then
    rebuilt from the template with the JSON escaped once, and without the comment copy.
    """
    template = _bertviz_template(view)
    before, after = template.split(_MARK, 1)
    trailer = "\n</script>\n"
    start = raw.index(before) + len(before)
    copies = template.count(_MARK)
    fixed = len(template) - copies * len(_MARK) - len(before)
    body_len = len(raw) - len(trailer) - start - fixed
    if body_len <= 0 or body_len % copies or not raw.endswith(trailer):
        raise ValueError("unexpected BertViz output (template changed?)")
    params_json = raw[start:start + body_len // copies]
    if raw[start - len(before):len(raw) - len(trailer)] != template.replace(_MARK, params_json):
        raise ValueError("unexpected BertViz output (params could not be located)")
    after = after.replace(_MARK, "params")
    markup = raw[: start - len(before)]
    markup = re.sub(r'<script src="https?://[^"]*"></script>', "", markup)
    markup = markup.replace('<script type="text/javascript">', "").rstrip()
    for old, new in FILTER_NAMES.items():
        markup = markup.replace(f">{old}<", f">{html.escape(new)}<")
    if re.search(r"https?://", markup):
        raise ValueError("unexpected remote reference left in BertViz markup")
    js_before = re.sub(r"require\.config\(\{.*?\}\);", "", before, count=1, flags=re.S)
    # The leading changelog comment links to GitHub (a comment, but keep the check strict).
    js_before = re.sub(r"^\s*/\*\*.*?\*\*/", f"/* BertViz {_bertviz_version()} {view}.js (Apache-2.0, Jesse Vig) */",
                       js_before, count=1, flags=re.S)
    if re.search(r"https?://", js_before + after):
        raise ValueError("unexpected remote reference left in BertViz script")
    script = (f'<script nonce="{html.escape(nonce, quote=True)}">\n{EXPAND_JS}{js_before}'
              f'tsxExpand({escape_json_text(compact_params(params_json))}){after}\n</script>')
    return markup, script


def _zeros_as_ints(value: Any) -> Any:
    if isinstance(value, float):
        return 0 if value == 0 else value
    if isinstance(value, list):
        return [_zeros_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _zeros_as_ints(v) for k, v in value.items()}
    return value


def _cut_of(full: list, entry: dict, tokens: list) -> list[int] | None:
    """[row0, row1, col0, col1] when ``entry``'s attention is exactly that block of the full matrix."""
    def span(part: list) -> tuple[int, int] | None:
        for start in range(len(tokens) - len(part) + 1):
            if tokens[start:start + len(part)] == part:
                return start, start + len(part)
        return None

    rows, cols = span(entry.get("left_text") or []), span(entry.get("right_text") or [])
    if rows is None or cols is None or not rows[1] > rows[0] or not cols[1] > cols[0]:
        return None
    block = np.asarray(full)[:, :, rows[0]:rows[1], cols[0]:cols[1]]
    attn = np.asarray(entry["attn"])
    return [*rows, *cols] if block.shape == attn.shape and np.array_equal(block, attn) else None


#: Rebuilds the sentence-pair filters' matrices from the full one (see compact_params), before BertViz reads them.
EXPAND_JS = """function tsxExpand(p) {
  var full = p.attention[0].attn;
  p.attention.forEach(function (e) {
    if (!e.tsx_cut) return;
    var c = e.tsx_cut;
    e.attn = full.map(function (layer) { return layer.map(function (head) {
      return head.slice(c[0], c[1]).map(function (row) { return row.slice(c[2], c[3]); }); }); });
    delete e.tsx_cut;
  });
  return p;
}
"""


def compact_params(text: str) -> str:
    """BertViz's params JSON, same values, about a third of the bytes.

    * BertViz stores the pair's full matrix and then each sentence-pair filter's block of it again
      (source→source, translation→translation, and both cross blocks): those four are replaced by
      their coordinates (``tsx_cut``), checked to be exact copies, and rebuilt by :data:`EXPAND_JS`;
    * no spaces after separators, and ``0`` for ``0.0`` (in a causal model about half the weights are
      exactly zero).

    A 14+16-token pair on the 0.5B: 3.6 MB → about 1.3 MB for the head view.
    """
    params = json.loads(text)
    entries = params.get("attention") or []
    if entries and "attn" in entries[0]:
        full, tokens = entries[0]["attn"], entries[0].get("left_text") or []
        if tokens == entries[0].get("right_text"):
            for entry in entries[1:]:
                cut = _cut_of(full, entry, tokens)
                if cut is not None:
                    del entry["attn"]
                    entry["tsx_cut"] = cut
    return json.dumps(_zeros_as_ints(params), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _layers(array: np.ndarray, layers: Sequence[int], heads: Sequence[int] | None = None) -> list[np.ndarray]:
    """BertViz wants a list (per layer) of [1, heads, n, n] arrays; rounded float64 keeps the JSON
    short (0.123, not 0.12300000339746475)."""
    sel = array[list(layers)]
    if heads is not None:
        sel = sel[:, list(heads)]
    t = np.round(sel.astype(np.float64), 3)
    return [t[i][None] for i in range(t.shape[0])]


def _term_units(result: AttentionResult, term: TermSelection | None) -> dict[str, list[int]]:
    if term is None:
        return {"src": [], "tgt": []}
    return {"src": result.units_in(term.src_span, "src"), "tgt": result.units_in(term.tgt_span, "tgt")}


def head_view_html(result: AttentionResult, term: TermSelection | None = None, layer: int | None = None,
                   max_values: int = MAX_VALUES, title: str = "Attention: head view") -> str:
    """BertViz head view of the pair (source = sentence A, translation = sentence B).

    With a term, the view opens on "Translation → Source" at ``layer``, the term's tokens are
    highlighted and the first one is preselected (its attention lines shown)."""
    head_view = _bertviz_view("head_view")

    n = result.n_src + result.n_tgt
    per_layer = n * n * result.n_heads  # the full matrix: the filters' blocks are cut from it in the page
    keep = [layer] if layer is not None else []
    layers = pick_layers(result.n_layers, per_layer, max_values, keep)
    if layer is None or layer not in layers:
        layer = layers[len(layers) // 2]
    raw = head_view(attention=_layers(result.attentions, range(result.n_layers)), tokens=result.tokens,
                    sentence_b_start=result.n_src, prettify_tokens=False, layer=layer,
                    include_layers=layers, html_action="return").data
    nonce = secrets.token_urlsafe(18)
    markup, script = _rewrite_bertviz(raw, "head_view", nonce)
    if term is not None:
        markup, script = _open_on_translation_to_source(markup, script)
    note = ("Lines: attention from the left tokens (queries) to the right tokens (keys), one colour per head; "
            "click a head square to toggle it, hover a token to isolate it. Weights over source + translation "
            "tokens only (prompt scaffolding removed, rows renormalised).")
    if len(layers) < result.n_layers:
        note += f" Layers shown: {', '.join(map(str, layers))} (of {result.n_layers}; page size limit)."
    body = (_header(result, title, term, note) + vendor_scripts(nonce) + markup + "\n" + script + "\n"
            + _highlight_block("head", result, term, nonce))
    return _doc(title, body, nonce)


def _open_on_translation_to_source(markup: str, script: str) -> tuple[str, str]:
    """Make a BertViz page open on its "Translation → Source" filter (where a term's attention is)."""
    script = script.replace(f'"default_filter":"{FILTER_ALL}"', f'"default_filter":"{FILTER_TGT_SRC}"', 1)  # compact_params' JSON
    markup = markup.replace(f'<option value="{FILTER_TGT_SRC}">', f'<option value="{FILTER_TGT_SRC}" selected>', 1)
    return markup, script


def model_view_html(result: AttentionResult, term: TermSelection | None = None, layer: int | None = None,
                    head: int | None = None, max_values: int = MAX_VALUES,
                    title: str = "Attention: model view") -> str:
    """BertViz model view (every layer x head as a thumbnail). With a term it opens on
    "Translation → Source" with the detail of (``layer``, ``head``) and the term highlighted."""
    model_view = _bertviz_view("model_view")

    n = result.n_src + result.n_tgt
    per_layer = n * n * result.n_heads  # the full matrix; the filters' blocks are cut from it in the page
    budget = max_values
    if term is not None:  # the default filter draws n_tgt x n_src lines per thumbnail
        budget = min(budget, per_layer * max(1, MAX_MODEL_VIEW_LINES // max(1, result.n_heads * result.n_src * result.n_tgt)))
    else:
        budget = min(budget, per_layer * max(1, MAX_MODEL_VIEW_LINES // max(1, result.n_heads * n * n)))
    layers = pick_layers(result.n_layers, per_layer, budget, [layer] if layer is not None else [])
    raw = model_view(attention=_layers(result.attentions, range(result.n_layers)), tokens=result.tokens,
                     sentence_b_start=result.n_src, prettify_tokens=False, display_mode="light",
                     include_layers=layers, html_action="return").data
    nonce = secrets.token_urlsafe(18)
    markup, script = _rewrite_bertviz(raw, "model_view", nonce)
    if term is not None:
        markup, script = _open_on_translation_to_source(markup, script)
    note = ("Each cell is one head of one layer (rows: layers, columns: heads); click a cell for its detail, "
            "hover a left token in the detail to isolate it.")
    if len(layers) < result.n_layers:
        note += f" Layers shown: {', '.join(map(str, layers))} (of {result.n_layers}; page size limit)."
    extra = {"layers": layers, "detail_layer": layers.index(layer) if layer in layers else None,
             "detail_head": head}
    body = (_header(result, title, term, note) + vendor_scripts(nonce) + markup + "\n" + script + "\n"
            + _highlight_block("model", result, term, nonce, extra))
    return _doc(title, body, nonce)


def _highlight_block(view: str, result: AttentionResult, term: TermSelection | None, nonce: str,
                     extra: dict | None = None) -> str:
    data = {"view": view, "n_src": result.n_src, "n_tgt": result.n_tgt, "units": _term_units(result, term),
            **(extra or {})}
    n = html.escape(nonce, quote=True)
    return (f'<script type="application/json" id="tsx-highlight">{safe_json(data)}</script>\n'
            f'<script nonce="{n}">{_web_file("bertviz_highlight.js")}</script>')


def _round(a: np.ndarray, digits: int = 4) -> list:
    return np.round(a.astype(np.float64), digits).tolist()


def term_panel(result: AttentionResult, alignment: TermAlignment, label: str,
               alt: TermAlignment | None = None, band: Sequence[int] | None = None) -> dict:
    """JSON-ready data for one side of the term view (``alt``: the same with the other query kind)."""
    def one(a: TermAlignment) -> dict:
        return {"per_layer": _round(a.per_layer), "per_head": _round(a.per_head, 3), "profile": _round(a.profile),
                "source_share": _round(a.source_share), "summary": a.to_dict()}

    return {
        "label": label, "model": result.model, "variant": result.variant,
        "src_tokens": result.src_tokens, "tgt_tokens": result.tgt_tokens,
        "n_layers": result.n_layers, "n_heads": result.n_heads,
        "band": list(band) if band is not None else list(range(result.n_layers)),
        "queries": {alignment.query: one(alignment), **({alt.query: one(alt)} if alt is not None else {})},
    }


def term_view_html(source: str, translation: str, direction: str, term: TermSelection, panels: list[dict],
                   title: str = "Attention: term view") -> str:
    """Our term view; ``panels``: one (the model) or two (fine-tuned and base), from ``term_panel``."""
    nonce = secrets.token_urlsafe(18)
    data = {"source": source, "translation": translation, "direction": direction,
            "term": translation[term.tgt_span[0]:term.tgt_span[1]], "tgt_span": list(term.tgt_span),
            "src_span": list(term.src_span) if term.src_span else None, "panels": panels}
    n = html.escape(nonce, quote=True)
    body = (
        f'<header class="tsx"><h1>{html.escape(title)}</h1><div class="pair">'
        f'<div><span class="label">Source</span> {_marked(source, term.src_span)}</div>'
        f'<div><span class="label">Translation</span> {_marked(translation, term.tgt_span)}</div></div>'
        '<div class="note">For the selected term: attention of the positions that produced its tokens to each '
        "source token, per layer (mean over heads unless a head is chosen), renormalised over the source with "
        "punctuation left out. The box marks the best-aligned source span. Confidence (0–1) combines the "
        "attention mass on the span and the share of layers whose peak falls in it, each measured against "
        "chance (evenly spread attention scores 0), over the layers marked ▸.</div></header>"
        '<div id="tsx-term-root"></div>\n'
        f'<script type="application/json" id="tsx-data">{safe_json(data)}</script>\n'
        f'<script nonce="{n}">{_web_file("term_view.js")}</script>'
    )
    return _doc(title, body, nonce, _web_file("term_view.css"))


def write_page(page: str, path: str | Path) -> Path:
    """Write a page (UTF-8) atomically; returns its path."""
    from medcore.atomic import write_text

    write_text(path, page)
    return Path(path)
