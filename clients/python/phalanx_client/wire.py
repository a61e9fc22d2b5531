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
    reply = read_signed_reply(r)
    if r.pos != len(data):
        raise WireError("trailing bytes")
    return reply


# Decoding reconfiguration proofs (`GET /v1/epochs/{n}`): the operator-signed request, the commit
# certificate of the batch that ordered it, and one agent's signed reply.

def read_string(r: Reader) -> str:
    n = r.varint()
    try:
        return r.take(n).decode()
    except UnicodeDecodeError as e:
        raise WireError("a string that is not UTF-8") from e


def read_bytes(r: Reader) -> bytes:
    return r.take(r.varint())


def read_option(r: Reader, read):
    tag = r.byte()
    if tag == 0:
        return None
    if tag == 1:
        return read(r)
    raise WireError(f"bad option tag {tag}")


def read_seq(r: Reader, read, limit: int = 1 << 20):
    n = r.varint()
    if n > limit or n > len(r.data) - r.pos:
        raise WireError("a sequence longer than its bytes")
    return [read(r) for _ in range(n)]


@dataclass(frozen=True)
class Reconfiguration:
    remove: tuple
    add: tuple  # (name, key) pairs
    f: int | None


def read_operation(r: Reader):
    """Walks one operation; returns a Reconfiguration for `update_quorum`, else None."""
    s, u = read_string, Reader.varint
    tag = r.varint()
    if tag == 0:  # transfer
        s(r), s(r), u(r)
    elif tag == 1:  # memory_store
        s(r), s(r), s(r), read_option(r, u)
    elif tag in (2, 4):  # report, opaque
        read_bytes(r)
    elif tag == 3:  # operator actions
        action = r.varint()
        if action == 0:
            u(r)
        elif action in (1, 4):
            s(r)
        elif action == 2:
            s(r), read_option(r, s), u(r)
        elif action == 3:
            remove = read_seq(r, s)
            add = read_seq(r, lambda r: (s(r), r.bytes32(), s(r), s(r)))
            f = read_option(r, u)
            return Reconfiguration(tuple(remove), tuple((a[0], a[1]) for a in add), f)
        else:
            raise WireError(f"unknown operator action {action}")
    elif tag == 5:  # federated
        op = r.varint()
        if op == 0:
            s(r), u(r), s(r), read_seq(r, s), read_seq(r, s), u(r), u(r), read_seq(r, Reader.bytes32), u(r), u(r), u(r)
        elif op == 1:
            s(r), u(r), u(r), read_bytes(r)
        elif op == 2:
            s(r), u(r)
        elif op == 3:
            s(r)
        else:
            raise WireError(f"unknown federated operation {op}")
    elif tag == 6:  # decisions
        op = r.varint()
        if op == 0:
            s(r), s(r), read_seq(r, s), read_seq(r, Reader.bytes32)
            if r.varint() == 3:
                u(r)
            r.byte(), u(r)
        elif op == 1:
            s(r)
            ballot = r.varint()
            if ballot == 0:
                s(r)
            elif ballot == 1:
                r.bytes32(), s(r)
            s(r)
        else:
            raise WireError(f"unknown decision operation {op}")
    else:
        raise WireError(f"unknown operation {tag}")
    return None


@dataclass(frozen=True)
class Request:
    client: bytes
    nonce: int
    body: bytes          # the canonical body, what the signature covers
    encoded: bytes       # the whole request (body and signature)
    signature: bytes
    reconfiguration: Reconfiguration | None

    def op_digest(self) -> bytes:
        import blake3
        return blake3.blake3(self.body).digest()

    def digest(self) -> bytes:
        import blake3
        return blake3.blake3(b"phalanx-request" + self.op_digest() + self.signature).digest()


def read_request(r: Reader) -> Request:
    start = r.pos
    client, nonce = r.bytes32(), r.varint()
    reconfiguration = read_operation(r)
    body = r.data[start:r.pos]
    signature = r.bytes32() + r.bytes32()
    return Request(client, nonce, body, r.data[start:r.pos], signature, reconfiguration)


@dataclass(frozen=True)
class Commit:
    phase: int
    epoch: int
    view: int
    seq: int
    digest: bytes
    body: bytes
    sender: int
    signature: bytes


def read_vote(r: Reader) -> Commit:
    start = r.pos
    phase, epoch, view, seq_, digest = r.varint(), r.varint(), r.varint(), r.varint(), r.bytes32()
    body = r.data[start:r.pos]
    return Commit(phase, epoch, view, seq_, digest, body, r.varint(), r.bytes32() + r.bytes32())


def read_signed_reply(r: Reader) -> SignedReply:
    start = r.pos
    epoch, view, seq_ = r.varint(), r.varint(), r.varint()
    entries = []
    for _ in range(r.varint()):
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
    body = r.data[start:r.pos]
    sender = r.varint()
    return SignedReply(epoch, view, seq_, tuple(entries), sender, r.bytes32() + r.bytes32(), body)


@dataclass(frozen=True)
class EpochProof:
    request: Request
    commits: tuple
    batch_timestamp_ms: int
    batch_requests: tuple
    reply: SignedReply

    def batch_digest(self) -> bytes:
        import blake3
        out = b"phalanx-batch" + self.batch_timestamp_ms.to_bytes(8, "little")
        out += len(self.batch_requests).to_bytes(8, "little")
        return blake3.blake3(out + b"".join(q.digest() for q in self.batch_requests)).digest()


def decode_epoch_proof(data: bytes) -> EpochProof:
    r = Reader(data)
    request = read_request(r)
    commits = read_seq(r, read_vote, limit=1024)
    timestamp = r.varint()
    requests = read_seq(r, read_request, limit=4096)
    reply = read_signed_reply(r)
    if r.pos != len(data):
        raise WireError("trailing bytes")
    return EpochProof(request, tuple(commits), timestamp, tuple(requests), reply)
