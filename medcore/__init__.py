"""Contracts shared by the trainer, the converter and the desktop app.

Each module here holds one contract in exactly one place: the prompt (`prompt`), the
pair/term file readers (`pairs`), the prepared record (`records`), the term matcher (`terms`), text normalisation
(`textnorm`), the models directory (`models`) and atomic file output (`atomic`).
Nothing in this package imports torch, transformers or Qt.
"""
