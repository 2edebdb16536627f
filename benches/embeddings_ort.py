#!/usr/bin/env python3
"""ONNX Runtime baseline for the embeddings benchmark.

Embeds with the same model file, tokenizer and pooling as Caxton (mean over
the attention mask, L2-normalised), on a given number of threads, and prints
one JSON object of figures on stdout. `benches/embeddings.rs` runs it in the
same run as Caxton's own figures so the ratio compares like with like.

Usage: embeddings_ort.py MODEL_DIR THREADS SHORT_TEXT PASSAGE_TEXT
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main() -> None:
    model_dir, threads, short, passage = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(f"{model_dir}/model.onnx", options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tokenizer.enable_truncation(256)
    tokenizer.no_padding()
    load_ms = (time.perf_counter() - started) * 1e3

    def embed(texts):
        encodings = tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        hidden = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def latency(text, runs):
        for _ in range(10):
            embed([text])
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            embed([text])
            samples.append((time.perf_counter() - t) * 1e3)
        samples.sort()
        return {"median_ms": samples[len(samples) // 2], "p99_ms": samples[int((len(samples) - 1) * 0.99)]}

    results = {
        "load_ms": load_ms,
        "short": latency(short, 300),
        "passage": latency(passage, 100),
        "passage_tokens": len(tokenizer.encode(passage).ids),
        "throughput": {},
    }
    sentences = [f"{short} ({i})" for i in range(64)]
    for batch in (1, 16, 32, 64):
        embed(sentences[:batch])
        total, t = 0, time.perf_counter()
        while time.perf_counter() - t < 2.0:
            embed(sentences[:batch])
            total += batch
        results["throughput"][str(batch)] = total / (time.perf_counter() - t)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
