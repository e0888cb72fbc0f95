"""Evaluation: ``tsx-eval``. Each module has one job.

- :mod:`evaluation.testsets`: loading a test set (prepared JSONL or pair file), its glossary, its identity.
- :mod:`evaluation.scoring`: BLEU, chrF, term accuracy, COMET, paired bootstrap (imports without torch).
- :mod:`evaluation.translators`: the transformers and llama.cpp backends, same prompt, greedy.
- :mod:`evaluation.aggregate`: rows with hypotheses -> metrics per direction, per kind, overall.
- :mod:`evaluation.runs`: one system on one test set: translate, save, score (``tsx-eval run``).
- :mod:`evaluation.resume`: translations saved as they finish, an interrupted run resumed.
- :mod:`evaluation.ablation`: base | +stage 1 | +stage 1+2 (``tsx-eval ablation``).
- :mod:`evaluation.significance`: paired bootstrap between the ablation's systems.
- :mod:`evaluation.reports`: the ablation table as Markdown and CSV; :mod:`evaluation.plots`: its chart.
- :mod:`evaluation.cli`: the command line.

Imports ``medcore``, ``hfmodel`` (transformers backend, adapter checks) and, for the llama.cpp
backend, the app's own engine (``runtime.engine``); never ``desktop`` or ``trainer``.
"""
