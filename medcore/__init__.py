"""Contracts and shared data types of the trainer, the converter, the runtime and the desktop app.

Each module here holds one contract in exactly one place: the prompt (`prompt`, `term_block`), the
pair/term file readers (`pairs`), the prepared record (`records`), the term matcher and glossary (`terms`,
`glossary`), text normalisation (`textnorm`), the models directory and tuned-model specs (`models`,
`modelspec`), GGUF LoRA files and their provenance (`lora`), red flags (`redflags`), child processes
(`childproc`) and atomic file output (`atomic`). Running a model is :mod:`runtime`'s job.
Nothing in this package imports torch, transformers, Qt or llama.cpp.
"""
