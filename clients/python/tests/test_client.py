"""The Python client against a real cluster: keys from `phalanx init`, signed transfers, memory
and decisions, each result accepted on f+1 matching signed replies verified here; and the
verification itself refusing forged, foreign and misdirected replies."""

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import BIN
from phalanx_client import Cluster, PhalanxError, load_key, public_bytes, wire


def genesis_owner(cluster, account):
    import tomllib
    g = tomllib.loads(open(f"{cluster.dir}/genesis.toml").read())
    return next(a["owner"] for a in g["accounts"] if a["name"] == account)


def test_keys_from_init_are_the_genesis_owners(cluster):
    key = load_key(f"{cluster.dir}/clients/alice.pem")
    assert public_bytes(key).hex() == genesis_owner(cluster, "alice")
    agent = Cluster(cluster.dir).key("bft-agent-3")
    assert public_bytes(agent).hex() == genesis_owner(cluster, "bft-agent-3")


def test_transfers_are_accepted_on_f_plus_one_verified_replies(cluster):
    c = Cluster(cluster.dir)
    alice = c.key("alice")
    before = c.balance("bob")
    acc = c.transfer(alice, "alice", "bob", 25)
    assert acc.applied and len(acc.replicas) == c.f + 1 and acc.epoch == 0, acc
    assert c.balance("bob") == before + 25
    over = c.transfer(alice, "alice", "bob", 10**15)
    assert over.outcome == "rejected:overdraft"
    stolen = c.transfer(alice, "bob", "alice", 1)
    assert stolen.outcome == "rejected:bad-signature"
    assert c.balance("bob") == before + 25


def test_memory_round_trip(cluster):
    c = Cluster(cluster.dir)
    alice = c.key("alice")
    assert c.memory_store(alice, "py", "greeting", "hello from python").applied
    assert c.memory_retrieve("py", "greeting") == "hello from python"
    assert c.memory_retrieve("py", "absent") is None


def test_decisions_through_the_python_client(cluster):
    c = Cluster(cluster.dir)
    voters = ["bft-agent-1", "bft-agent-2", "bft-agent-3"]
    op = c.decision_open(c.key("operator"), "py-task", "What is 6 x 7?", [], voters, rule="f+1-matching", f=1)
    assert op.applied, op
    assert c.vote(c.key("bft-agent-1"), "py-task", result="42", location="py/answer", reason="computed").applied
    assert c.vote(c.key("bft-agent-2"), "py-task", result="41", reason="off by one").applied
    assert c.vote(c.key("bft-agent-3"), "py-task", result="42", reason="computed too").applied
    record = c.decision("py-task")
    assert record["status"] == "decided" and record["winner"].startswith("result:"), record
    assert [d["voter"] for d in record["dissent"]] == ["bft-agent-2"]
    assert len(record["confirmed_by"]) >= c.f + 1
    late = c.vote(c.key("bft-agent-1"), "py-task", abstain=True)
    assert late.outcome == "rejected:double-vote", late
    with pytest.raises(PhalanxError, match="no decision"):
        c.decision("never-opened")
    with pytest.raises(ValueError, match="exactly one ballot"):
        wire.decision_vote("x")
    with pytest.raises(ValueError, match="unknown rule"):
        wire.decision_open("x", "q", ["a"], [], "plurality")


def test_outcomes_decoded_here_match_what_the_agents_say(cluster):
    """The reject reasons this client decodes are the agents' own (one table, two languages)."""
    c = Cluster(cluster.dir)
    alice = c.key("alice")
    op_json, op = wire.memory_store("py", "k" * 300, "v")  # over the key limit: refused before ordering
    with pytest.raises(PhalanxError, match="refused"):
        c.submit(alice, (op_json, op))
    acc = c.transfer(alice, "alice", "nobody-has-this-account", 1)
    assert acc.outcome == "rejected:unknown-account"


def signed_reply_for_a_fresh_transfer(c):
    """A genuine (request, reply) pair from one agent."""
    alice = c.key("alice")
    op_json, op = wire.transfer("alice", "bob", 1)
    client, nonce = public_bytes(alice), c._nonce()
    body = wire.request_body(client, nonce, op)
    sig = alice.sign(wire.signing_bytes(c.cluster_id, 0, wire.KIND_REQUEST, body))
    req = json.dumps({"client": client.hex(), "nonce": nonce, "op": op_json, "signature": sig.hex()}).encode()
    answers = []
    for m in c.members:  # every agent gets it, as a client sends it
        r = urllib.request.Request(f"http://{m['http']}/v1/transactions", data=req, method="POST",
                                   headers={"content-type": "application/json"})
        try:
            answers.append(json.loads(urllib.request.urlopen(r, timeout=20).read()))
        except urllib.error.HTTPError:
            pass
    answer = next(a for a in answers if a.get("signed_reply"))
    import blake3
    return client, nonce, blake3.blake3(body).digest(), answer["signed_reply"]


def test_forged_foreign_and_misdirected_replies_are_refused(cluster):
    c = Cluster(cluster.dir)
    client, nonce, op, signed = signed_reply_for_a_fresh_transfer(c)
    sender, outcome, seq, epoch, f = c.check_reply(client, nonce, op, signed)
    assert outcome == "applied" and epoch == 0 and f == c.f
    raw = bytearray(bytes.fromhex(signed))
    # A flipped signature bit.
    forged = bytes(raw[:-1] + bytes([raw[-1] ^ 1])).hex()
    with pytest.raises(PhalanxError, match="does not verify"):
        c.check_reply(client, nonce, op, forged)
    # The same reply presented as another agent's: the signature is not that agent's.
    reply = wire.decode_signed_reply(bytes(raw))
    other = (reply.sender + 1) % len(c.members)
    moved = reply.body + wire.varint(other) + wire.bytes32(reply.signature[:32]) + wire.bytes32(reply.signature[32:])
    with pytest.raises(PhalanxError, match="does not verify"):
        c.check_reply(client, nonce, op, moved.hex())
    # From an agent that is no voter.
    stranger = reply.body + wire.varint(99) + wire.bytes32(reply.signature[:32]) + wire.bytes32(reply.signature[32:])
    with pytest.raises(PhalanxError, match="not a voter"):
        c.check_reply(client, nonce, op, stranger.hex())
    # A genuine reply that answers another request.
    with pytest.raises(PhalanxError, match="does not answer"):
        c.check_reply(client, nonce + 1, op, signed)
    # Garbage and truncation.
    for bad in ["zz", signed[:40], signed + "00"]:
        with pytest.raises(PhalanxError, match="bad signed reply"):
            c.check_reply(client, nonce, op, bad)


def test_the_command_line_and_python_agree_on_a_decision(cluster):
    c = Cluster(cluster.dir)
    c.decision_open(c.key("operator"), "py-cross", "Ship?", ["yes", "no"], ["bft-agent-4", "bft-agent-5"], rule="unanimous")
    c.vote(c.key("bft-agent-4"), "py-cross", option="yes")
    c.vote(c.key("bft-agent-5"), "py-cross", option="yes")
    out = subprocess.run([BIN, "decision", "show", "--dir", cluster.dir, "--id", "py-cross", "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    shown = json.loads(out.stdout.strip().splitlines()[-1])
    assert shown["winner"] == "yes" and shown["proof_checked"]["closed_by"] == "ballot"
    assert c.decision("py-cross")["encoded"] == shown["encoded"]
