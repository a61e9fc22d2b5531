"""Latency of the agents' paths on a local 7-agent cluster: MCP tool calls (a write, a confirmed
read, a decision's result with its proof checked) and the Python client's transfers, each N
times (default 100), one after another.

    pip install ./clients/python mcp pytest && cargo build --release
    python examples/measure_agents.py          # N=200 python examples/measure_agents.py

Figures: docs/measurements/2026-12-07-agents.md."""

import asyncio
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python" / "tests"))
from conftest import BIN, Cluster as Harness  # noqa: E402  (the tests' cluster harness)
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from phalanx_client import Cluster  # noqa: E402

N = int(os.environ.get("N", "100"))
CALLS = [
    ("memory_store", lambda i: {"namespace": "m", "key": f"k{i}", "value": "v" * 64}),
    ("memory_retrieve", lambda i: {"namespace": "m", "key": f"k{i}"}),
    ("decision_open", lambda i: {"id": f"d{i}", "question": "q", "options": ["a", "b"], "voters": ["bft-agent-1"]}),
    ("decision_vote", lambda i: {"id": f"d{i}", "option": "a"}),
    ("decision_result", lambda i: {"id": f"d{i}"}),
]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def mcp_calls(folder):
    params = StdioServerParameters(command=BIN, args=["mcp", "--dir", folder, "--agent", "bft-agent-1"])
    out = {}
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            for name, args_of in CALLS:
                lat = []
                for i in range(N):
                    t = time.perf_counter()
                    res = await s.call_tool(name, args_of(i))
                    lat.append((time.perf_counter() - t) * 1000)
                    assert not res.is_error, res.content[0].text
                out[name] = lat
    return out


def main():
    h = Harness(7)
    try:
        res = asyncio.run(mcp_calls(h.dir))
        c = Cluster(h.dir)
        alice = c.key("alice")
        lat = []
        for _ in range(N):
            t = time.perf_counter()
            accepted = c.transfer(alice, "alice", "bob", 1)
            lat.append((time.perf_counter() - t) * 1000)
            assert accepted.applied
        res["python transfer"] = lat
    finally:
        h.down()
    for k, v in res.items():
        print(f"{k:<18} n={len(v)} p50={statistics.median(v):.1f} ms "
              f"p90={percentile(v, 0.9):.1f} ms p99={percentile(v, 0.99):.1f} ms")


if __name__ == "__main__":
    main()
