"""CAF as published (Allouah, Guerraoui, Stephan, ICML 2025), computed independently of the Rust
code: in d-space, with the d×d weighted covariance and numpy's symmetric eigensolver. Prints
the expected outputs that crates/aggregate/tests/caf_reference.rs checks.

    python3 crates/aggregate/tests/reference/caf.py      # needs numpy

The one choice the paper's pseudo-code leaves open, max τ, is taken over the vectors that still
have weight (see crates/aggregate/src/rules/spectral.rs for why)."""

import numpy as np


def caf(x, f):
    x = np.asarray(x, dtype=float)
    n = len(x)
    c = np.ones(n)
    best = None
    for _ in range(n):
        if c.sum() <= n - 2 * f:
            break
        mu = (c[:, None] * x).sum(axis=0) / c.sum()
        diffs = x - mu
        cov = (c[:, None, None] * np.einsum("ij,ik->ijk", diffs, diffs)).sum(axis=0) / c.sum()
        values, vectors = np.linalg.eigh(cov)
        lam, v = max(values[-1], 0.0), vectors[:, -1]
        if best is None or lam < best[0]:
            best = (lam, mu, c > 0)
        if lam == 0.0:
            break
        tau = (diffs @ v) ** 2
        live = c > 0
        tau_max = tau[live].max()
        c = np.where(live & (tau >= tau_max), 0.0, np.maximum(c * (1 - tau / tau_max), 0.0))
    if best is None:
        return x.mean(axis=0), list(range(n))
    return best[1], [i for i in range(n) if best[2][i]]


CASES = {
    # Four points at ±1 on x and one at 100: the second iterate (the outlier gone, the rest
    # slightly uneven) has the smallest eigenvalue; the third would have dropped the −1 points.
    "outlier_on_a_line": ([[-1, 0], [1, 0], [-1, 0], [1, 0], [100, 0]], 1),
    # Seven points in 3-d, two of them Byzantine and pulled the same way.
    "two_colluders": (
        [[0.5, -1.0, 2.0], [1.5, 0.0, 1.0], [1.0, -0.5, 1.5], [0.0, -1.5, 2.5], [1.0, 0.5, 2.0],
         [9.0, 9.0, -9.0], [8.0, 10.0, -8.0]],
        2,
    ),
    # Nine points in 4-d, two far apart in different directions.
    "two_directions": (
        [[1, 2, 0, -1], [2, 1, 1, 0], [0, 2, 1, -1], [1, 1, 0, 0], [2, 2, 1, -1], [1, 0, 1, 0],
         [0, 1, 0, -2], [40, 0, 0, 0], [0, 0, -40, 30]],
        2,
    ),
}

if __name__ == "__main__":
    for name, (x, f) in CASES.items():
        mu, kept = caf(x, f)
        print(f"{name}: f={f} kept={kept} mean=[{', '.join(repr(float(v)) for v in mu)}]")
