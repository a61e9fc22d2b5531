"""Plain numpy expressions of the rules, at the size `cargo bench --bench rules` uses, so the
Rust figures can be set beside them on the same machine:

    python3 crates/aggregate/benches/numpy_rules.py [d]

n = 100 vectors of d (default 1,000,000) float64. Each figure is the best of three runs.
numpy's matrix product runs on its bundled BLAS (multithreaded, fused multiply-add, order
not fixed), so the Gram-based rows are a bound on speed, not on reproducibility.
"""

import sys
import time

import numpy as np

N, F = 100, 10
D = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
X = np.random.default_rng(1).random((N, D)) - 0.5


def best(fn, runs=3):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def dist2():
    sq = np.einsum("ij,ij->i", X, X)
    g = X @ X.T
    return sq[:, None] + sq[None, :] - 2 * g


def krum():
    d = dist2()
    scores = np.sort(d, axis=1)[:, 1 : N - F - 1].sum(axis=1)
    return X[np.argmin(scores)]


def multikrum():
    d = dist2()
    scores = np.sort(d, axis=1)[:, 1 : N - F - 1].sum(axis=1)
    return X[np.argsort(scores)[: N - F]].mean(axis=0)


def geomed(iterations=100, tol=1e-8, nu=1e-6):
    z = np.median(X, axis=0)
    for _ in range(iterations):
        beta = 1 / np.maximum(nu, np.linalg.norm(X - z, axis=1))
        nxt = (beta[:, None] * X).sum(axis=0) / beta.sum()
        moved = np.linalg.norm(nxt - z)
        z = nxt
        if moved <= tol * max(1.0, np.linalg.norm(z)):
            break
    return z


def meamed():
    med = np.median(X, axis=0)
    idx = np.argsort(np.abs(X - med), axis=0)[: N - F]
    return np.take_along_axis(X, idx, axis=0).mean(axis=0)


def monna():
    d = np.linalg.norm(X - X[0], axis=1)
    return X[np.argsort(d)[: N - F]].mean(axis=0)


rows = [
    ("read the input once (np.sum)", lambda: X.sum()),
    ("average", lambda: X.mean(axis=0)),
    ("median", lambda: np.median(X, axis=0)),
    ("trmean f=10", lambda: np.sort(X, axis=0)[F : N - F].mean(axis=0)),
    ("meamed f=10", meamed),
    ("geomed", geomed),
    ("pairwise distances (BLAS Gram)", dist2),
    ("krum f=10", krum),
    ("multikrum f=10", multikrum),
    ("monna f=10", monna),
]
print(f"numpy {np.__version__}, n={N}, d={D}")
for name, fn in rows:
    print(f"{name:34} {best(fn) * 1000:9.1f} ms", flush=True)
