#!/usr/bin/env python3
"""Fails when a folder includes or links what ARCHITECTURE.md §3 does not allow it to.

    scripts/check_deps.py [repo_root]

Reads every #include "..." / #include <...> in the project's C++/CUDA sources and every
target_link_libraries in its CMakeLists.txt files, maps each to the folder it belongs to, and prints
one line per forbidden edge. Exit 0 when clean, 1 otherwise. Registered as the `unit` test
check_deps.
"""
import os
import re
import sys

# Folder -> project folders it may include (itself always allowed). runtime/ sits between the
# kernels and KV store and the two nodes (ARCHITECTURE.md §3's table predates it):
#   common <- model_format <- kernels <-+- runtime <- prefill_node, decode_node <- cli
#   common <---------------- kv_store <-+
ALLOWED = {
    "common": {"common"},
    "common/model_format": {"common", "common/model_format"},
    "kernels": {"common", "common/model_format", "kernels"},
    "kv_store": {"common", "kv_store"},
    "runtime": {"common", "common/model_format", "kernels", "kv_store", "runtime"},
    "prefill_node": {"common", "common/model_format", "kernels", "kv_store", "runtime",
                     "prefill_node"},
    "decode_node": {"common", "common/model_format", "kernels", "kv_store", "runtime",
                    "decode_node"},
    "router": {"common", "common/model_format", "router"},
    "cli": {"common", "common/model_format", "kernels", "kv_store", "runtime", "prefill_node",
            "decode_node", "router", "cli"},
}
# System headers only some folders may see: prefix -> folders allowed.
FOREIGN = {
    "cuda": {"kernels/cuda"}, "cub/": {"kernels/cuda"}, "nccl": {"kernels/cuda"},
    "ucp/": {"kv_store"}, "uct/": {"kv_store"}, "ucs/": {"kv_store"},
    "rocksdb/": {"kv_store"}, "hiredis/": {"kv_store"},
    "httplib": {"common", "router", "prefill_node", "decode_node", "cli"},
}
# Link targets only some folders may link: target -> folders allowed.
FOREIGN_LINKS = {
    "CUDA::": {"kernels/cuda"}, "RocksDB::": {"kv_store"}, "PkgConfig::HIREDIS": {"kv_store"},
    "ucx::": {"kv_store"}, "PkgConfig::UCX": {"kv_store"},
    "PkgConfig::HTTPLIB": {"common", "router", "prefill_node", "decode_node", "cli"},
    "tandem_http": {"common", "router", "prefill_node", "decode_node", "cli"},
}
PROJECT_FOLDERS = sorted(ALLOWED, key=len, reverse=True)
SOURCE_EXT = (".h", ".cc", ".cu", ".cuh", ".inc")


def folder_of(path):
    for f in PROJECT_FOLDERS:
        if path == f or path.startswith(f + "/"):
            return f
    return None


def check(root):
    problems = []
    for top in ALLOWED:
        base = os.path.join(root, top)
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, root)
            if top == "common" and rel_dir.startswith("common/model_format"):
                continue
            for name in filenames:
                rel = os.path.join(rel_dir, name)
                owner = folder_of(rel)
                if name.endswith(SOURCE_EXT):
                    with open(os.path.join(root, rel), errors="replace") as f:
                        for lineno, line in enumerate(f, 1):
                            m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
                            if not m:
                                continue
                            inc = m.group(2)
                            target = folder_of(inc) if m.group(1) == '"' else None
                            if target and target not in ALLOWED[owner]:
                                problems.append(f"{rel}:{lineno}: {owner} must not include {inc}")
                            for prefix, ok in FOREIGN.items():
                                if inc.startswith(prefix) and not any(
                                        rel.startswith(o + "/") for o in ok):
                                    problems.append(f"{rel}:{lineno}: {inc} is allowed only in "
                                                    f"{', '.join(sorted(ok))}")
                elif name == "CMakeLists.txt":
                    text = open(os.path.join(root, rel)).read()
                    for m in re.finditer(r"target_link_libraries\(([^)]*)\)", text):
                        for token in m.group(1).split():
                            for prefix, ok in FOREIGN_LINKS.items():
                                if token.startswith(prefix) and not any(
                                        rel.startswith(o + "/") for o in ok):
                                    problems.append(f"{rel}: links {token}, allowed only in "
                                                    f"{', '.join(sorted(ok))}")
                            dep = {"tandem_common": "common", "tandem_model_format":
                                   "common/model_format", "tandem_kernels": "kernels",
                                   "tandem_model": "kernels", "tandem_kv_store": "kv_store",
                                   "tandem_runtime": "runtime",
                                   "tandem_prefill": "prefill_node", "tandem_decode": "decode_node",
                                   "tandem_router": "router"}.get(token)
                            if dep and dep not in ALLOWED[owner]:
                                problems.append(f"{rel}: {owner} must not link {token}")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))
    problems = check(root)
    for p in problems:
        print(p)
    print(f"check_deps: {len(problems)} forbidden edge(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
