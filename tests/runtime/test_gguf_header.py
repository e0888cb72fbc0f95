"""The one GGUF header reader (``runtime.gguf_header``), checked against the ``gguf`` package's reader
on the real bundled model; the runtime, the app and the converter all use it, with its keys."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from medcore.models import ModelError
from runtime.gguf_header import ArrayLength, Key, read_gguf_info

ROOT = Path(__file__).resolve().parents[2]


def test_app_and_converter_use_the_one_reader():
    import converter.verify
    import runtime.engine

    assert runtime.engine.read_gguf_info is read_gguf_info
    assert converter.verify.Key is Key
    # No other GGUF parser, and every key is spelled once, in Key: no module of the runtime, the app,
    # the converter, the evaluation or the benchmarks spells one itself.
    keys = [v for k, v in vars(Key).items() if k.isupper() and not k.startswith("ARCH_")]
    offenders = {}
    for folder in ("runtime", "desktop", "converter", "evaluation", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "runtime" / "gguf_header.py":
                continue
            source = path.read_text(encoding="utf-8")
            found = [k for k in keys if f'"{k}"' in source or f"'{k}'" in source]
            found += [s for s in ("GGUFReader", "struct.unpack") if s in source]
            if found:
                offenders[str(path.relative_to(ROOT))] = found
    assert not offenders


@pytest.mark.bundled
def test_reader_agrees_with_the_gguf_package_on_the_bundled_model(small_gguf):
    gguf = pytest.importorskip("gguf")
    ours = read_gguf_info(small_gguf)
    ref = gguf.GGUFReader(str(small_gguf))
    assert ours.tensor_count == len(ref.tensors)
    assert ours.tensor_types == Counter(t.tensor_type.name for t in ref.tensors)
    checked = 0
    for key, f in ref.fields.items():
        if key.startswith("GGUF."):
            continue  # the gguf package's own pseudo-fields (version, counts)
        if f.types[0].name == "ARRAY":
            value = ours.metadata[key]
            n = len(f.data)
            assert (value.count if isinstance(value, ArrayLength) else len(value)) == n, key
        elif f.types[0].name == "STRING":
            assert ours.metadata[key] == bytes(f.parts[f.data[0]]).decode("utf-8"), key
        else:
            assert ours.metadata[key] == pytest.approx(f.parts[f.data[0]].tolist()[0]), key
        checked += 1
    assert checked == len(ours.metadata) > 20
    assert (ours.architecture, ours.n_layers, ours.n_vocab) == ("qwen2", 24, 151936)
    assert ours.chat_template and "<|im_start|>" in ours.chat_template
    assert ours.eos_token_id == ours.get(Key.EOS_TOKEN_ID) and isinstance(ours.eos_token_id, int)
    assert ours.train_ctx == 32768 and ours.kv_cache_bytes(1024) > 0


def test_truncated_header_is_refused_with_a_reason(tmp_path, small_gguf):
    cut = tmp_path / "cut.gguf"
    with open(small_gguf, "rb") as fh:
        cut.write_bytes(fh.read(2000))
    with pytest.raises(ModelError, match="truncated or corrupt"):
        read_gguf_info(cut)
