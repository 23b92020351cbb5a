"""CacheBlend end to end through `tandem serve`, driven by the official `openai` client.

Documents go in through `extra_body` (the top-level `documents` field, as strings or {"id", "text"},
and {"type": "document"} content parts); each is tokenized alone, its position-independent KV is
computed on first use and stored, and later requests that place the same documents in another
order beside another question reuse it (document hits, reused tokens > 0, recomputed fraction near
the ratio), streaming and not. Recompute ratio 1 answers exactly what blending off answers (full
prefill). Bad documents and knobs are 400s naming the field.

Run: .venv-test/bin/python tests/cluster/blend_serve_test.py --tandem build/cli/tandem
"""

import argparse
import os
import signal
import sys
import unittest

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
MODEL_NAME = "SmolLM2-135M-Instruct"


def license_text(name, start, chars):
    with open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8") as f:
        return " ".join(f.read().split())[start:start + chars]


# Three documents of real text (~250-300 tokens each), each with one planted fact.
DOCS = [
    {"id": "lighthouse",
     "text": "The lighthouse keeper of Merrow Point is named Ada Quill. " +
             license_text("GPL-3", 2000, 1100)},
    {"id": "bridge",
     "text": "The old stone bridge at Fenwick has exactly seventeen arches. " +
             license_text("Apache-2.0", 1500, 1100)},
    {"id": "mill",
     "text": "The windmill at Harlow grinds barley every Thursday. " +
             license_text("GPL-3", 9000, 1100)},
]


class BlendServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.serve = tc.TandemProcess(TANDEM, "serve", ["--serve_port=0", "--threads=1"],
                                     name="serve-blend")
        cls.serve.wait_ready(timeout=240)
        cls.client = openai.OpenAI(base_url=cls.serve.url("/v1"), api_key="unused",
                                   max_retries=0, timeout=180)

    @classmethod
    def tearDownClass(cls):
        code = cls.serve.stop()
        if code not in (0, -signal.SIGTERM):
            print(cls.serve.tail(), file=sys.stderr)

    def chat(self, messages, documents=None, tandem=None, stream=False):
        extra = {}
        if documents is not None:
            extra["documents"] = documents
        if tandem is not None:
            extra["tandem"] = tandem
        if not stream:
            res = self.client.chat.completions.create(
                model=MODEL_NAME, messages=messages, max_tokens=16, temperature=0,
                extra_body=extra)
            return res.choices[0].message.content, res.model_dump()["tandem"]
        chunks = self.client.chat.completions.create(
            model=MODEL_NAME, messages=messages, max_tokens=16, temperature=0, stream=True,
            stream_options={"include_usage": True}, extra_body=extra)
        text, ext = "", None
        for chunk in chunks:
            if chunk.model_extra and chunk.model_extra.get("tandem"):
                ext = chunk.model_extra["tandem"]
            for choice in chunk.choices:
                text += choice.delta.content or ""
        self.assertIsNotNone(ext, "the final chunk carries the tandem extension")
        return text, ext

    def test_documents_are_stored_then_reused_in_another_order(self):
        q1 = [{"role": "user", "content": "Who is the lighthouse keeper of Merrow Point?"}]
        text, ext = self.chat(q1, documents=[DOCS[0], DOCS[1]["text"], DOCS[2]])
        kv = ext["kv"]
        print(f"first use: {text!r} kv={kv} timings={ext['timings_ms']}")
        # Other tests may have stored two of these already; the bridge document is this test's.
        self.assertEqual(kv["document_hits"] + kv["document_misses"], 3)
        self.assertGreaterEqual(kv["document_misses"], 1)
        self.assertGreater(kv["reused_tokens"], 600)

        # Another order, another question, documents as content parts, streaming.
        q2 = [{"role": "user", "content": [
            {"type": "document", "text": DOCS[2]["text"]},
            {"type": "document", "text": DOCS[0]["text"]},
            {"type": "text", "text": "On which day does the Harlow windmill grind barley?"}]}]
        text2, ext2 = self.chat(q2, stream=True)
        kv2 = ext2["kv"]
        print(f"reuse: {text2!r} kv={kv2} timings={ext2['timings_ms']}")
        self.assertEqual(kv2["document_hits"], 2)
        self.assertEqual(kv2["document_misses"], 0)
        self.assertGreater(kv2["reused_tokens"], 400)
        fraction = kv2["recomputed_tokens"] / kv2["reused_tokens"]
        self.assertGreater(fraction, 0.1)
        self.assertLess(fraction, 0.2)
        self.assertIn("blend", ext2["timings_ms"])
        # The prefill node counts what blending did.
        status, text = tc.http_json(f"http://127.0.0.1:{self.serve.ports['prefill']}/metrics")
        self.assertEqual(status, 200)
        self.assertIn('tandem_cacheblend_documents_total{result="hit"}', text)
        self.assertIn('tandem_cacheblend_tokens_total{kind="recomputed"}', text)

    def test_ratio_one_answers_as_full_prefill(self):
        q = [{"role": "user", "content": "How many arches does the Fenwick bridge have?"}]
        docs = [DOCS[1], DOCS[0]]
        # Nothing stored by either, so neither reuses the other's prompt blocks as a prefix.
        full, ext_off = self.chat(q, documents=docs, tandem={"blend": "off", "store_kv": False})
        blended, ext_one = self.chat(q, documents=docs,
                                     tandem={"recompute_ratio": 1.0, "store_kv": False})
        print(f"blend off: {full!r}; ratio 1: {blended!r}")
        self.assertEqual(ext_off["kv"]["reused_tokens"], 0)
        self.assertGreater(ext_one["kv"]["reused_tokens"], 0)
        self.assertEqual(ext_one["kv"]["recomputed_tokens"], ext_one["kv"]["reused_tokens"])
        self.assertEqual(blended, full)

    def test_completions_take_documents_as_strings(self):
        res = self.client.completions.create(
            model=MODEL_NAME, prompt="\nQ: Who keeps the Merrow Point lighthouse?\nA:",
            max_tokens=8, temperature=0,
            extra_body={"documents": [DOCS[0]["text"], DOCS[2]["text"]]})
        kv = res.model_dump()["tandem"]["kv"]
        print(f"completions: {res.choices[0].text!r} kv={kv}")
        self.assertGreater(kv["reused_tokens"], 0)

    def test_bad_documents_and_knobs_are_400s_naming_the_field(self):
        url = self.serve.url("/v1/chat/completions")
        base = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}]}
        cases = [
            ({"documents": ["fine", ""]}, "documents[1].text"),
            ({"documents": ["word " * 9000]}, "documents[0].text"),
            ({"documents": ["d"] * 65}, "documents"),
            ({"documents": ["d"], "tandem": {"recompute_ratio": 1.5}}, "tandem.recompute_ratio"),
            ({"documents": ["d"], "tandem": {"recompute_ratio": -0.1}}, "tandem.recompute_ratio"),
            ({"messages": [{"role": "user", "content": [{"type": "document", "text": ""}]}]},
             "messages[0].content[0].text"),
        ]
        for extra, param in cases:
            status, body = tc.http_json(url, {**base, **extra})
            self.assertEqual(status, 400, body)
            self.assertEqual(body["error"]["param"], param, body)
        # The server is still up.
        text, _ = self.chat([{"role": "user", "content": "Say hi."}])
        self.assertIsInstance(text, str)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
