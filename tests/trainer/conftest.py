from __future__ import annotations

from pathlib import Path

import pytest

from trainer.data import DataConfig, prepare


@pytest.fixture(scope="session")
def small_prepared(tmp_path_factory, shared_data) -> Path:
    """A prepared folder from real shared data, small enough for CPU tests (first lines of each file)."""
    src = tmp_path_factory.mktemp("subset")
    for name, n in (("terms/hpo_zh.tsv", 300), ("terms/tico19_covid_terms.tsv", 100),
                    ("sentences/wmt18_medline_zh2en.tsv", 120), ("sentences/tico19_en2zh.tsv", 200)):
        lines = (shared_data / name).read_text(encoding="utf-8").splitlines()[:n]
        (src / Path(name).name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = DataConfig.load()
    config.data_root = str(src)
    config.terms = ["hpo_zh.tsv", "tico19_covid_terms.tsv"]
    config.sentences = ["wmt18_medline_zh2en.tsv", "tico19_en2zh.tsv"]
    out = tmp_path_factory.mktemp("prepared")
    prepare(config, out)
    return out
