"""HF model + stage adapters -> merged HF directory -> GGUF, with proof that nothing changed on the way.

``merge`` applies the stage adapters in training order, ``gguf`` drives llama.cpp's own converter
and quantiser (from the same llama.cpp version as the installed llama-cpp-python) and ``verify``
compares the GGUF against the merged model (and against the base, to see the fine-tune survive).
"""

from medcore.models import ModelError


class ConvertError(ModelError):
    """A conversion that cannot go ahead or did not hold up, with what to do about it."""


__all__ = ["ConvertError"]
