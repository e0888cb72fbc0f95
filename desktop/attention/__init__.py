"""Attention inspection: what the model attended to when it produced a term (issue 6).

Modules: ``engine`` (AttentionEngine interface, transformers engine, AttentionResult of plain
arrays), ``tokens`` (BPE pieces -> readable units), ``alignment`` (term -> source span +
confidence), ``page`` (offline HTML: BertViz views and the term view), ``session`` (one request
end to end), ``view`` (QWebEngineView with a blocking request interceptor), ``worker`` (QThread),
``dock`` (the app's pane), ``cli`` (``tsx-medtrans attention``). Importing this package imports
neither torch nor Qt; ``view``/``dock``/``worker`` need PySide6 with QtWebEngine.
"""
