#!/usr/bin/env python3
"""Dump a GGUF file's header, metadata and tensor infos (an independent reader, stdlib only).

Usage: scripts/dump_gguf.py MODEL.gguf [--all-tensors]
Used to cross-check the C++ reader (common/model_format/gguf.cc): per-tensor types, dims, offsets.
"""
import collections
import struct
import sys

GGML_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0",
              9: "q8_1", 10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k", 14: "q6_k", 15: "q8_k",
              30: "bf16"}
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.data[self.pos:self.pos + n]
        if len(s) != n:
            raise ValueError(f"string past EOF at {self.pos}")
        self.pos += n
        return s.decode("utf-8", "replace")

    def value(self, t):
        if t in SCALARS:
            return self.take(SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown value type {t}")


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    if data[:4] != b"GGUF":
        sys.exit(f"{path}: bad magic")
    r.pos = 4
    version, n_tensors, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    print(f"version {version}, {n_tensors} tensors, {n_kv} kv, {len(data)} bytes")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.take("<I"))
        v = kv[key]
        shown = f"[{len(v)} items] {v[:3]!r}..." if isinstance(v, list) else repr(v)[:100]
        print(f"  {key} = {shown}")
    align = kv.get("general.alignment", 32)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("<Q") for _ in range(r.take("<I"))]
        tensors.append((name, dims, r.take("<I"), r.take("<Q")))
    data_start = r.pos + (align - r.pos % align) % align
    print(f"data_start {data_start}, alignment {align}")
    counts = collections.Counter(GGML_TYPES.get(t, f"type{t}") for _, _, t, _ in tensors)
    for name, dims, t, off in tensors:
        if "--all-tensors" in sys.argv or not name.startswith("blk.") or name.startswith("blk.0."):
            print(f"  {name:28s} {GGML_TYPES.get(t, f'type{t}'):5s} dims {dims} offset {off}")
    print("types:", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
