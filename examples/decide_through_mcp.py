#!/usr/bin/env python3
"""Seven agents decide on the result of a task through MCP; two of them are Byzantine.

Each agent talks to the cluster only through its own `phalanx mcp` server (the official Python
MCP client over stdio), signing with its own key. The task: the sum of the primes below 10,000.
Each agent computes it, stores its full answer in the shared memory, and votes with the digest
of that answer under the rule f+1-matching (f = 2: three matching results decide).

- bft-agent-6 is Byzantine: it votes for the right result, then for a wrong one (a double vote).
- bft-agent-7 is Byzantine: it reports a wrong result.

The output shows the decision, the dissent, the equivocator caught with evidence and
quarantined, and the commit certificate checked by the MCP server. Exits 1 if a claim fails.

    cargo build --release
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install mcp
    /tmp/venv/bin/python examples/decide_through_mcp.py [--keep DIR]
"""

import asyncio
import json
import os
import pathlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("PHALANX_BIN", str(ROOT / "target" / "release" / "phalanx"))
AGENTS = [f"bft-agent-{i}" for i in range(1, 8)]
DECISION = "primes-below-10000"


def phalanx(*args):
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"phalanx {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def free_base(n):
    for _ in range(500):
        base = random.randint(20_000, 31_000)
        try:
            socks = []
            for p in [base + i for i in range(n)] + [base + 100 + i for i in range(n)]:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    sys.exit("no free port range")


def sum_of_primes_below(n):
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(sieve[i * i::i]))
    return sum(i for i in range(n) if sieve[i])


async def as_agent(cluster, agent, work):
    params = StdioServerParameters(command=BIN, args=["mcp", "--dir", cluster, "--agent", agent])
    async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


async def call(session, tool, args):
    r = await session.call_tool(tool, args)
    text = r.content[0].text if r.content else ""
    return (not r.is_error), (r.structured_content if not r.is_error else text)


async def agent_work(cluster, agent):
    """What one agent does: compute, store the full answer, vote with its digest."""
    answer = str(sum_of_primes_below(10_000))
    wrong = str(int(answer) + 1)

    async def work(s):
        log = []
        mine = wrong if agent == "bft-agent-7" else answer
        key = f"{DECISION}/{agent}"
        ok, r = await call(s, "memory_store", {"namespace": "results", "key": key, "value": mine})
        log.append(f"stores its answer {mine} at results/{key}: {'applied' if ok else r}")
        vote = {"id": DECISION, "result": mine, "location": f"results/{key}",
                "reason": "sieve of Eratosthenes" if mine == answer else "trust me"}
        ok, r = await call(s, "decision_vote", vote)
        log.append(f"votes for {mine}: {'applied at seq ' + str(r['seq']) if ok else r}")
        if agent == "bft-agent-6":
            ok, r = await call(s, "decision_vote", dict(vote, result=wrong, reason="changed my mind"))
            log.append(f"votes again, for {wrong}: {'applied' if ok else r}")
        return log

    return await as_agent(cluster, agent, work)


async def main(cluster):
    async def open_decision(s):
        return await call(s, "decision_open", {
            "id": DECISION, "question": "What is the sum of the primes below 10,000?",
            "voters": AGENTS, "rule": "f+1-matching", "f": 2, "deadline_secs": 300,
        })

    ok, r = await as_agent(cluster, "bft-agent-1", open_decision)
    print(f"bft-agent-1 opens decision {DECISION} (rule f+1-matching, f = 2): {'applied at seq ' + str(r['seq']) if ok else r}")
    if not ok:
        return False
    # The two Byzantine agents are the quickest to answer; then the honest ones. Each talks
    # through its own MCP server, signing with its own key. Ballots after the third matching
    # result come too late and are kept as late.
    for agent in AGENTS[5:] + AGENTS[:5]:
        for line in await agent_work(cluster, agent):
            print(f"  {agent} {line}")

    async def result(s):
        return await call(s, "decision_result", {"id": DECISION}), await call(s, "detection_log", {})

    (ok, r), (_, log) = await as_agent(cluster, "bft-agent-2", result)
    if not ok:
        print(r)
        return False
    print()
    print(f"decision {r['id']}: {r['status']}, winner {r['winner']} ({r['reason']})")
    for t in r["tally"]:
        print(f"  {t['choice']}: {t['voters']} voter(s)")
    for d in r["dissent"]:
        print(f"  dissent: {d['voter']} voted {d['choice']} ({d['reason']}), stored at {d['location']}")
    for d in r["late"]:
        print(f"  late: {d['voter']} voted {d['choice']}")
    for d in r["double_votes"]:
        print(f"  caught: {d['voter']} voted {d['first']} then {d['second']}; both void; evidence {d['evidence_id'][:16]}…")
    p = r["proof"]
    print(f"  certificate: commit certificate of seq {p['seq']} in epoch {p['epoch']}, {p['commit_signers']} "
          f"COMMIT signatures, closed by a {p['closed_by']}; checked by the MCP server")
    print(f"  confirmed by {', '.join(r['confirmed_by'])}")
    for e in log["entries"]:
        print(f"  detection log: seq {e['seq']} {e['detected_agent']} {e['fault_type']} by {e['detection_method']} "
              f"(reported by {e['reported_by']}): {e['action']}")

    import blake3  # noqa: PLC0415 - only to check the winner here
    right = "result:" + blake3.blake3(str(sum_of_primes_below(10_000)).encode()).hexdigest()
    claims = [
        ("the right result won", r["winner"] == right),
        ("the wrong result is kept as dissent", [d["voter"] for d in r["dissent"]] == ["bft-agent-7"]),
        ("the double voter is caught", [d["voter"] for d in r["double_votes"]] == ["bft-agent-6"]),
        ("the double voter is quarantined", any(e["detected_agent"] == "bft-agent-6" and e["fault_type"] == "double-vote"
                                                and e["action"] == "quarantined" for e in log["entries"])),
        ("nobody else is accused", all(e["detected_agent"] == "bft-agent-6" for e in log["entries"])),
        ("the certificate was checked", p["commit_signers"] >= 5),
    ]
    print()
    for what, held in claims:
        print(f"  [{'PASS' if held else 'FAIL'}] {what}")
    return all(held for _, held in claims)


if __name__ == "__main__":
    keep = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--keep" else None
    cluster = keep or tempfile.mkdtemp(prefix="phalanx-walkthrough-")
    shutil.rmtree(cluster, ignore_errors=True)
    phalanx("init", "--agents", "7", "--max-failures", "2", "--dir", cluster, "--base-port", str(free_base(9)))
    phalanx("up", "--dir", cluster)
    try:
        passed = asyncio.run(main(cluster))
    finally:
        subprocess.run([BIN, "down", "--dir", cluster, "--kill"], capture_output=True)
        if not keep:
            shutil.rmtree(cluster, ignore_errors=True)
    sys.exit(0 if passed else 1)
