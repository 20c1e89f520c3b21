"""Sentence encoder speed: all-MiniLM-L6-v2 in NumPy (core.encoder) on BANKING77 texts.

Prints one JSON object. Throughput: the first 2,000 test.csv texts encoded with threads=1 and
threads=2, ROUNDS rounds interleaved, the median counts. Both wall and CPU seconds are given
because the machine is shared: CPU seconds are what encoding costs, wall seconds add the wait for
a core (the load average is reported too). Single message: 300 texts one at a time (threads=1)
after 20 warm-up calls, p50 and p95 in wall ms. Loading: a fresh process verifies and loads the
model and encodes one text: seconds, peak RSS growth and resident growth after loading (imports
not counted). Reference, side by side: the intent model's word + character tf-idf features
(core.model) fitted on train.csv, transforming the same texts. Goal (issue #10): single-message
p50 <= 10 ms, in wall and (for a shared machine) CPU time. Without the encoder extra it prints
why and what to run, and exits 0.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BANKING77, measure
from sklearn.pipeline import FeatureUnion

from core.encoder import EncoderUnavailable, load_encoder
from core.model import INTENT_CHAR_NGRAMS, char_tfidf, word_tfidf

TEXTS, ROUNDS = 2_000, 2
LATENCY_MESSAGES, WARM_UP = 300, 20
GOAL_P50_MS = 10.0
EXTRA_MODULES = ("numpy", "tokenizers", "safetensors.numpy", "threadpoolctl", "core.encoder")


def read(name: str) -> list[str]:
    with (BANKING77 / name).open(encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def _memory_mib() -> dict[str, float]:
    """This process's resident and peak resident memory. The kernel's peak (VmHWM) starts afresh
    in a spawned process, unlike getrusage's, which a child inherits from its parent."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


def load_and_encode_one() -> dict[str, float]:
    """Runs in a fresh process (see measure): what loading the model adds to a process."""
    before = _memory_mib()
    load_encoder().encode(["Can I change the delivery address?"])
    after = _memory_mib()
    return {
        "peak_rss_growth_mib": round(after["VmHWM"] - before["VmHWM"], 1),
        "resident_growth_mib": round(after["VmRSS"] - before["VmRSS"], 1),
    }


def timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(runs: dict[str, Callable[[], object]], count: int) -> dict[str, Any]:
    """Each run ROUNDS times, interleaved; medians of wall and CPU seconds."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, work in runs.items():
            times[name].append(timed(work))
    result = {}
    for name, pairs in times.items():
        wall = statistics.median(w for w, _ in pairs)
        cpu = statistics.median(c for _, c in pairs)
        result[name] = {
            "sentences_per_second": round(count / wall),
            "sentences_per_cpu_second": round(count / cpu),
            "wall_seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
        }
    return result


def latency_ms(one: Callable[[str], object], texts: Sequence[str]) -> dict[str, float]:
    for text in texts[:WARM_UP]:
        one(text)
    wall, cpu = [], []
    for text in texts[:LATENCY_MESSAGES]:
        w, c = timed(lambda text=text: one(text))
        wall.append(w * 1000)
        cpu.append(c * 1000)
    cuts = statistics.quantiles(wall, n=20)
    return {
        "p50_ms": round(statistics.median(wall), 2),
        "p95_ms": round(cuts[-1], 2),
        "cpu_p50_ms": round(statistics.median(cpu), 2),
    }


def tfidf_reference(train: list[str], texts: list[str]) -> dict[str, Any]:
    features = FeatureUnion(
        [("words", word_tfidf()), ("chars", char_tfidf(ngram_range=INTENT_CHAR_NGRAMS))]
    ).fit(train)
    runs = {"transform": lambda: features.transform(texts)}
    return {
        **throughput(runs, len(texts))["transform"],
        **latency_ms(lambda text: features.transform([text]), texts),
        "dimension": len(features.get_feature_names_out()),
    }


def main() -> None:
    try:
        encoder = load_encoder()
    except EncoderUnavailable as exc:
        print(json.dumps({"benchmark": "encoder_speed", "skipped": str(exc)}))
        return
    texts, train = read("test.csv")[:TEXTS], read("train.csv")
    load = measure(load_and_encode_one, preload=EXTRA_MODULES)
    result: dict[str, Any] = {
        "benchmark": "encoder_speed",
        "dataset": "banking77",
        "encoder": encoder.id,
        "texts": len(texts),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 1) for x in os.getloadavg()],
        "load": {"seconds": round(load["seconds"], 2), **load["result"]},
    }
    encoder.encode(texts[:64])  # warm-up
    result["throughput"] = throughput(
        {f"threads_{n}": lambda n=n: encoder.encode(texts, threads=n) for n in (1, 2)},
        len(texts),
    )
    result["single_message"] = latency_ms(lambda text: encoder.encode([text]), texts)
    result["tfidf_reference"] = tfidf_reference(train, texts)
    result["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    single = result["single_message"]
    result["goals"] = {
        "single_message_p50_at_most_10_ms": single["p50_ms"] <= GOAL_P50_MS,
        "single_message_cpu_p50_at_most_10_ms": single["cpu_p50_ms"] <= GOAL_P50_MS,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
