"""A Python client for Phalanx clusters.

    from phalanx_client import Cluster
    c = Cluster("./cluster")
    alice = c.key("alice")
    print(c.transfer(alice, "alice", "bob", 10))   # Accepted(outcome='applied', seq=…, …)

Requests are signed with the signer's Ed25519 key (the PKCS#8 files `phalanx init` writes);
a result is accepted only on f+1 matching replies from voters, each signature verified here.
"""

from .client import Accepted, Cluster, Confirmed, PhalanxError, load_key, public_bytes, verify
from . import wire

__all__ = ["Accepted", "Cluster", "Confirmed", "PhalanxError", "load_key", "public_bytes", "verify", "wire"]
