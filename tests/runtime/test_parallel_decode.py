"""Segments side by side in one llama.cpp context, on the bundled 0.5B (no mocks): the same greedy text
as the sequential path, in order, slots refilled, a bounded KV cache, Stop, clear errors."""

from __future__ import annotations

import threading

import pytest

from runtime.engine import TranslationEngine
from runtime.options import LoadOptions
from runtime.parallel_decode import (
    DecodeError,
    ParallelDecoder,
    Request,
    choose_slots,
    common_prefix_length,
    slot_need,
)
from runtime.segment import Segment

pytest.importorskip("llama_cpp")

# Short sentences of both directions; the 0.5B's greedy output for each is checked below against the
# sequential path (capped at a few tokens to keep the test fast on a busy CPU).
SENTENCES = [
    ("患者诊断为急性心肌梗死。", "zh-en"),
    ("The patient was discharged on aspirin.", "en-zh"),
    ("既往有高血压病史10年。", "zh-en"),
    ("胸部CT未见肺炎。", "zh-en"),
    ("Blood pressure was 150/90 mmHg.", "en-zh"),
]
CAP = 8


@pytest.fixture(scope="module")
def engine(small_gguf):
    engine = TranslationEngine()
    engine.load(small_gguf, LoadOptions(n_ctx=1024, n_threads=2, parallel=3))
    yield engine
    engine.unload()


def _requests(engine: TranslationEngine, items=SENTENCES, cap: int = CAP) -> list[Request]:
    out = []
    for text, direction in items:
        _, _, budget = engine.fits(Segment(0, len(text), text), direction, cap)
        out.append(Request(tuple(engine.prompt_token_ids(text, direction)), budget))
    return out


# Batched matrix kernels sum in another order than one-row ones: the logits of a sequence decoded beside
# others differ in the last bits, which flips greedy argmax only where the two best tokens are nearly
# tied (seen here: " pneumonia" 14.8861 vs "肺炎" 14.8850). Since the ggml patch plain-for-batches
# (packaging/ggml_patches.py) the Q4_K weights are also computed by two kernel families: the plain
# ones for batches of >= 32 rows (a whole prompt, alone), the repacked ones below (a prompt's suffix
# after the shared prefix, beside other slots). Their float steps are ordered differently, and after
# 24 layers one logit moved by 0.075 on these sentences (segment 2's " a" vs " hypertension", 0.0005
# apart with one family). Wrong cells, positions or masks move logits by whole units; 0.1 still tells
# those apart.
NEAR_TIE = 0.1


def _greedy_gap(engine: TranslationEngine, request: Request, result) -> float:
    """Replay a parallel result on the sequential context, one token at a time: the largest gap between
    the logit of the token greedy decoding alone picks there and the logit of the token the result has
    (0.0: every token, and the end of generation, is what the sequential path would pick)."""
    import llama_cpp
    import numpy as np

    llm = engine.llm
    llm.reset()
    llm.eval(list(request.tokens))
    eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)]
    worst = 0.0
    for k in range(len(result.token_ids) + (result.finish_reason == "stop")):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
        # the end of generation is any end-of-generation token: the best of them
        chosen = logits[result.token_ids[k]] if k < len(result.token_ids) else logits[eog].max()
        worst = max(worst, float(logits.max() - chosen))
        if k < len(result.token_ids):
            llm.eval([result.token_ids[k]])
    llm.reset()
    return worst


def test_pure_helpers():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[7, 8, 9]]) == 2  # a lone prompt keeps one token of its own
    assert slot_need(Request((1, 2, 3, 4, 5), 10), prefix=2) == 13
    assert choose_slots(8, [100] * 20, prefix=50, n_ctx=450) == 4   # 4 x 100 + 50 cells
    assert choose_slots(8, [100] * 3, prefix=0, n_ctx=4096) == 3    # never more than there are segments
    assert choose_slots(1, [10] * 5, prefix=0, n_ctx=4096) == 1


def test_same_text_as_sequential_in_order_with_refilled_slots(engine):
    """5 prompts through 2 slots: every slot is refilled, results in input order, the sequential text."""
    sequential = [engine.translate(text, direction, max_new_tokens=CAP, parallel=1).segments[0]
                  for text, direction in SENTENCES]
    decoder = ParallelDecoder(engine.llm, n_slots=2, n_ctx=1024)
    started, ended, most_running = [], [], 0

    def on_piece(index: int, piece: str) -> None:
        nonlocal most_running
        if index not in started:
            started.append(index)
        most_running = max(most_running, len(set(started) - set(ended)))

    try:
        results = decoder.run(_requests(engine), on_piece=on_piece, on_done=lambda r: ended.append(r.index))
    finally:
        decoder.close()
    assert [r.index for r in results] == list(range(len(SENTENCES)))
    assert sorted(ended) == list(range(len(SENTENCES))) and most_running == 2  # both slots used, never more
    assert started == sorted(started)  # admitted in the document's order
    identical = 0
    for req, res, seq in zip(_requests(engine), results, sequential, strict=True):
        assert res.first_token_s is not None and res.first_token_s <= res.seconds
        if res.text.strip() == seq.translation and res.finish_reason == seq.finish_reason:
            identical += 1
            continue
        gap = _greedy_gap(engine, req, res)
        assert 0.0 < gap < NEAR_TIE, f"segment {res.index}: {res.text!r} vs {seq.translation!r}, gap {gap:.4f}"
    assert identical >= 3


def test_kv_cache_is_bounded_and_reused(engine):
    """A context far smaller than all segments' needs together still translates them all: cells of a
    finished segment are freed and reused, never one cache per segment."""
    many = SENTENCES * 3
    requests = _requests(engine, many, cap=6)
    prefix = common_prefix_length([r.tokens for r in requests])
    total = prefix + sum(slot_need(r, prefix) for r in requests)
    decoder = ParallelDecoder(engine.llm, n_slots=3, n_ctx=256)
    try:
        assert decoder.n_ctx == 256 and total > 1.5 * decoder.n_ctx
        results = decoder.run(requests)
        again = decoder.run(requests[:3])
    finally:
        decoder.close()
    assert all(r.finish_reason in ("stop", "length") and r.text for r in results)
    # Whichever slot and cells a prompt got, its output is greedy (up to near-ties, see NEAR_TIE).
    for req, res in zip(requests[:5] + requests[:3], results[5:10] + again, strict=True):
        assert _greedy_gap(engine, req, res) < NEAR_TIE, res.text


def test_a_prompt_that_can_never_fit_is_refused_clearly(engine):
    decoder = ParallelDecoder(engine.llm, n_slots=2, n_ctx=256)
    try:
        with pytest.raises(DecodeError, match="segment 2 needs .* more than this context's 256 tokens"):
            decoder.run([Request((1, 2, 3), 4), Request(tuple(range(100, 200)), 200)])
    finally:
        decoder.close()
    with pytest.raises(DecodeError, match="closed"):
        decoder.run([Request((1, 2, 3), 4)])


def test_cancel_ends_every_sequence_and_leaves_no_thread(engine):
    threads_before = set(threading.enumerate())
    cancel = threading.Event()
    pieces: list[tuple[int, str]] = []

    def on_piece(index: int, piece: str) -> None:
        pieces.append((index, piece))
        if len(pieces) == 4:
            cancel.set()

    result = engine.translate("。".join(t for t, d in SENTENCES if d == "zh-en") * 3, "zh-en", cancel=cancel,
                              max_new_tokens=40, parallel=3, on_segment_piece=on_piece)
    assert result.parallel == 3 and result.cancelled
    assert result.segments and all(s.finish_reason == "cancelled" for s in result.segments)
    assert len(result.segments) <= 3 < result.total_segments  # the rest never started
    assert all(s.generated_tokens < s.max_tokens for s in result.segments)
    assert set(threading.enumerate()) == threads_before
    # The engine is usable right after a Stop.
    assert engine.translate(SENTENCES[0][0], "zh-en", max_new_tokens=4, parallel=3).segments[0].translation


def test_engine_document_streams_in_order(engine):
    """A document through the engine side by side: on_token is the translation in order, each segment's
    pieces add up to its own text, progress counts segments done out of the total."""
    text = "患者男性，62岁。\n既往有高血压病史10年。胸部CT未见肺炎。出院诊断：2型糖尿病。"
    tokens, pieces, progress, plans = [], {}, [], []
    result = engine.translate(text, "zh-en", max_new_tokens=CAP, parallel=0, on_token=tokens.append,
                              on_segment_piece=lambda i, p: pieces.setdefault(i, []).append(p),
                              on_progress=lambda done, total: progress.append((done, total)), on_plan=plans.append)
    # automatic: one slot per segment here (the engine's 3-slot context is remade with 4)
    assert plans[0].parallel == result.parallel == 4 and len(plans[0].segments) == 4
    assert "".join(tokens) == result.translation
    assert "\n" in result.translation  # the line break stays where it was
    assert [s.index for s in result.segments] == [0, 1, 2, 3]
    assert [s.start for s in result.segments] == sorted(s.start for s in result.segments)
    assert all("".join(pieces[s.index]) == s.translation for s in result.segments)
    assert progress[0] == (0, 4) and progress[-1] == (4, 4) and len(progress) == 5


def test_translate_many_is_the_eval_path(engine):
    """tsx-eval's llama.cpp backend: independent texts (both directions) side by side, one result each, in order."""
    items = [SENTENCES[0], SENTENCES[1], ("患者男性，62岁。胸部CT未见肺炎。", "zh-en"), SENTENCES[4]]
    outs = engine.translate_many(items, max_new_tokens=CAP)
    sequential = [engine.translate(t, d, max_new_tokens=CAP, parallel=1) for t, d in items]
    assert [o.direction for o in outs] == [d for _, d in items] and all(o.parallel == 3 for o in outs)
    assert [len(o.segments) for o in outs] == [len(s.segments) for s in sequential] == [1, 1, 2, 1]
    assert outs[2].translation.count(" ") >= 1 and outs[2].segments[1].index == 1
    # in order: each text is its own item's (near-ties aside, see NEAR_TIE: most are identical)
    assert sum(o.translation == s.translation for o, s in zip(outs, sequential, strict=True)) >= 3
