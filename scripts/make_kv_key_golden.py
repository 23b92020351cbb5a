#!/usr/bin/env python3
"""Writes tests/data/kv_key_golden.json: KvFormat roots and ChainKeys computed with hashlib alone.

    scripts/make_kv_key_golden.py [out.json]

An independent implementation of ARCHITECTURE.md §4.5 (common/kv_key.h): if the C++ code and this
script ever disagree, keys differ between processes and the shared tier silently stops hitting.
Deterministic: the same file every run.
"""
import hashlib
import json
import os
import struct
import sys

TAG = b"tandem-kv-v1"
DTYPE_CODE = {"f32": 0, "f16": 1, "bf16": 2}
LAYOUT_CODE = {"gqa": 0, "latent": 1}


def encode(fmt):
    out = TAG
    out += bytes.fromhex(fmt["model"])
    out += struct.pack("<B", LAYOUT_CODE[fmt["layout"]])
    out += struct.pack("<i", fmt["latent_rank"])
    out += bytes.fromhex(fmt["projection"])
    out += struct.pack("<B", DTYPE_CODE[fmt["dtype"]])
    out += struct.pack("<i", fmt["block_tokens"])
    ns = fmt["ns"].encode("utf-8")
    out += struct.pack("<I", len(ns)) + ns
    return out


def chain(fmt, tokens):
    parent = hashlib.sha256(encode(fmt)).digest()
    keys = []
    bt = fmt["block_tokens"]
    for i in range(0, len(tokens), bt):
        block = tokens[i:i + bt]
        parent = hashlib.sha256(parent + b"".join(struct.pack("<I", t & 0xFFFFFFFF)
                                                  for t in block)).digest()
        keys.append(parent.hex())
    return keys


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests/data/kv_key_golden.json")
    model = hashlib.sha256(b"golden-model").hexdigest()
    zero = "00" * 32
    formats = [
        {"model": model, "layout": "gqa", "latent_rank": 0, "projection": zero, "dtype": "f16",
         "block_tokens": 256, "ns": ""},
        {"model": model, "layout": "gqa", "latent_rank": 0, "projection": zero, "dtype": "f32",
         "block_tokens": 4, "ns": "tenant-a"},
        {"model": model, "layout": "latent", "latent_rank": 32,
         "projection": hashlib.sha256(b"golden-projection").hexdigest(), "dtype": "bf16",
         "block_tokens": 3, "ns": "t\u00e9"},
    ]
    segments = [
        [],
        [1],
        list(range(10)),
        [49152 - 1, 0, 2, 7, -1, 123456, 17, 17, 17],
        [(i * 7919) % 49152 for i in range(600)],
    ]
    cases = []
    for f in formats:
        root_key = hashlib.sha256(encode(f)).hexdigest()
        for s in segments:
            cases.append({"format": f, "root": root_key, "tokens": s, "keys": chain(f, s)})
    with open(out_path, "w") as fh:
        json.dump({"generator": "scripts/make_kv_key_golden.py", "cases": cases}, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
