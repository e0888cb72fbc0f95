"""The one GGUF header reader (``medcore.gguf_header``), checked against the ``gguf`` package's reader
on the real bundled model; the app and the converter both use it."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest

from medcore.gguf_header import ArrayLength, Key, read_gguf_info
from medcore.models import ModelError


def test_app_and_converter_use_the_one_reader():
    import converter.cli
    import converter.verify
    import desktop.engine
    import desktop.gguf_meta
    import medcore.gguf_header

    assert desktop.gguf_meta.read_gguf_info is medcore.gguf_header.read_gguf_info
    assert desktop.engine.read_gguf_info is medcore.gguf_header.read_gguf_info
    for module in (converter.cli, converter.verify, desktop.engine):
        source = inspect.getsource(module)
        assert "GGUFReader" not in source and "struct.unpack" not in source
    # every key is spelled once, in Key: no module of the app or converter spells one itself
    for module in (desktop.engine, converter.cli, converter.verify):
        source = inspect.getsource(module)
        assert '"tokenizer.chat_template"' not in source and '"general.file_type"' not in source


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
