"""The serving defaults a newcomer sees: the README's examples, run as they are, give text.

Starts `tandem serve` with its default flags and checks:
- the router's generation defaults (--default_temperature 0.9, --default_top_p 0.9,
  --default_top_k 40, --default_max_tokens 256) are what the nodes sample with: a seeded request
  that sends no sampling field draws exactly what `tandem generate` draws in one process with those
  values, and not what it draws with the OpenAI API's defaults (temperature 1, no top-p/top-k); the
  response's `tandem.sampling` names them; a field the client sends still wins;
- the README's quick-start commands (the curl and the streaming openai client), taken from
  README.md and run by bash with only the port changed, print text;
- with the defaults, the README's prompts end by themselves without loops for fixed seeds (a
  deterministic check: the same seed gives the same tokens).

Run: .venv-test/bin/python tests/cluster/serving_defaults_test.py --tandem build/cli/tandem
"""

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import unittest

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULTS = ["--temperature=0.9", "--top_p=0.9", "--top_k=40"]  # the router's, as generate flags


def repeated_4gram_ratio(text):
    """Share of the text's word 4-grams that repeat an earlier one: 0 for prose, ~0.9 for a loop."""
    words = text.split()
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    if not grams:
        return 0.0
    counts = collections.Counter(grams)
    return sum(n - 1 for n in counts.values() if n > 1) / len(grams)


def readme_quickstart_commands():
    """The bash block after 'It prints `OpenAI base URL...`' in README.md, one command per item."""
    with open(os.path.join(tc.SOURCE_DIR, "README.md")) as f:
        readme = f.read()
    at = readme.index("It prints `OpenAI base URL")
    block = re.search(r"```bash\n(.*?)```", readme[at:], re.S).group(1)
    commands, current = [], ""
    for line in block.splitlines(keepends=True):
        current += line
        # A command ends at a line without a trailing backslash, outside a quoted python -c.
        if not line.rstrip("\n").endswith("\\") and current.count("'") % 2 == 0:
            commands.append(current.strip())
            current = ""
    return [c for c in commands if c]


class ServingDefaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.serve = tc.TandemProcess(TANDEM, "serve", ["--serve_port=0", "--threads=1"],
                                     name="serve-defaults")
        cls.serve.wait_ready(timeout=240)
        cls.port = cls.serve.http_port
        cls.client = openai.OpenAI(base_url=cls.serve.url("/v1"), api_key="x", max_retries=0,
                                   timeout=300)

    @classmethod
    def tearDownClass(cls):
        code = cls.serve.stop()
        if code not in (0, -signal.SIGTERM):
            print(cls.serve.tail(), file=sys.stderr)

    def chat(self, content, **kw):
        return self.client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": content}], **kw)

    def test_default_sampling_reaches_the_nodes(self):
        question = "Tell me about the moon."
        res = self.chat(question, seed=11)
        self.assertEqual(res.model_extra["tandem"]["sampling"],
                         {"temperature": 0.9, "top_p": 0.9, "top_k": 40, "max_tokens": 256})
        with_defaults = tc.tandem_generate(
            TANDEM, ["--chat", question, "--seed=11", "--max_tokens=256"] + DEFAULTS)
        self.assertEqual(res.choices[0].message.content, with_defaults)
        # The same seed under the OpenAI API's defaults draws something else: the defaults are
        # what changed the answer, not chance.
        openai_defaults = tc.tandem_generate(
            TANDEM, ["--chat", question, "--seed=11", "--max_tokens=256", "--temperature=1",
                     "--top_p=1", "--top_k=0"])
        self.assertNotEqual(with_defaults, openai_defaults)
        # A field the client sends wins over the default, one field at a time.
        res = self.chat(question, seed=11, temperature=0, max_tokens=20)
        self.assertEqual(res.model_extra["tandem"]["sampling"],
                         {"temperature": 0.0, "top_p": 0.9, "top_k": 40, "max_tokens": 20})
        self.assertEqual(res.choices[0].message.content,
                         tc.tandem_generate(TANDEM, ["--chat", question, "--temperature=0",
                                                     "--max_tokens=20"]))
        print(f"seed 11, defaults: {with_defaults[:160]!r}\n"
              f"seed 11, OpenAI defaults: {openai_defaults[:160]!r}")

    def test_readme_commands_print_text(self):
        commands = readme_quickstart_commands()
        self.assertEqual(len(commands), 2, commands)  # the curl and the streaming client
        for command in commands:
            self.assertIn("127.0.0.1:8000", command)
            run = subprocess.run(["bash", "-c", command.replace("127.0.0.1:8000",
                                                                f"127.0.0.1:{self.port}")],
                                 cwd=tc.SOURCE_DIR, capture_output=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr.decode())
            out = run.stdout.decode()
            if command.startswith("curl"):
                body = json.loads(out)
                text = body["choices"][0]["message"]["content"]
                self.assertEqual(body["choices"][0]["finish_reason"], "stop", body)
            else:
                text = out
            # Unseeded, so only "text came out" is asserted here; whether answers loop is pinned
            # with fixed seeds below.
            print(f"README: {command.splitlines()[0][:60]}... -> {text[:200]!r} "
                  f"(4-gram repeats {repeated_4gram_ratio(text):.2f})")
            self.assertTrue(text.strip(), f"no text from: {command}")

    def test_readme_prompts_end_without_loops(self):
        # Fixed seeds, so the outcome is the same on every run. With the OpenAI API's defaults the
        # haiku ran on into invented words; the model card's temperature 0.2 looped in 7 of 14
        # sampled answers (deploy/README.md, "Serving defaults").
        for prompt, need in (("Hi!", 10), ("Write a haiku about the sea.", 8)):
            good = []
            for seed in range(10):
                res = self.chat(prompt, seed=seed)
                text = res.choices[0].message.content
                ok = (res.choices[0].finish_reason == "stop" and text.strip() != "" and
                      repeated_4gram_ratio(text) < 0.2)
                good.append(ok)
                if not ok:
                    print(f"{prompt!r} seed {seed} degenerate: {text[:200]!r}")
            print(f"{prompt!r}: {sum(good)}/10 answers end by themselves without a loop")
            self.assertGreaterEqual(sum(good), need, prompt)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
