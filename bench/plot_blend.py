"""Draws bench/blend_bench's JSON as PNG line charts, with no plotting library (the project's
Python environments have none): a small raster canvas, a 5x7 bitmap font, zlib for the PNG.

  quality JSON -> first-token agreement, greedy-answer equality and accuracy against the recompute
                  ratio, with full prefill's accuracy and prefix reuse as reference lines;
  speed JSON   -> TTFT in seconds against prompt tokens for full prefill, prefix caching and
                  CacheBlend 0.15.

Run: python3 bench/plot_blend.py --quality build/blend_quality.json --speed build/blend_speed.json
     --out_dir build/
"""

import argparse
import json
import os
import struct
import zlib

FONT = {  # 5x7, rows top to bottom, bit 4 = leftmost column
    "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14], "2": [14, 17, 1, 2, 4, 8, 31],
    "3": [30, 1, 1, 14, 1, 1, 30], "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
    "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8], "8": [14, 17, 17, 14, 17, 17, 14],
    "9": [14, 17, 17, 15, 1, 2, 12], "A": [14, 17, 17, 31, 17, 17, 17],
    "B": [30, 17, 17, 30, 17, 17, 30], "C": [14, 17, 16, 16, 16, 17, 14],
    "D": [30, 17, 17, 17, 17, 17, 30], "E": [31, 16, 16, 30, 16, 16, 31],
    "F": [31, 16, 16, 30, 16, 16, 16], "G": [14, 17, 16, 23, 17, 17, 15],
    "H": [17, 17, 17, 31, 17, 17, 17], "I": [14, 4, 4, 4, 4, 4, 14], "J": [7, 2, 2, 2, 2, 18, 12],
    "K": [17, 18, 20, 24, 20, 18, 17], "L": [16, 16, 16, 16, 16, 16, 31],
    "M": [17, 27, 21, 21, 17, 17, 17], "N": [17, 17, 25, 21, 19, 17, 17],
    "O": [14, 17, 17, 17, 17, 17, 14], "P": [30, 17, 17, 30, 16, 16, 16],
    "Q": [14, 17, 17, 17, 21, 18, 13], "R": [30, 17, 17, 30, 20, 18, 17],
    "S": [15, 16, 16, 14, 1, 1, 30], "T": [31, 4, 4, 4, 4, 4, 4], "U": [17, 17, 17, 17, 17, 17, 14],
    "V": [17, 17, 17, 17, 17, 10, 4], "W": [17, 17, 17, 21, 21, 21, 10],
    "X": [17, 17, 10, 4, 10, 17, 17], "Y": [17, 17, 10, 4, 4, 4, 4], "Z": [31, 1, 2, 4, 8, 16, 31],
    ".": [0, 0, 0, 0, 0, 12, 12], ",": [0, 0, 0, 0, 12, 4, 8], "-": [0, 0, 0, 31, 0, 0, 0],
    ":": [0, 12, 12, 0, 12, 12, 0], "(": [2, 4, 8, 8, 8, 4, 2], ")": [8, 4, 2, 2, 2, 4, 8],
    "/": [1, 1, 2, 4, 8, 16, 16], "=": [0, 0, 31, 0, 31, 0, 0], "%": [24, 25, 2, 4, 8, 19, 3],
    " ": [0] * 7, "_": [0, 0, 0, 0, 0, 0, 31],
}
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def dot(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c, width=1):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            x = round(x0 + (x1 - x0) * s / steps)
            y = round(y0 + (y1 - y0) * s / steps)
            for dx in range(-(width // 2), width - width // 2):
                for dy in range(-(width // 2), width - width // 2):
                    self.dot(x + dx, y + dy, c)

    def box(self, x, y, r, c):
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                self.dot(x + dx, y + dy, c)

    def text(self, x, y, s, c=(0, 0, 0), scale=2):
        for ch in s.upper():
            rows = FONT.get(ch, FONT[" "])
            for r, bits in enumerate(rows):
                for col in range(5):
                    if bits & (16 >> col):
                        for sx in range(scale):
                            for sy in range(scale):
                                self.dot(x + col * scale + sx, y + r * scale + sy, c)
            x += 6 * scale

    def save(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(tag, data):
            return (struct.pack(">I", len(data)) + tag + data +
                    struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

        png = (b"\x89PNG\r\n\x1a\n" +
               chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)) +
               chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        with open(path, "wb") as f:
            f.write(png)


def chart(path, title, xlabel, ylabel, series, xticks, ymax, yticks):
    """series: [(label, [(x, y), ...], dashed)] drawn over x in xticks' range and y in [0, ymax]."""
    w, h, left, right, top, bottom = 900, 560, 90, 260, 50, 70
    c = Canvas(w, h)
    x0, x1 = min(xticks), max(xticks)
    px = lambda x: left + round((x - x0) / (x1 - x0 or 1) * (w - left - right))  # noqa: E731
    py = lambda y: h - bottom - round(y / ymax * (h - top - bottom))  # noqa: E731
    c.text(left, 8, title)
    c.line(left, h - bottom, w - right, h - bottom, (0, 0, 0))
    c.line(left, top, left, h - bottom, (0, 0, 0))
    for t in xticks:
        c.line(px(t), h - bottom, px(t), h - bottom + 6, (0, 0, 0))
        c.text(px(t) - 12, h - bottom + 12, f"{t:g}")
    for t in yticks:
        c.line(left - 6, py(t), left, py(t), (0, 0, 0))
        c.line(left + 1, py(t), w - right, py(t), (225, 225, 225))
        c.text(8, py(t) - 7, f"{t:g}")
    c.text(left + 150, h - 28, xlabel)
    c.text(8, top - 18, ylabel)
    for i, (label, pts, dashed) in enumerate(series):
        col = COLORS[i % len(COLORS)]
        pts = sorted(pts)
        for (a, b), (p, q) in zip(pts, pts[1:]):
            if dashed:
                n = 12
                for s in range(0, n, 2):
                    c.line(px(a + (p - a) * s / n), py(b + (q - b) * s / n),
                           px(a + (p - a) * (s + 1) / n), py(b + (q - b) * (s + 1) / n), col, 2)
            else:
                c.line(px(a), py(b), px(p), py(q), col, 3)
        for a, b in pts:
            c.box(px(a), py(b), 4, col)
        c.box(w - right + 20, top + 20 + 28 * i, 6, col)
        c.text(w - right + 34, top + 13 + 28 * i, label)
    c.save(path)
    print(f"wrote {path}")


def quality(data, out_dir):
    blends = [m for m in data["methods"] if m["method"] == "blend"]
    prefix = [m for m in data["methods"] if m["method"] == "prefix"]
    ratios = [m["ratio"] for m in blends]
    span = (min(ratios), max(ratios))
    series = [
        ("first token agree", [(m["ratio"], m["first_token_agreement"]) for m in blends], False),
        ("greedy 32 equal", [(m["ratio"], m["greedy_equal"]) for m in blends], False),
        ("accuracy", [(m["ratio"], m["accuracy"]) for m in blends], False),
        ("full prefill acc", [(span[0], data["full_accuracy"]), (span[1], data["full_accuracy"])],
         True),
    ]
    if prefix:
        series.append(("prefix reuse agree", [(span[0], prefix[0]["first_token_agreement"]),
                                              (span[1], prefix[0]["first_token_agreement"])],
                       True))
    chart(os.path.join(out_dir, "blend_quality.png"),
          f"CacheBlend quality vs full prefill ({data['prompts']} RAG prompts)",
          "recompute ratio", "fraction", series, ratios, 1.0,
          [0, 0.2, 0.4, 0.6, 0.8, 1.0])


def speed(data, out_dir):
    rows = data["speed"]
    ymax = max(max(r["full_s"], r["prefix_s"], r["blend_s"]) for r in rows) * 1.1
    raw = ymax / 5
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 0.1
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=10 * mag)
    yticks = [round(i * step, 3) for i in range(int(ymax / step) + 1)]
    chart(os.path.join(out_dir, "blend_ttft.png"), "TTFT (s) against prompt tokens, CPU",
          "prompt tokens", "seconds",
          [("full prefill", [(r["tokens"], r["full_s"]) for r in rows], False),
           ("prefix caching", [(r["tokens"], r["prefix_s"]) for r in rows], False),
           ("cacheblend 0.15", [(r["tokens"], r["blend_s"]) for r in rows], False)],
          [r["tokens"] for r in rows], ymax, yticks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality")
    ap.add_argument("--speed")
    ap.add_argument("--out_dir", default=".")
    args = ap.parse_args()
    if args.quality:
        with open(args.quality, encoding="utf-8") as f:
            quality(json.load(f), args.out_dir)
    if args.speed:
        with open(args.speed, encoding="utf-8") as f:
            speed(json.load(f), args.out_dir)


if __name__ == "__main__":
    main()
