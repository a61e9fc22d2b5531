"""`phalanx mcp` driven by the official Python MCP client over stdio, against a real cluster:
every tool lists an input and an output schema, writes and reads go through the cluster's
client rules, and bad input gets a clear tool error."""

import asyncio
import json

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import BIN

TOOLS = {
    "decision_open", "decision_vote", "decision_result", "memory_store", "memory_retrieve",
    "memory_list", "ledger_transfer", "ledger_balance", "cluster_health", "detection_log", "agents",
}


async def session_of(cluster, agent, body):
    params = StdioServerParameters(command=BIN, args=["mcp", "--dir", cluster.dir, "--agent", agent])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            return await body(s)


def run(cluster, agent, body):
    return asyncio.run(session_of(cluster, agent, body))


def ok(result):
    assert not result.is_error, result.content[0].text if result.content else result
    return result.structured_content


def error_text(result):
    assert result.is_error, result.structured_content
    return result.content[0].text


def test_every_tool_has_input_and_output_schemas(cluster):
    async def body(s):
        return (await s.list_tools()).tools

    tools = {t.name: t for t in run(cluster, "bft-agent-1", body)}
    assert TOOLS <= set(tools), set(tools)
    for name in TOOLS:
        assert tools[name].input_schema["type"] == "object", name
        assert tools[name].output_schema and tools[name].output_schema["type"] == "object", name
        assert tools[name].description, name


def test_agents_decide_through_mcp_and_a_double_vote_is_caught(cluster):
    voters = [f"bft-agent-{i}" for i in range(1, 8)]

    async def open_it(s):
        return ok(await s.call_tool("decision_open", {
            "id": "mcp-plan", "question": "Which plan?", "options": ["a", "b"],
            "voters": voters, "rule": "majority", "deadline_secs": 300,
        }))

    opened = run(cluster, "bft-agent-1", open_it)
    assert opened["outcome"] == "applied" and len(opened["replicas"]) >= 3

    def vote(agent, option, reason):
        async def body(s):
            return await s.call_tool("decision_vote", {"id": "mcp-plan", "option": option, "reason": reason})
        return run(cluster, agent, body)

    for agent in voters[:3]:
        ok(vote(agent, "a", "cheaper"))
    ok(vote("bft-agent-4", "b", "safer"))
    ok(vote("bft-agent-5", "b", "first"))
    assert "double-vote" in error_text(vote("bft-agent-5", "a", "then the other"))
    ok(vote("bft-agent-6", "a", "agree"))

    async def result(s):
        return ok(await s.call_tool("decision_result", {"id": "mcp-plan"}))

    r = run(cluster, "bft-agent-7", result)
    assert r["status"] == "decided" and r["winner"] == "a", r
    assert [d["voter"] for d in r["dissent"]] == ["bft-agent-4"] and r["dissent"][0]["reason"] == "safer"
    assert [d["voter"] for d in r["double_votes"]] == ["bft-agent-5"]
    assert r["proof"]["closed_by"] == "ballot" and r["proof"]["commit_signers"] >= 5, r
    assert len(r["confirmed_by"]) >= 3

    async def log(s):
        return ok(await s.call_tool("detection_log", {}))

    entries = run(cluster, "bft-agent-7", log)["entries"]
    caught = [e for e in entries if e["fault_type"] == "double-vote"]
    assert caught and caught[0]["detected_agent"] == "bft-agent-5" and caught[0]["action"] == "quarantined"


def test_memory_ledger_health_and_agents(cluster):
    async def body(s):
        stored = ok(await s.call_tool("memory_store", {"namespace": "notes", "key": "k1", "value": "hello"}))
        got = ok(await s.call_tool("memory_retrieve", {"namespace": "notes", "key": "k1"}))
        missing = ok(await s.call_tool("memory_retrieve", {"namespace": "notes", "key": "absent"}))
        listed = ok(await s.call_tool("memory_list", {"namespace": "notes"}))
        balance = ok(await s.call_tool("ledger_balance", {"account": "bob"}))
        moved = ok(await s.call_tool("ledger_transfer", {"from": "alice", "to": "bob", "amount": 7}))
        after = ok(await s.call_tool("ledger_balance", {"account": "bob"}))
        health = ok(await s.call_tool("cluster_health", {}))
        agents = ok(await s.call_tool("agents", {}))
        return stored, got, missing, listed, balance, moved, after, health, agents

    stored, got, missing, listed, balance, moved, after, health, agents = run(cluster, "alice", body)
    assert stored["outcome"] == "applied"
    assert got["found"] and got["value"] == "hello" and len(got["confirmed_by"]) >= 3
    assert not missing["found"]
    assert [k["key"] for k in listed["keys"]] == ["k1"]
    assert moved["outcome"] == "applied"
    assert after["balance"] == balance["balance"] + 7
    assert health["quorum_met"] and health["system_integrity"] == "verified", health
    assert len(agents["agents"]) == 7 and {a["role"] for a in agents["agents"]} >= {"primary"}


def test_bad_input_gets_a_clear_tool_error_and_changes_nothing(cluster):
    async def body(s):
        before = ok(await s.call_tool("ledger_balance", {"account": "alice"}))
        errors = [
            error_text(await s.call_tool("decision_vote", {"id": "no-such", "abstain": True})),
            error_text(await s.call_tool("decision_vote", {"id": "mcp-plan"})),
            error_text(await s.call_tool("decision_open", {"id": "bad id", "question": "q", "voters": ["alice"]})),
            error_text(await s.call_tool("decision_open", {"id": "x", "question": "q", "voters": ["nobody"]})),
            error_text(await s.call_tool("decision_open", {"id": "x", "question": "q", "options": ["a"], "voters": ["alice"], "rule": "plurality"})),
            error_text(await s.call_tool("decision_result", {"idx": "x"})),
            error_text(await s.call_tool("ledger_transfer", {"from": "bob", "to": "alice", "amount": 1})),
            error_text(await s.call_tool("ledger_transfer", {"from": "alice", "to": "bob", "amount": 10**18})),
            error_text(await s.call_tool("memory_store", {"key": "k", "value": "v" * 20000})),
            error_text(await s.call_tool("decision_result", {"id": "no-such"})),
        ]
        after = ok(await s.call_tool("ledger_balance", {"account": "alice"}))
        return before, errors, after

    before, errors, after = run(cluster, "alice", body)
    expected = [
        "unknown-decision", "exactly one ballot", "decision id", "no key for \"nobody\"", "unknown rule",
        "idx", "another key", "overdraft", "limit", "no decision",
    ]
    for text, want in zip(errors, expected):
        assert want in text, (want, text)
    assert after["balance"] == before["balance"]
