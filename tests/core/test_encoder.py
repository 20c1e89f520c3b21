"""The optional sentence encoder: equal to sentence-transformers, pinned, offline.

tests/data/encoder_reference.json holds embeddings made by sentence-transformers with PyTorch
from the same packaged model (its "about" says with which versions). Without the encoder extra
these tests skip, except under CI=true, where the conftest makes a skip a failure.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
import re
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core import encoder
from core.encoder import (
    DIMENSION,
    ENCODER_ID,
    MANIFEST,
    MANIFEST_SIZES,
    MAX_SEQ_LENGTH,
    Encoder,
    EncoderUnavailable,
    encoder_available,
    load_encoder,
    model_dir,
    verify_model_dir,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "encoder_reference.json"
SKIP_REASON = "the encoder extra is not installed: make install-encoder"
# Observed on x86-64 (OpenBLAS): cosine >= 1 - 1.2e-7 and max abs diff 2.4e-7 against PyTorch;
# the bounds leave room for other BLAS builds and CPUs.
MIN_COSINE, MAX_ABS_DIFF = 0.99999, 1e-5
TEXTS = [
    "Can I change the delivery address for my order of tulips?",
    "hi",
    "Do you deliver on Sundays? My mother's birthday is this weekend and I'd love lilies.",
    "refund please",
    "Is the spring bouquet available in a larger size, and how much would that cost?",
]


@pytest.fixture(scope="module")
def enc() -> Encoder:
    try:
        return load_encoder()
    except EncoderUnavailable as exc:
        pytest.skip(str(exc))  # says what is missing, and `make install-encoder`


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    vectors = np.frombuffer(base64.b64decode(data["embeddings"]), dtype="<f4")
    return data["sentences"], vectors.reshape(len(data["sentences"]), DIMENSION)


def _model_copy(tmp_path: Path, replaced: dict[str, bytes]) -> Path:
    """The model directory with some files replaced and the others symlinked."""
    source = model_dir()
    for name in MANIFEST:
        if name in replaced:
            (tmp_path / name).write_bytes(replaced[name])
        else:
            (tmp_path / name).symlink_to(source / name)
    return tmp_path


def test_embeddings_equal_the_sentence_transformers_reference(enc, reference):
    sentences, expected = reference
    got = enc.encode(sentences)
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= MIN_COSINE
    assert np.abs(got - expected).max() <= MAX_ABS_DIFF


def test_reference_covers_truncation_at_the_models_max_seq_length(enc, reference):
    """tokenizer.json says 128; sentence-transformers truncates at 256. The reference has texts
    on both sides of 128 and one past 256, so the test above tells the two apart."""
    tokenizers = pytest.importorskip("tokenizers", reason=SKIP_REASON)
    untruncated = tokenizers.Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    untruncated.no_truncation()
    lengths = [len(untruncated.encode(s).ids) for s in reference[0]]
    assert max(lengths) > MAX_SEQ_LENGTH
    assert any(128 < n <= MAX_SEQ_LENGTH for n in lengths)


def test_embeddings_are_float32_unit_vectors(enc):
    got = enc.encode(TEXTS)
    assert got.shape == (len(TEXTS), DIMENSION) == (len(TEXTS), enc.dimension)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_order_and_batch_size_do_not_change_embeddings(enc):
    forward = enc.encode(TEXTS)
    np.testing.assert_allclose(enc.encode(TEXTS[::-1])[::-1], forward, atol=1e-6)
    np.testing.assert_allclose(enc.encode(TEXTS, batch_size=1), forward, atol=1e-6)
    np.testing.assert_allclose(enc.encode(TEXTS[:1])[0], forward[0], atol=1e-6)


def test_no_texts_give_no_rows(enc):
    assert enc.encode([]).shape == (0, DIMENSION)


def test_progress_is_reported_after_each_batch(enc):
    calls: list[tuple[int, int]] = []
    enc.encode(TEXTS, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_encoder_id_names_the_pinned_weights(enc):
    assert enc.id == ENCODER_ID == "all-MiniLM-L6-v2@53aa5117"


def test_verify_model_dir_gives_the_manifest_hashes(enc):
    assert verify_model_dir(model_dir()) == dict(MANIFEST)


def _alter(directory: Path, name: str) -> None:
    """Replace a file of the model copy with one of the same size: one byte changed, or, for
    the 90 MB weights, zeros (a sparse file)."""
    target = directory / name
    target.unlink()
    if name == "model.safetensors":
        with target.open("wb") as f:
            f.truncate(MANIFEST_SIZES[name])
        return
    data = bytearray((model_dir() / name).read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))


@pytest.mark.parametrize("name", list(MANIFEST))
def test_an_altered_file_is_refused_before_anything_is_parsed(enc, tmp_path, monkeypatch, name):
    import safetensors.numpy
    import tokenizers

    def never(*args, **kwargs):
        raise AssertionError("parsed a file that failed its hash check")

    monkeypatch.setattr(safetensors.numpy, "load", never)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_str", never)
    directory = _model_copy(tmp_path, {})
    _alter(directory, name)
    refusal = f"{re.escape(name)} in .* is not the pinned .*SHA-256"
    for attempt in (lambda: verify_model_dir(directory), lambda: load_encoder(str(directory))):
        with pytest.raises(EncoderUnavailable, match=refusal) as err:
            attempt()
        assert "TRELLIS_ENCODER_PATH" in str(err.value)
        assert "make install-encoder" in str(err.value)


def test_a_file_of_another_size_is_refused_unread(enc, tmp_path, monkeypatch):
    directory = _model_copy(tmp_path, {"model.safetensors": b"other weights"})

    def never(*args, **kwargs):
        raise AssertionError("read a file of the wrong size")

    monkeypatch.setattr(Path, "read_bytes", never)
    monkeypatch.setattr(hashlib, "file_digest", never)
    for attempt in (lambda: verify_model_dir(directory), lambda: load_encoder(str(directory))):
        with pytest.raises(
            EncoderUnavailable, match=r"model\.safetensors in .* \(13 bytes, expected"
        ):
            attempt()


def test_a_missing_file_is_named(enc, tmp_path):
    directory = _model_copy(tmp_path, {})
    (directory / "vocab.txt").unlink()
    with pytest.raises(EncoderUnavailable, match=r"vocab\.txt is missing") as err:
        load_encoder(str(directory))
    assert "TRELLIS_ENCODER_PATH" in str(err.value)


def test_a_missing_directory_names_the_setting(enc, tmp_path, monkeypatch):
    monkeypatch.setenv("TRELLIS_ENCODER_PATH", str(tmp_path / "no-such-model"))
    with pytest.raises(EncoderUnavailable, match="no-such-model does not exist") as err:
        load_encoder()
    assert "TRELLIS_ENCODER_PATH" in str(err.value)
    assert "make install-encoder" in str(err.value)
    assert encoder_available() is False


def test_loading_and_encoding_never_open_a_connection(enc, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the encoder tried to open a network connection")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = load_encoder(str(_model_copy(tmp_path, {})))  # a new path: not the cached encoder
    assert fresh is not enc
    np.testing.assert_allclose(fresh.encode(TEXTS[:2]), enc.encode(TEXTS[:2]), atol=1e-6)


def test_concurrent_encodes_restore_the_blas_thread_limit(enc, monkeypatch):
    """A training run and a live prediction may encode at once, and OpenBLAS's thread limit is
    process-wide: here the second encode starts while the first is inside its batch."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    threads = 1 if before != [1] else 2  # differs from the process's limit
    forward, seconds = encoder._forward, {"first": 0.2, "second": 0.4}

    def slow_forward(*args):
        time.sleep(seconds[threading.current_thread().name])
        return forward(*args)

    monkeypatch.setattr(encoder, "_forward", slow_forward)
    workers = [
        threading.Thread(target=enc.encode, args=(TEXTS,), kwargs={"threads": threads}, name=name)
        for name in seconds
    ]
    for worker in workers:
        worker.start()
        time.sleep(0.1)
    for worker in workers:
        worker.join()
    assert blas_threads() == before


def test_erf_approximation_is_float32_accurate():
    x = np.linspace(-6, 6, 24_001, dtype=np.float32)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.abs(encoder._erf(x) - exact).max() < 5e-7


def test_without_the_extra_the_module_imports_and_says_how_to_install(monkeypatch):
    top_level = {
        alias.name.split(".")[0]
        for node in ast.parse(Path(encoder.__file__).read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert not top_level & {"tokenizers", "safetensors", "threadpoolctl", encoder.MODEL_PACKAGE}
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now fails
    with pytest.raises(EncoderUnavailable, match="encoder extra is not installed") as err:
        encoder._import_extra()
    assert "make install-encoder" in str(err.value)
