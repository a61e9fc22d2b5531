"""After a reconfiguration, the Python client learns the new epoch from the agents' proofs,
checked here (operator signature, commit certificate of the old epoch's quorum, f+1 signed
replies), and counts only the new epoch's voters. Tampered proofs teach it nothing."""

import dataclasses
import json

import pytest

from conftest import Cluster as Harness, phalanx
from phalanx_client import Cluster, PhalanxError, wire


@pytest.fixture(scope="module")
def reconfigured():
    h = Harness(4)
    phalanx("agent", "spawn", "--dir", h.dir, "--name", "bft-agent-5")
    out = phalanx("update-quorum", "--dir", h.dir, "--remove", "bft-agent-4", "--add", "bft-agent-5",
                  "--wait", "30", "--json")
    assert json.loads(out.stdout.strip().splitlines()[-1])["outcome"] == "applied", out.stdout
    yield h
    h.down()


def test_a_client_from_genesis_learns_the_new_epoch_and_counts_its_voters(reconfigured):
    c = Cluster(reconfigured.dir)
    assert [m["name"] for m in c.members] == [f"bft-agent-{i}" for i in range(1, 6)]
    acc = c.transfer(c.key("alice"), "alice", "bob", 3)
    assert acc.applied and acc.epoch == 1, acc
    e = c.membership.latest()
    assert e.number == 1 and [e.members[i][0] for i in e.voters] == ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-5"]
    assert 3 not in acc.replicas, "the removed agent's reply counted"
    voters, f = c.current_voters()
    assert [c.members[i]["name"] for i in voters] == ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-5"]
    assert c.memory_store(c.key("alice"), "py", "after", "the change").applied
    assert c.memory_retrieve("py", "after") == "the change"


def proofs_of_epoch_1(c):
    out = []
    for r in c.get_all("/v1/epochs/1"):
        if not isinstance(r, Exception) and r[0] == 200:
            out.append(wire.decode_epoch_proof(bytes.fromhex(r[1]["proof"])))
    assert len(out) >= 2
    return out


def test_tampered_proofs_are_refused(reconfigured):
    c = Cluster(reconfigured.dir)
    genuine = proofs_of_epoch_1(c)

    def refused(proofs, why):
        m = Cluster(reconfigured.dir).membership
        with pytest.raises(ValueError, match=why):
            m.learn(1, proofs)
        assert m.latest().number == 0

    # Signed by someone else than the operator.
    p = genuine[0]
    not_operator = dataclasses.replace(p, request=dataclasses.replace(p.request, client=bytes(32)))
    refused([not_operator], "not signed by the operator")
    # A commit certificate with too few commits.
    refused([dataclasses.replace(q, commits=q.commits[:1]) for q in genuine], "no commit certificate")
    # A forged commit signature.
    bad = dataclasses.replace(p.commits[0], signature=bytes(64))
    refused([dataclasses.replace(q, commits=(bad,) + q.commits[1:]) for q in genuine], "no commit certificate")
    # One reply is not f+1.
    refused(genuine[:1], "confirm the reconfiguration")
    # The genuine proofs teach it.
    m = Cluster(reconfigured.dir).membership
    m.learn(1, genuine)
    assert m.latest().number == 1


def test_garbage_proofs_do_not_decode():
    for data in [b"", b"\x01", bytes(range(256))]:
        with pytest.raises(wire.WireError):
            wire.decode_epoch_proof(data)


def test_a_reply_from_an_epoch_nobody_proves_is_refused(reconfigured):
    c = Cluster(reconfigured.dir)
    # epoch 7, view 0, seq 1, no entries; from agent 0 with a zero signature.
    raw = wire.varint(7) + wire.varint(0) + wire.varint(1) + wire.varint(0) + wire.varint(0)
    raw += wire.bytes32(bytes(32)) + wire.bytes32(bytes(32))
    with pytest.raises(PhalanxError, match="epoch 7, which this client has not verified"):
        c.check_reply(bytes(32), 1, bytes(32), raw.hex())
