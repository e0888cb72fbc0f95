"""``tsx-medtrans --self-test``: prove an installation works, offline, and exit non-zero if it does not.

That command is the one entry point (``desktop.cli`` hands ``--self-test ...`` to
:func:`desktop.selftest.run.main`; from source: ``python -m desktop.cli --self-test``).

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
   (``runtime.llamacpp``); the report names the CPU variant ggml chose for this CPU (the
   portable build ships one library per instruction-set level), the features that variant was
   built with, the CPU's description, every variant shipped, and whether weight repacking is on.
   A loaded AMX backend (crashes on decode, llama.cpp #20824) turns repacking off and is reported;
5. ``load`` and ``translate``: the app's own engine (``runtime.engine``) loads the model and
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

Modules: ``report`` (the framework: a check, its timing, the JSON report), ``checks`` (1-5),
``attention`` (6-7), ``run`` (the command line and the order the checks run in).
"""

from desktop.selftest.attention import build_attention_pages, check_attention, pick_term, render_page
from desktop.selftest.checks import (
    REQUIRED_RESOURCES,
    SENTENCES,
    check_environment,
    check_llama_backend,
    check_load,
    check_model,
    check_resources,
    check_translate,
)
from desktop.selftest.report import Check, CheckFailed, Report

__all__ = ["REQUIRED_RESOURCES", "SENTENCES", "Check", "CheckFailed", "Report", "build_attention_pages",
           "check_attention", "check_environment", "check_llama_backend", "check_load", "check_model",
           "check_resources", "check_translate", "pick_term", "render_page"]
