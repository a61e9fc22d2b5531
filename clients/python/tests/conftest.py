"""A real Phalanx cluster for the Python tests: `phalanx init` and `phalanx up` in a temporary
folder, torn down after each test file. The binary is $PHALANX_BIN, else target/release/phalanx
of this repository (build it first: `cargo build --release`)."""

import os
import pathlib
import random
import shutil
import socket
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = os.environ.get("PHALANX_BIN", str(ROOT / "target" / "release" / "phalanx"))


def phalanx(*args, check=True):
    """Runs the phalanx binary; returns the completed process."""
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"phalanx {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def free_base(n):
    """A port range base..base+n and base+100..base+100+n that is free now."""
    for _ in range(500):
        base = random.randint(20_000, 31_000)
        ports = [base + i for i in range(n)] + [base + 100 + i for i in range(n)]
        try:
            socks = []
            for p in ports:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free port range")


class Cluster:
    def __init__(self, agents):
        self.dir = tempfile.mkdtemp(prefix="phalanx-py-")
        shutil.rmtree(self.dir)
        base = free_base(agents + 2)
        phalanx("init", "--agents", str(agents), "--dir", self.dir, "--base-port", str(base))
        phalanx("up", "--dir", self.dir)

    def down(self):
        phalanx("down", "--dir", self.dir, "--kill", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """A seven-agent cluster (f = 2), shared by the tests of one file (they quarantine agents)."""
    c = Cluster(7)
    yield c
    c.down()
