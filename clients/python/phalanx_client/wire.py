"""Phalanx's canonical encoding (postcard) for what a client signs and reads: request bodies
of the operations this client sends, and signed replies. Every integer is an unsigned LEB128
varint, strings and byte strings carry a varint length, enums a varint variant index."""

from dataclasses import dataclass

DOMAIN_TAG = b"phalanx/v1\x00"
KIND_REQUEST = 1
KIND_REPLY = 10

# `RejectReason` in variant order (crates/core/src/wire/client.rs).
REJECT_REASONS = [
    "overdraft", "bad-signature", "reused-nonce", "unknown-account", "invalid-amount", "memory-full",
    "unauthorized", "invalid-evidence", "duplicate", "invalid-reconfiguration", "invalid-round",
    "round-not-open", "not-participant", "bad-update", "federated-full", "unknown-model", "not-owner",
    "memory-quota", "invalid-decision", "unknown-decision", "not-voter", "invalid-ballot",
    "decision-closed", "double-vote", "decisions-full",
]

RULES = ["majority", "two-thirds", "unanimous", "f+1-matching"]


class WireError(ValueError):
    """Bytes that are not a valid encoding."""


def varint(n: int) -> bytes:
    if n < 0 or n >= 1 << 64:
        raise ValueError(f"{n} is not a u64")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(s: str) -> bytes:
    b = s.encode()
    return varint(len(b)) + b


def bytes32(b: bytes) -> bytes:
    if len(b) != 32:
        raise ValueError("expected 32 bytes")
    return varint(32) + b


def option(value, encode) -> bytes:
    return b"\x00" if value is None else b"\x01" + encode(value)


def seq(items, encode) -> bytes:
    return varint(len(items)) + b"".join(encode(i) for i in items)


def signing_bytes(cluster: bytes, epoch: int, kind: int, body: bytes) -> bytes:
    """The exact bytes a signature covers: tag, cluster id, epoch (u64 LE), kind, body."""
    return DOMAIN_TAG + cluster + epoch.to_bytes(8, "little") + bytes([kind]) + body


# Operations: each returns (its JSON form for the HTTP API, its canonical encoding).

def transfer(from_: str, to: str, amount: int):
    return ({"type": "transfer", "from": from_, "to": to, "amount": amount},
            varint(0) + string(from_) + string(to) + varint(amount))


def memory_store(namespace: str, key: str, value: str, ttl_ms: int | None = None):
    return ({"type": "memory_store", "namespace": namespace, "key": key, "value": value, "ttl_ms": ttl_ms},
            varint(1) + string(namespace) + string(key) + string(value) + option(ttl_ms, varint))


def decision_open(id: str, question: str, options: list[str], voters: list[bytes], rule: str,
                  f: int | None = None, weighted: bool = False, deadline_ms: int = 600_000):
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: expected one of {', '.join(RULES)}")
    if (rule == "f+1-matching") != (f is not None):
        raise ValueError("f goes with the rule f+1-matching, and only with it")
    encoded_rule = varint(RULES.index(rule)) + (varint(f) if f is not None else b"")
    spec = (string(id) + string(question) + seq(options, string) + seq(voters, bytes32) + encoded_rule
            + bytes([1 if weighted else 0]) + varint(deadline_ms))
    as_json = {"type": "decision_open", "id": id, "question": question, "options": options,
               "voters": [v.hex() for v in voters], "rule": rule, "f": f, "weighted": weighted,
               "deadline_ms": deadline_ms}
    return as_json, varint(6) + varint(0) + spec


def decision_vote(id: str, *, option_: str | None = None, result_digest: bytes | None = None,
                  location: str = "", abstain: bool = False, reason: str = ""):
    given = [option_ is not None, result_digest is not None, abstain]
    if sum(given) != 1:
        raise ValueError("give exactly one ballot: an option, a result digest or an abstention")
    if option_ is not None:
        ballot_json, ballot = {"option": option_}, varint(0) + string(option_)
    elif result_digest is not None:
        ballot_json = {"result": {"digest": result_digest.hex(), "location": location}}
        ballot = varint(1) + bytes32(result_digest) + string(location)
    else:
        ballot_json, ballot = "abstain", varint(2)
    return ({"type": "decision_vote", "id": id, "ballot": ballot_json, "reason": reason},
            varint(6) + varint(1) + string(id) + ballot + string(reason))


def request_body(client: bytes, nonce: int, op_encoded: bytes) -> bytes:
    return bytes32(client) + varint(nonce) + op_encoded


# Decoding signed replies.

class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise WireError("truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        n, shift = 0, 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                if n >= 1 << 64:
                    raise WireError("varint over 64 bits")
                return n
            shift += 7
            if shift > 63:
                raise WireError("varint too long")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WireError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def bytes32(self) -> bytes:
        if self.varint() != 32:
            raise WireError("expected 32 bytes")
        return self.take(32)


@dataclass(frozen=True)
class Entry:
    client: bytes
    nonce: int
    op: bytes
    outcome: str


@dataclass(frozen=True)
class SignedReply:
    epoch: int
    view: int
    seq: int
    entries: tuple
    sender: int
    signature: bytes
    body: bytes  # the canonical encoding of the reply body, what the signature covers


def decode_signed_reply(data: bytes) -> SignedReply:
    r = Reader(data)
    epoch, view, seq_ = r.varint(), r.varint(), r.varint()
    count = r.varint()
    if count > 4096:
        raise WireError("too many reply entries")
    entries = []
    for _ in range(count):
        client, nonce, op = r.bytes32(), r.varint(), r.bytes32()
        tag = r.varint()
        if tag == 0:
            outcome = "applied"
        elif tag == 1:
            reason = r.varint()
            if reason >= len(REJECT_REASONS):
                raise WireError(f"unknown reject reason {reason}")
            outcome = "rejected:" + REJECT_REASONS[reason]
        else:
            raise WireError(f"unknown outcome {tag}")
        entries.append(Entry(client, nonce, op, outcome))
    body = data[:r.pos]
    sender = r.varint()
    signature = r.bytes32() + r.bytes32()
    if r.pos != len(data):
        raise WireError("trailing bytes")
    return SignedReply(epoch, view, seq_, tuple(entries), sender, signature, body)
