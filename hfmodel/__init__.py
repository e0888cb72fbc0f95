"""The torch model layer: transformers models from the project's model files, one way for every user.

- :mod:`hfmodel.cache`: a bundled GGUF or an HF directory as an HF directory (a GGUF is dequantised
  once into ``<models dir>/.hf-cache/``), and a tokenizer-only directory for a GGUF.
- :mod:`hfmodel.fingerprints`: stable identities of a base model and of an adapter.
- :mod:`hfmodel.loading`: device and dtype, tokenizer, model, and a model ready for inference.
- :mod:`hfmodel.adapters`: stage adapters (``tsx_stage.json``) and :func:`~hfmodel.adapters.stack_adapters`,
  the one way adapters are put on a base: merged, or kept live.

The trainer, the converter, the evaluation and the reference attention engine
(``desktop.attention.engine``) all load models through this package. It imports only ``medcore``;
torch, transformers and peft are imported inside the functions that need them.
"""
