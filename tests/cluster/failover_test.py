"""A multi-node cluster survives the loss of a node (ARCHITECTURE.md §9).

Starts two prefill nodes, two decode nodes and a router as separate processes on loopback (the
multi-node deployment, shrunk onto one machine), then:
- kills (SIGKILL) the decode node that is serving a stream mid-stream: the client gets an error,
  never a normal finish of a truncated answer (the stream's last chunk has finish_reason "error",
  then an error event that makes the openai client raise APIError), and the following requests
  succeed on the other decode node;
- kills a prefill node: every following request still succeeds, on the other one;
- sends two prompts that share a long prefix: the second goes to the prefill node that stored
  the first one's KV blocks (kv_aware policy, fed by the nodes' status events) and reuses them.

Run: .venv-test/bin/python tests/cluster/failover_test.py --tandem build/cli/tandem [--transport ucx]
"""

import argparse
import os
import sys
import time
import unittest

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
TRANSPORT = "tcp"
MODEL_NAME = "SmolLM2-135M-Instruct"


def running(node):
    status, body = tc.http_json(node.url("/internal/v1/status"), timeout=5)
    return body["load"]["running"] if status == 200 else 0


class FailoverTest(unittest.TestCase):
    def setUp(self):
        common = ["--host=127.0.0.1", "--threads=1", f"--transport={TRANSPORT}"]
        self.prefills = [tc.TandemProcess(TANDEM, "prefill",
                                          common + ["--prefill_port=0", f"--node_id=prefill-{i}"],
                                          name=f"prefill-{i}") for i in range(2)]
        self.decodes = [tc.TandemProcess(TANDEM, "decode",
                                         common + ["--decode_port=0", "--decode_data_port=0",
                                                   f"--node_id=decode-{i}"],
                                         name=f"decode-{i}") for i in range(2)]
        for node in self.prefills + self.decodes:
            node.wait_ready()
        nodes = lambda group: ",".join(f"127.0.0.1:{n.http_port}" for n in group)  # noqa: E731
        self.router = tc.TandemProcess(TANDEM, "router",
                                       ["--host=127.0.0.1", "--router_port=0",
                                        f"--prefill_nodes={nodes(self.prefills)}",
                                        f"--decode_nodes={nodes(self.decodes)}"], name="router")
        self.router.wait_ready()
        tc.wait_http_ok(self.router.url("/ready"))
        self.client = openai.OpenAI(base_url=self.router.url("/v1"), api_key="none",
                                    max_retries=0, timeout=120)

    def tearDown(self):
        for p in [self.router] + self.prefills + self.decodes:
            p.stop()

    def ask(self, i):
        res = self.client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": f"Say hello to person {i}."}],
            max_tokens=8, temperature=0)
        self.assertIn(res.choices[0].finish_reason, ("stop", "length"))
        self.assertTrue(res.choices[0].message.content)
        return res

    def test_decode_node_killed_mid_stream(self):
        stream = self.client.chat.completions.create(
            model=MODEL_NAME,
            messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
            max_tokens=600, temperature=0, stream=True)
        chunks, finishes, victim = 0, [], None
        with self.assertRaises(openai.APIError) as raised:
            for chunk in stream:
                for choice in chunk.choices:
                    chunks += 1
                    if choice.finish_reason:
                        finishes.append(choice.finish_reason)
                if victim is None and chunks >= 5:
                    busy = [d for d in self.decodes if running(d) > 0]
                    self.assertEqual(len(busy), 1, "exactly one decode node serves the stream")
                    victim = busy[0]
                    victim.kill()
        print(f"decode node {victim.name} killed after {chunks} chunks; the client got: "
              f"{type(raised.exception).__name__}: {raised.exception}")
        self.assertIsNotNone(victim, "the stream ended before the kill")
        # ARCHITECTURE.md §9: a broken stream ends with finish_reason "error" and an error
        # event, never "stop"/"length" (a complete answer's).
        self.assertEqual(finishes, ["error"], "a killed stream must not end like a complete one")
        for i in range(4):
            self.ask(i)
        survivor = [d for d in self.decodes if d is not victim][0]
        self.assertEqual(tc.http_json(survivor.url("/health"))[0], 200)

    def test_kv_aware_routing_follows_the_stored_prefix(self):
        # The default policy (kv_aware) learns from each prefill node's status events which KV
        # blocks it stores, and sends a request whose prompt starts with them to that node.
        # Both prefill nodes must be candidates, or the test would pass by default; with random
        # tie-breaks between them, a policy that ignored KV would pass 4 rounds with p = 1/16.
        for node in self.prefills:
            self.assertEqual(tc.http_json(node.url("/ready"))[0], 200)
        for round_ in range(4):
            shared = " ".join(f"Document {round_} line {i}: the value of item {i} is {i * 7}."
                              for i in range(30))
            first = self.client.completions.create(model=MODEL_NAME, prompt=shared + " Q: one?",
                                                   max_tokens=2, temperature=0).model_dump()
            time.sleep(1.0)  # a few status polls (every 200 ms) carry the stored-block events
            second = self.client.completions.create(model=MODEL_NAME, prompt=shared + " Q: two?",
                                                    max_tokens=2, temperature=0).model_dump()
            a, b = first["tandem"], second["tandem"]
            print(f"round {round_}: prompt {first['usage']['prompt_tokens']} tokens, first on "
                  f"{a['prefill_node']} cached {a['kv']['cached_tokens']}, second on "
                  f"{b['prefill_node']} cached {b['kv']['cached_tokens']}")
            self.assertEqual(a["kv"]["cached_tokens"], 0)
            self.assertEqual(b["prefill_node"], a["prefill_node"])
            self.assertGreaterEqual(b["kv"]["cached_tokens"], 512)
            self.assertEqual(second["usage"]["prompt_tokens_details"]["cached_tokens"],
                             b["kv"]["cached_tokens"])

    def test_prefill_node_killed(self):
        for i in range(2):
            self.ask(i)
        self.prefills[0].kill()
        for i in range(6):
            res = self.ask(10 + i)
            extension = res.model_dump().get("tandem", {})
            self.assertEqual(extension.get("prefill_node"), "prefill-1", extension)
        print("after the kill, 6/6 requests were served by prefill-1")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    parser.add_argument("--transport", default="tcp")
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    TRANSPORT = args.transport
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
