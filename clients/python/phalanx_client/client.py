"""The client rules, as the Rust client (`crates/client`) has them: send each signed request to
every agent, and accept a result only when f+1 distinct voters returned matching replies whose
signatures this client verified itself. Reads are accepted when f+1 voters return the same
answer. Nothing is taken on one agent's word."""

import json
import pathlib
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import wire
from .membership import Epoch, Membership


class PhalanxError(Exception):
    """A result could not be confirmed, or the input was refused."""


@dataclass(frozen=True)
class Accepted:
    """A result confirmed by f+1 matching signed replies."""

    outcome: str
    seq: int
    epoch: int
    replicas: tuple

    @property
    def applied(self) -> bool:
        return self.outcome == "applied"


@dataclass(frozen=True)
class Confirmed:
    """An answer f+1 voters agree on."""

    answer: dict
    confirmed_by: tuple


def load_key(path) -> Ed25519PrivateKey:
    """An Ed25519 key from a PKCS#8 PEM file, as `phalanx init` writes them."""
    pem = pathlib.Path(path).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise PhalanxError(f"{path}: not an Ed25519 key")
    return key


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


class Cluster:
    """A cluster folder written by `phalanx init`: genesis.toml, keys/, clients/."""

    def __init__(self, directory, timeout: float = 20.0):
        self.dir = pathlib.Path(directory)
        genesis = tomllib.loads((self.dir / "genesis.toml").read_text())
        self.cluster_id = bytes.fromhex(genesis["cluster_id"])
        self.f = int(genesis["max_failures"])
        # Whom to ask: genesis members, then agents spawned to join (nodes/*.toml beyond genesis).
        self.members = [
            {"name": m["name"], "key": bytes.fromhex(m["public_key"]), "http": m["http_addr"]}
            for m in genesis["members"]
        ]
        self.members += self._spawned({m["name"] for m in self.members})
        operator = genesis.get("operator_key")
        params = genesis.get("params", {})
        genesis_epoch = Epoch(0, [(m["name"], m["key"]) for m in self.members[:len(genesis["members"])]],
                              list(range(len(genesis["members"]))), self.f)
        self.membership = Membership(self.cluster_id, bytes.fromhex(operator) if operator else None,
                                     (params.get("checkpoint_interval", 100), params.get("log_window", 200)),
                                     [(genesis_epoch, 0)])
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(4, len(self.members)))
        self._last_nonce = 0

    def _spawned(self, known):
        out = []
        for path in sorted((self.dir / "nodes").glob("*.toml")):
            node = tomllib.loads(path.read_text())
            if node.get("name") in known or not node.get("http_addr"):
                continue
            key = load_key(path.parent / node["key"])
            out.append({"name": node["name"], "key": public_bytes(key), "http": node["http_addr"]})
        return out

    # Epochs.

    def learn_epochs(self, target: int) -> None:
        """Learns every epoch up to `target` from the agents' proofs; stops quietly at the first
        nobody proves (it does not exist yet)."""
        while len(self.membership.epochs) <= target:
            n = len(self.membership.epochs)
            proofs = []
            for r in self.get_all(f"/v1/epochs/{n}"):
                if isinstance(r, Exception) or r[0] != 200 or not isinstance(r[1], dict):
                    continue
                try:
                    proofs.append(wire.decode_epoch_proof(bytes.fromhex(r[1].get("proof", ""))))
                except (ValueError, wire.WireError):
                    continue
            if not proofs:
                return
            self.membership.learn(n, proofs)

    def current_voters(self):
        """Indices into `members` of the latest verified epoch's voters, and its f."""
        try:
            self.learn_epochs(1 << 62)
        except ValueError:
            pass
        e = self.membership.latest()
        keys = {e.members[i][1] for i in e.voters}
        return [i for i, m in enumerate(self.members) if m["key"] in keys], e.f

    # Keys.

    def key(self, name: str) -> Ed25519PrivateKey:
        """A signer by name: `operator`, an agent (keys/NAME.pem) or a client (clients/NAME.pem)."""
        if name == "operator" or any(m["name"] == name for m in self.members):
            return load_key(self.dir / "keys" / f"{name}.pem")
        return load_key(self.dir / "clients" / f"{name}.pem")

    def public_key(self, name: str) -> bytes:
        """A public key by name, or from 64 hex characters."""
        for m in self.members:
            if m["name"] == name:
                return m["key"]
        if len(name) == 64:
            try:
                return bytes.fromhex(name)
            except ValueError:
                pass
        return public_bytes(self.key(name))

    # HTTP.

    def _call(self, i: int, method: str, path: str, body: bytes | None = None):
        url = f"http://{self.members[i]['http']}{path}"
        req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None

    def get_all(self, path: str):
        """(status, JSON) from every agent, or the exception that reached it."""

        def one(i):
            try:
                return self._call(i, "GET", path)
            except Exception as e:  # noqa: BLE001 - an unreachable agent is an answer too
                return e

        return list(self._pool.map(one, range(len(self.members))))

    # Writes.

    def _nonce(self) -> int:
        """Microseconds of the clock, increasing within this process: nonces grow across runs."""
        self._last_nonce = max(self._last_nonce + 1, time.time_ns() // 1000)
        return self._last_nonce

    def check_reply(self, client: bytes, nonce: int, op_digest: bytes, signed_hex: str):
        """A signed reply that answers this request, from a voter of the epoch it names (learnt
        from proofs if new), with a valid signature: returns (voter, outcome, seq, epoch, that
        epoch's f); raises PhalanxError otherwise."""
        try:
            reply = wire.decode_signed_reply(bytes.fromhex(signed_hex))
        except (ValueError, wire.WireError) as e:
            raise PhalanxError(f"bad signed reply: {e}") from e
        if reply.epoch >= len(self.membership.epochs):
            try:
                self.learn_epochs(reply.epoch)
            except ValueError as e:
                raise PhalanxError(str(e)) from e
        try:
            f = self.membership.reply_f(reply)
        except ValueError as e:
            raise PhalanxError(str(e)) from e
        entry = next((e for e in reply.entries if (e.client, e.nonce, e.op) == (client, nonce, op_digest)), None)
        if entry is None:
            raise PhalanxError("the reply does not answer this request")
        return reply.sender, entry.outcome, reply.seq, reply.epoch, f

    def submit(self, key: Ed25519PrivateKey, op, timeout: float | None = None) -> Accepted:
        """Signs `op` (a pair from `phalanx_client.wire`), sends it to every agent and waits for
        f+1 matching verified replies."""
        op_json, op_encoded = op
        client, nonce = public_bytes(key), self._nonce()
        body = wire.request_body(client, nonce, op_encoded)
        signature = key.sign(wire.signing_bytes(self.cluster_id, 0, wire.KIND_REQUEST, body))
        op_digest = blake3.blake3(body).digest()
        request = json.dumps({"client": client.hex(), "nonce": nonce, "op": op_json, "signature": signature.hex()}).encode()
        created_ms = time.time_ns() // 1_000_000
        deadline = time.monotonic() + (timeout or self.timeout)
        status_path = f"/v1/transactions/{client.hex()}/{nonce}"

        def ask(i):
            try:
                code, v = self._call(i, "POST", "/v1/transactions", request)
                # 202: accepted, not executed yet (a view change, say): ask again, never resubmit.
                while code in (202, 404) and time.monotonic() < deadline:
                    time.sleep(0.3)
                    code, v = self._call(i, "GET", status_path)
                return i, code, v
            except Exception as e:  # noqa: BLE001
                return i, None, str(e)

        votes: dict = {}
        errors = []
        futures = [self._pool.submit(ask, i) for i in range(len(self.members))]
        for done in as_completed(futures):
            i, code, v = done.result()
            name = self.members[i]["name"]
            if code == 200 and isinstance(v, dict) and v.get("signed_reply"):
                try:
                    sender, outcome, seq, epoch, f = self.check_reply(client, nonce, op_digest, v["signed_reply"])
                except PhalanxError as e:
                    errors.append(f"{name}: reply not counted: {e}")
                    continue
                agreeing = votes.setdefault((outcome, seq, epoch), set())
                agreeing.add(sender)
                if len(agreeing) > f and self._executable_in(epoch, created_ms):
                    return Accepted(outcome, seq, epoch, tuple(sorted(agreeing)))
            elif code is None:
                errors.append(f"{name}: {v}")
            else:
                message = v.get("error") if isinstance(v, dict) else v
                errors.append(f"{name}: HTTP {code}: {message}")
                if code == 400:
                    raise PhalanxError(f"refused: {message}")
        raise PhalanxError(f"no f+1 = {self.f + 1} matching signed replies; " + "; ".join(errors))

    def _executable_in(self, n: int, created_ms: int) -> bool:
        """Whether a request created at `created_ms` can have executed in epoch n, after asking
        whether a newer epoch exists: replies of an epoch that ended before the request existed
        come from members that no longer speak for the cluster."""
        if n == len(self.membership.epochs) - 1:
            try:
                self.learn_epochs(n + 1)
            except ValueError:
                pass
        return self.membership.may_have_executed_in(n, created_ms)

    def transfer(self, key, from_: str, to: str, amount: int) -> Accepted:
        return self.submit(key, wire.transfer(from_, to, amount))

    def memory_store(self, key, namespace: str, name: str, value: str, ttl_ms: int | None = None) -> Accepted:
        return self.submit(key, wire.memory_store(namespace, name, value, ttl_ms))

    def decision_open(self, key, id: str, question: str, options, voters, rule: str = "majority",
                      f: int | None = None, weighted: bool = False, deadline_ms: int = 600_000) -> Accepted:
        keys = [self.public_key(v) for v in voters]
        return self.submit(key, wire.decision_open(id, question, list(options), keys, rule, f, weighted, deadline_ms))

    def vote(self, key, id: str, *, option: str | None = None, result: str | None = None,
             abstain: bool = False, location: str = "", reason: str = "") -> Accepted:
        digest = blake3.blake3(result.encode()).digest() if result is not None else None
        return self.submit(key, wire.decision_vote(id, option_=option, result_digest=digest, location=location,
                                                   abstain=abstain, reason=reason))

    # Reads.

    def read_confirmed(self, path: str, key=lambda v: v, timeout: float | None = None) -> Confirmed:
        """GETs `path` from every agent; returns once f+1 voters sent answers with the same
        `key(answer)` (an error counts as an answer: a confirmed absence)."""
        deadline = time.monotonic() + (timeout or 10.0)
        while True:
            voters, f = self.current_voters()
            groups: dict = {}
            for i, r in enumerate(self.get_all(path)):
                if isinstance(r, Exception) or i not in voters:
                    continue
                code, v = r
                if not isinstance(v, dict):
                    continue
                k = json.dumps(v["error"] if "error" in v else key(v), sort_keys=True)
                groups.setdefault(k, []).append((i, v))
            for answers in groups.values():
                if len(answers) > f:
                    return Confirmed(answers[0][1], tuple(self.members[i]["name"] for i, _ in answers))
            if time.monotonic() >= deadline:
                raise PhalanxError(f"fewer than f+1 = {f + 1} agents agree on {path}")
            time.sleep(0.2)

    def memory_retrieve(self, namespace: str, name: str):
        """The value f+1 agents hold, or None when f+1 agree there is none."""
        path = f"/v1/memory/{urllib.parse.quote(namespace, safe='')}/{urllib.parse.quote(name, safe='')}"
        c = self.read_confirmed(path, key=lambda v: [v.get("value"), v.get("stored_seq")])
        return None if "error" in c.answer else c.answer["value"]

    def balance(self, account: str) -> int:
        def entry(v):
            return next((a for a in v.get("accounts", []) if a["name"] == account), None)

        c = self.read_confirmed("/v1/accounts", key=entry)
        found = entry(c.answer)
        if found is None:
            raise PhalanxError(f"no account {account!r}")
        return found["balance"]

    def decision(self, id: str) -> dict:
        """A decision's record as f+1 agents hold it (compared on its canonical encoding)."""
        def shown(v):  # the whole record must match, not one agent's rendering of it
            return {k: x for k, x in v.items() if k not in ("replica", "executed_seq", "proof")}

        c = self.read_confirmed(f"/v1/decisions/{urllib.parse.quote(id, safe='')}", key=shown)
        if "error" in c.answer:
            raise PhalanxError(c.answer["error"])
        record = dict(c.answer)
        record["confirmed_by"] = list(c.confirmed_by)
        return record
