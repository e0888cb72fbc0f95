"""The prepared record: one translation example as ``tsx-train prepare`` writes it, read and sampled one way.

A prepared JSONL holds one record a line: ``{"id", "kind", "direction", "source", "target", "origin"}``
(``terms/{train,val,test}.jsonl``, ``sentences/...``, ``combined_test.jsonl``). Data preparation
writes :class:`PreparedRecord` objects, training and evaluation read them back with
:func:`read_records`, and both validate them the same way (:meth:`PreparedRecord.from_dict`): a bad
line is a :class:`medcore.pairs.DataFormatError` naming the file, the line and what is wrong.
:func:`select_records` is the seeded sample spread over direction x kind that evaluation draws.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcore.pairs import DataFormatError
from medcore.prompt import split_direction

KINDS = ("term", "sentence")
FIELDS = ("id", "kind", "direction", "source", "target")


@dataclass(frozen=True)
class PreparedRecord:
    """One example in one direction: ``source`` is translated, ``target`` is the reference answer."""

    id: str
    kind: str  # term | sentence
    direction: str  # zh-en | en-zh
    source: str
    target: str
    origin: str | None = None  # input file and line the pair came from ("cedict_medical.tsv:12")

    def __post_init__(self) -> None:
        for name in (*FIELDS, "origin"):
            value = getattr(self, name)
            if not isinstance(value, str) and not (name == "origin" and value is None):
                raise ValueError(f"{name} must be a string, not {type(value).__name__} ({value!r})")
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        split_direction(self.direction)

    @classmethod
    def from_dict(cls, data: Any, default_kind: str | None = None) -> PreparedRecord:
        """The record a decoded JSON line describes (the one validator); ``ValueError`` says what is wrong.

        ``default_kind`` is used for a record without ``kind``; without one, ``kind`` is required.
        Keys other than the record's fields are ignored.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object with {', '.join(FIELDS)}; got {type(data).__name__}")
        values = dict(data)
        if "kind" not in values and default_kind is not None:
            values["kind"] = default_kind
        missing = [name for name in FIELDS if name not in values]
        if missing:
            raise ValueError(f"record lacks {missing} (a prepared record has {', '.join(FIELDS)}, "
                             "as `tsx-train prepare` writes them)")
        return cls(*(values[name] for name in FIELDS), origin=values.get("origin"))

    def to_dict(self) -> dict[str, str]:
        """The JSON form, in field order; ``origin`` only when known."""
        out = {name: getattr(self, name) for name in FIELDS}
        if self.origin is not None:
            out["origin"] = self.origin
        return out


def read_records(path: str | os.PathLike[str], default_kind: str | None = None) -> list[PreparedRecord]:
    """Every record of a prepared JSONL, validated; ``default_kind`` as in :meth:`PreparedRecord.from_dict`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `tsx-train prepare` first")
    records = []
    # Lines end at "\n" only: str.splitlines would also cut at U+2028 and friends inside a text.
    with path.open(encoding="utf-8", newline="\n") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise DataFormatError(path, number, f"not a JSON line ({exc}); a prepared JSONL holds one "
                                                    "JSON object a line") from None
            try:
                records.append(PreparedRecord.from_dict(data, default_kind))
            except ValueError as exc:
                raise DataFormatError(path, number, str(exc)) from None
    return records


def select_records(records: Sequence[PreparedRecord], limit: int | None = None, seed: int = 0,
                   directions: Sequence[str] | None = None,
                   kinds: Sequence[str] | None = None) -> list[PreparedRecord]:
    """Filter by direction/kind and take a seeded sample of ``limit`` records, spread evenly over
    the (direction, kind) cells so a small slice still has every cell; the records' order is kept."""
    chosen = [r for r in records if (not directions or r.direction in directions)
              and (not kinds or r.kind in kinds)]
    if not limit or limit < 0 or limit >= len(chosen):  # None, 0 or negative: everything
        return chosen
    cells: dict[tuple[str, str], list[int]] = {}
    for index, record in enumerate(chosen):
        cells.setdefault((record.direction, record.kind), []).append(index)
    rng = random.Random(seed)
    for members in cells.values():
        rng.shuffle(members)
    picked: list[int] = []
    keys = sorted(cells)
    while len(picked) < limit:  # round robin over the cells
        progressed = False
        for key in keys:
            if cells[key] and len(picked) < limit:
                picked.append(cells[key].pop())
                progressed = True
        if not progressed:
            break
    return [chosen[i] for i in sorted(picked)]
