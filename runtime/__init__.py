"""Running a translation model: llama.cpp behind one Qt-free, torch-free API.

The app's window and ``tsx-medtrans translate``, ``tsx-eval``'s llama.cpp backend, the self-test, the
converter's runtime check and the benchmarks all run a GGUF through this package, so they run it
the same way:

- :mod:`runtime.llamacpp`: the one door to llama.cpp (portable CPU variants, no AMX, the repacking switch);
- :mod:`runtime.adapters`: the runtime LoRA stack (files and provenance: :mod:`medcore.lora`);
- :mod:`runtime.gguf_header`: the one GGUF header reader, every metadata key in one table;
- :mod:`runtime.model_hash`: a model file's cached sha256;
- :mod:`runtime.machine`: free memory, what a model needs, decode threads;
- :mod:`runtime.chat_template`: the prompt contract rendered by the GGUF's own chat template;
- :mod:`runtime.segment`: sentences, clauses, and the separators between translations;
- :mod:`runtime.options`, :mod:`runtime.results`, :mod:`runtime.errors`: what the engine is given and gives back;
- :mod:`runtime.engine`: :class:`~runtime.engine.TranslationEngine` (load, prompt, output budget,
  segments, streaming, cancelling, adapters on and off);
- :mod:`runtime.side_by_side` on :mod:`runtime.parallel_decode`: segments decoded side by side;
- :mod:`runtime.attention_capture`: attention weights out of llama.cpp's compute graph.

It imports only :mod:`medcore` (``tests/test_import_rules.py``); ``llama_cpp`` only when a model is opened.
"""
