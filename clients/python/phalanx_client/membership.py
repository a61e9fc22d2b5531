"""Whom a client believes, epoch by epoch, as the Rust client's `membership.rs` has it. It starts
from genesis and takes a later epoch only on a proof it checks itself: the operator-signed
reconfiguration, a commit certificate of the batch that ordered it from a quorum of the previous
epoch's voters, and f+1 signed replies from distinct voters of that epoch saying it was applied.
The new epoch is computed here from the request, as the replicas compute it."""

from dataclasses import dataclass, field

from . import wire

# How long after a reconfiguration was committed a request created by the client may still have
# executed in the epoch before it (the Rust client's HANDOVER_MS).
HANDOVER_MS = 60_000
KIND_PREPARE, KIND_COMMIT = 3, 4


@dataclass
class Epoch:
    number: int
    members: list  # (name, key) by member id
    voters: list   # member ids, sorted
    f: int
    start: int = 0

    def voter_key(self, member_id: int):
        if member_id in self.voters and member_id < len(self.members):
            return self.members[member_id][1]
        return None

    def quorum(self) -> int:
        n = len(self.voters)
        return -(-(n + self.f + 1) // 2)

    def reconfigured(self, seq: int, windows, change: wire.Reconfiguration):
        """The next epoch, or None where the replicas would refuse the change."""
        if not change.remove and not change.add and change.f is None:
            return None
        f = self.f if change.f is None else change.f
        if len(change.remove) > self.f or len(change.add) > f:
            return None
        members, voters = list(self.members), set(self.voters)
        for name in change.remove:
            ids = [i for i, m in enumerate(members) if m[0] == name]
            if not ids or ids[0] not in voters:
                return None
            voters.discard(ids[0])
        for name, key in change.add:
            ids = [i for i, m in enumerate(members) if m[0] == name or m[1] == key]
            if ids:
                i = ids[0]
                if members[i] != (name, key) or i in voters:
                    return None
                voters.add(i)
            else:
                voters.add(len(members))
                members.append((name, key))
        if len(voters) < 3 * f + 1:
            return None
        k = max(windows[0], 1)
        return Epoch(self.number + 1, members, sorted(voters), f, (seq // k + 1) * k)


@dataclass
class Membership:
    cluster: bytes
    operator: bytes | None
    windows: tuple
    epochs: list = field(default_factory=list)  # (Epoch, committed_ms)

    def epoch(self, n: int):
        return self.epochs[n][0] if 0 <= n < len(self.epochs) else None

    def latest(self) -> Epoch:
        return self.epochs[-1][0]

    def reply_f(self, reply: wire.SignedReply) -> int:
        """Checks a reply's signature against the voter of the epoch it names; returns that
        epoch's f, or raises ValueError saying why it does not count."""
        epoch = self.epoch(reply.epoch)
        if epoch is None:
            raise ValueError(f"reply from epoch {reply.epoch}, which this client has not verified")
        key = epoch.voter_key(reply.sender)
        if key is None:
            raise ValueError(f"agent {reply.sender} is not a voter of epoch {reply.epoch}")
        message = wire.signing_bytes(self.cluster, reply.epoch, wire.KIND_REPLY, reply.body)
        from .client import verify
        if not verify(key, reply.signature, message):
            raise ValueError(f"the reply of agent {reply.sender} does not verify")
        return epoch.f

    def may_have_executed_in(self, n: int, created_ms: int) -> bool:
        if n + 1 < len(self.epochs):
            return created_ms <= self.epochs[n + 1][1] + HANDOVER_MS
        return self.epoch(n) is not None

    def commits_certify(self, epoch: Epoch, proof: wire.EpochProof) -> bool:
        from .client import verify
        if not proof.commits:
            return False
        first = proof.commits[0]
        if first.phase != 1 or first.epoch != epoch.number or proof.batch_digest() != first.digest:
            return False
        senders = set()
        for c in proof.commits:
            if c.body != first.body or c.sender in senders:
                return False
            senders.add(c.sender)
            key = epoch.voter_key(c.sender)
            kind = KIND_COMMIT if c.phase == 1 else KIND_PREPARE
            if key is None or not verify(key, c.signature, wire.signing_bytes(self.cluster, c.epoch, kind, c.body)):
                return False
        return len(senders) >= epoch.quorum()

    def learn(self, n: int, proofs: list) -> None:
        """Takes epoch n (the next one) on the proofs gathered from agents; raises ValueError."""
        if n != len(self.epochs):
            raise ValueError(f"epoch {n} is not the next one (this client knows {len(self.epochs) - 1})")
        prev = self.latest()
        last = f"no agent sent a proof of epoch {n}"
        for candidate in proofs:
            try:
                nxt = self.check(prev, candidate, proofs)
            except ValueError as e:
                last = str(e)
                continue
            self.epochs.append((nxt, candidate.batch_timestamp_ms))
            return
        raise ValueError(f"epoch {n} not proven: {last}")

    def check(self, prev: Epoch, candidate: wire.EpochProof, proofs: list) -> Epoch:
        from .client import verify
        req = candidate.request
        if req.reconfiguration is None:
            raise ValueError("the proof's request is not a reconfiguration")
        if self.operator != req.client:
            raise ValueError("the reconfiguration is not signed by the operator")
        if not verify(req.client, req.signature, wire.signing_bytes(self.cluster, 0, wire.KIND_REQUEST, req.body)):
            raise ValueError("the reconfiguration's signature does not verify")
        if not self.commits_certify(prev, candidate) or not any(q.encoded == req.encoded for q in candidate.batch_requests):
            raise ValueError(f"no commit certificate of epoch {prev.number} for the reconfiguration")
        seq = candidate.commits[0].seq
        op = req.op_digest()
        applied = set()
        for p in proofs:
            r = p.reply
            says = any((e.client, e.nonce, e.op) == (req.client, req.nonce, op) and e.outcome == "applied"
                       for e in r.entries)
            if r.epoch == prev.number and r.seq == seq and says:
                try:
                    self.reply_f(r)
                except ValueError:
                    continue
                applied.add(r.sender)
        if len(applied) < prev.f + 1:
            raise ValueError(f"{len(applied)} of the f+1 = {prev.f + 1} voters of epoch {prev.number} confirm the "
                             "reconfiguration was applied")
        nxt = prev.reconfigured(seq, self.windows, req.reconfiguration)
        if nxt is None:
            raise ValueError("the reconfiguration does not yield a valid epoch")
        return nxt
