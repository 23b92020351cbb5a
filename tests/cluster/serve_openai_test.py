"""`tandem serve` driven by the official `openai` Python client (PyPI), as a user runs it.

Starts `tandem serve` (router + one prefill + one decode process on loopback, KV shipped over the
data plane) with an API key, then checks: chat and completions, streaming and not, give exactly the
text `tandem generate` gives in one process for the same prompt (greedy, and seeded sampling);
stop sequences, max_tokens and usage; 32 concurrent streaming clients each get their own correct
answer; a streaming client that leaves mid-stream frees its decode slot at once (HTTP 499); bad
input gets OpenAI-shaped 4xx errors and the server stays up; a node that dies is restarted and
serving resumes; Ctrl-C (SIGINT) stops every process.

Run: .venv-test/bin/python tests/cluster/serve_openai_test.py --tandem build/cli/tandem
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import sys
import time
import unittest

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
API_KEY = "test-key-123"
MODEL_NAME = "SmolLM2-135M-Instruct"


class ServeOpenAiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.serve = tc.TandemProcess(TANDEM, "serve",
                                     ["--serve_port=0", f"--api_key={API_KEY}", "--threads=1"],
                                     name="serve")
        cls.serve.wait_ready(timeout=240)
        cls.base_url = cls.serve.url("/v1")
        cls.client = openai.OpenAI(base_url=cls.base_url, api_key=API_KEY, max_retries=0,
                                   timeout=120)

    @classmethod
    def tearDownClass(cls):
        code = cls.serve.stop()
        if code not in (0, -signal.SIGTERM):
            print(cls.serve.tail(), file=sys.stderr)

    # ---- equality with the single-process baseline ----

    def test_chat_greedy_equals_tandem_generate(self):
        question = "What is the capital of France? Answer in one sentence."
        expected = tc.tandem_generate(TANDEM, ["--chat", question, "--max_tokens=32",
                                               "--temperature=0"])
        res = self.client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": question}], max_tokens=32,
            temperature=0)
        self.assertEqual(res.choices[0].message.content, expected)
        self.assertEqual(res.choices[0].message.role, "assistant")
        self.assertIn(res.choices[0].finish_reason, ("stop", "length"))
        self.assertGreater(res.usage.prompt_tokens, 10)
        self.assertGreater(res.usage.completion_tokens, 0)
        print(f"chat greedy: {res.choices[0].message.content!r}")

        stream = self.client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": question}], max_tokens=32,
            temperature=0, stream=True, stream_options={"include_usage": True})
        text, finish, usage = "", None, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        self.assertEqual(text, expected)
        self.assertEqual(finish, res.choices[0].finish_reason)
        self.assertIsNotNone(usage)
        self.assertEqual(usage.completion_tokens, res.usage.completion_tokens)
        self.assertEqual(usage.prompt_tokens, res.usage.prompt_tokens)

    def test_completions_greedy_and_seeded_equal_tandem_generate(self):
        prompt = "The three primary colors are"
        expected = tc.tandem_generate(TANDEM, ["--prompt", prompt, "--max_tokens=24",
                                               "--temperature=0"])
        res = self.client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=24,
                                             temperature=0)
        self.assertEqual(res.choices[0].text, expected)
        text = "".join(c.choices[0].text for c in self.client.completions.create(
            model=MODEL_NAME, prompt=prompt, max_tokens=24, temperature=0, stream=True)
            if c.choices)
        self.assertEqual(text, expected)

        # Seeded sampling: the prefill node samples the first token and the decode node continues
        # the same random stream, so the cluster draws what one process draws.
        # Every sampling field is given: the router's defaults (top-p 0.9, top-k 40) would
        # otherwise fill the ones left out (serving_defaults_test covers those).
        sampled = tc.tandem_generate(TANDEM, ["--prompt", prompt, "--max_tokens=24",
                                              "--temperature=0.9", "--top_p=0.95", "--top_k=50",
                                              "--seed=7"])
        res = self.client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=24,
                                             temperature=0.9, top_p=0.95, seed=7,
                                             extra_body={"top_k": 50})
        self.assertEqual(res.choices[0].text, sampled)
        print(f"completion greedy: {expected!r}\ncompletion seed 7: {sampled!r}")

    def test_max_tokens_stop_and_extension(self):
        res = self.client.completions.create(model=MODEL_NAME, prompt="Count: 1, 2, 3,",
                                             max_tokens=5, temperature=0)
        self.assertEqual(res.choices[0].finish_reason, "length")
        self.assertEqual(res.usage.completion_tokens, 5)
        full = res.choices[0].text
        # A stop string cuts the text before it and ends with finish_reason "stop".
        self.assertIn(",", full)
        res = self.client.completions.create(model=MODEL_NAME, prompt="Count: 1, 2, 3,",
                                             max_tokens=5, temperature=0, stop=[","])
        self.assertEqual(res.choices[0].text, full[:full.find(",")])
        self.assertEqual(res.choices[0].finish_reason, "stop")
        # The phase breakdown rides along as the "tandem" extension field.
        raw = res.model_dump()
        self.assertIn("tandem", raw, raw)
        timings = raw["tandem"]["timings_ms"]
        for phase in ("queue", "prefill", "transfer", "first_token"):
            self.assertIn(phase, timings)
            self.assertGreaterEqual(timings[phase], 0)
        self.assertGreater(timings["prefill"], 0)
        print(f"tandem extension: {json.dumps(raw['tandem'])}")

    def test_per_request_sparse_prefill(self):
        # The "tandem" extension picks the prefill attention per request; the prefill node reports
        # what it computed (method and fraction of blocks) back through the extension field.
        prompt = " ".join(f"Sentence {i} talks about item number {i}." for i in range(150))
        seen = {}
        for method in ("dense", "power"):
            res = self.client.completions.create(
                model=MODEL_NAME, prompt=prompt, max_tokens=2, temperature=0,
                extra_body={"tandem": {"sparse_prefill": method}})
            seen[method] = res.model_dump()["tandem"]["attention"]
        print(f"per-request sparse prefill: {seen}")
        self.assertEqual(seen["dense"]["method"], "dense")
        self.assertEqual(seen["dense"]["density"], 1.0)
        self.assertEqual(seen["power"]["method"], "power")
        self.assertLess(seen["power"]["density"], 0.9)
        status, text = tc.http_json(self.serve.url("/v1/completions"),
                                    {"model": MODEL_NAME, "prompt": "x",
                                     "tandem": {"sparse_prefill": "fancy"}},
                                    {"Authorization": f"Bearer {API_KEY}"})
        self.assertEqual(status, 400, text)
        self.assertEqual(text["error"]["param"], "tandem.sparse_prefill")

    def test_models_and_metrics(self):
        models = [m.id for m in self.client.models.list()]
        self.assertEqual(models, [MODEL_NAME])
        status, text = tc.http_json(self.serve.url("/metrics"))
        self.assertEqual(status, 200)
        for name in ("tandem_router_request_phase_seconds", "tandem_router_requests_total",
                     "tandem_router_time_to_first_token_seconds"):
            self.assertIn(name, text)

    # ---- a client that leaves ----

    def test_client_leaving_mid_stream_frees_the_decode_node(self):
        """A streaming client that closes its connection after three chunks: the router sees the
        broken write, cancels the decode node's sequence (its running gauge drops to 0 long before
        the 8,000 tokens asked for could be generated (minutes)), records HTTP 499, and serves the next."""
        router, decode = self.serve.url(""), f"http://127.0.0.1:{self.serve.ports['decode']}"
        gone = {"endpoint": "completions", "code": "499"}
        gone_before = tc.metric(router, "tandem_router_requests_total", gone)
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.http_port, timeout=60)
        body = {"model": MODEL_NAME, "prompt": "Count from one to a thousand:", "max_tokens": 8000,
                "stream": True, "ignore_eos": True, "temperature": 0}
        conn.request("POST", "/v1/completions", json.dumps(body),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        chunks = 0
        while chunks < 3:
            line = res.readline()
            self.assertTrue(line, "stream ended early")
            chunks += line.startswith(b"data: {")
        self.assertEqual(tc.metric(decode, "tandem_decode_requests_running"), 1.0)
        left_at = time.time()
        conn.sock.shutdown(2)  # socket.SHUT_RDWR
        conn.close()
        while (tc.metric(decode, "tandem_decode_requests_running") != 0.0 or
               tc.metric(router, "tandem_router_requests_total", gone) != gone_before + 1):
            self.assertLess(time.time() - left_at, 10, self.serve.tail())
            time.sleep(0.1)
        print(f"decode freed {time.time() - left_at:.2f} s after the client left", file=sys.stderr)
        self.assertEqual(tc.metric(router, "tandem_router_requests_running"), 0.0)
        res = self.client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=3)
        self.assertEqual(len(res.choices), 1)

    # ---- concurrency ----

    def test_32_concurrent_streams_each_get_their_answer(self):
        prompts = [f"Write the number {i} in words, then say why {i} is interesting:"
                   for i in range(32)]
        expected = [self.client.completions.create(model=MODEL_NAME, prompt=p, max_tokens=12,
                                                   temperature=0).choices[0].text
                    for p in prompts]
        self.assertGreater(len(set(expected)), 16, "the prompts must give distinct answers")

        def stream(i):
            text, finish = "", None
            for chunk in self.client.completions.create(model=MODEL_NAME, prompt=prompts[i],
                                                        max_tokens=12, temperature=0,
                                                        stream=True):
                for choice in chunk.choices:
                    text += choice.text
                    finish = choice.finish_reason or finish
            return text, finish

        start = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(stream, range(32)))
        elapsed = time.time() - start
        mismatched = [i for i in range(32) if results[i][0] != expected[i]]
        unfinished = [i for i in range(32) if results[i][1] not in ("stop", "length")]
        print(f"32 concurrent streams: {32 - len(mismatched)}/32 equal to their sequential "
              f"answer, all finished: {not unfinished}, {elapsed:.1f} s")
        self.assertEqual(unfinished, [])
        self.assertEqual(mismatched, [], [(results[i][0], expected[i]) for i in mismatched])

    # ---- bad input ----

    def post(self, path, body, key=API_KEY):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return tc.http_json(self.serve.url(path), body, headers)

    def assert_error(self, status, body, want_status, want_type, param=None, code=None):
        self.assertEqual(status, want_status, body)
        self.assertIsInstance(body, dict, body)
        err = body["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        self.assertEqual(err["type"], want_type)
        self.assertTrue(err["message"])
        if param is not None:
            self.assertEqual(err["param"], param)
        if code is not None:
            self.assertEqual(err["code"], code)

    def test_bad_input_gets_openai_errors(self):
        chat = "/v1/chat/completions"
        msgs = [{"role": "user", "content": "hi"}]
        self.assert_error(*self.post(chat, b"{not json"), 400, "invalid_request_error")
        self.assert_error(*self.post(chat, {"model": MODEL_NAME, "messages": "hi"}), 400,
                          "invalid_request_error", param="messages")
        self.assert_error(*self.post(chat, {"model": MODEL_NAME, "messages": msgs,
                                            "temperature": "hot"}),
                          400, "invalid_request_error", param="temperature")
        self.assert_error(*self.post(chat, {"model": "gpt-9", "messages": msgs}), 404,
                          "not_found_error", code="model_not_found")
        self.assert_error(*self.post(chat, {"model": MODEL_NAME, "messages": msgs,
                                            "max_tokens": 0}),
                          400, "invalid_request_error", param="max_tokens")
        self.assert_error(*self.post(chat, {"model": MODEL_NAME, "messages": msgs,
                                            "max_tokens": 10**6}),
                          400, "invalid_request_error")
        long_prompt = "hello " * 9000
        self.assert_error(*self.post("/v1/completions", {"model": MODEL_NAME,
                                                         "prompt": long_prompt}),
                          400, "invalid_request_error", code="context_length_exceeded")
        self.assert_error(*self.post(chat, {"model": MODEL_NAME, "messages": msgs}, key=None),
                          401, "authentication_error")
        self.assert_error(*self.post(chat, {"model": MODEL_NAME, "messages": msgs}, key="wrong"),
                          401, "authentication_error")
        # The official client raises the matching exception classes.
        bad = openai.OpenAI(base_url=self.base_url, api_key="wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad.models.list()
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="gpt-9", messages=msgs)
        with self.assertRaises(openai.BadRequestError):
            self.client.completions.create(model=MODEL_NAME, prompt=long_prompt)
        # Nothing crashed: the server still answers.
        res = self.client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2)
        self.assertEqual(len(res.choices), 1)


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")


class ServeSupervision(unittest.TestCase):
    def test_a_killed_node_is_restarted_and_serving_resumes(self):
        serve = tc.TandemProcess(TANDEM, "serve", ["--serve_port=0", "--threads=1"],
                                 name="serve-restart")
        try:
            serve.wait_ready(timeout=240)
            client = openai.OpenAI(base_url=serve.url("/v1"), api_key="x", max_retries=0,
                                   timeout=60)
            decode = [c for c in children(serve.pid) if cmdline(c)[1] == b"decode"]
            self.assertEqual(len(decode), 1)
            os.kill(decode[0], signal.SIGKILL)
            deadline = time.time() + 60
            while True:
                try:
                    res = client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=3)
                    break
                except openai.APIError:
                    self.assertLess(time.time(), deadline, serve.tail())
                    time.sleep(0.5)
            self.assertEqual(len(res.choices), 1)
            restarted = [c for c in children(serve.pid) if cmdline(c)[1] == b"decode"]
            self.assertEqual(len(restarted), 1)
            self.assertNotEqual(restarted[0], decode[0])
            self.assertIn("restarting it", serve.tail())
        finally:
            serve.stop()


class ServeStopsOnCtrlC(unittest.TestCase):
    def test_sigint_stops_every_process(self):
        serve = tc.TandemProcess(TANDEM, "serve", ["--serve_port=0", "--threads=1"],
                                 name="serve-sigint")
        serve.wait_ready(timeout=240)
        ports = serve.ports
        os.kill(serve.pid, signal.SIGINT)
        serve.proc.wait(timeout=60)
        self.assertEqual(serve.proc.returncode, 0, serve.tail())
        for name in ("http", "prefill", "decode"):
            with self.assertRaises(OSError):
                tc.http_json(f"http://127.0.0.1:{ports[name]}/health", timeout=2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
