"""Run HDMBest beside its authors' implementation (a checkout of the public repository
udellgroup/osgm-best-hypergrad, given as the argument) on an ill-conditioned, L2-regularised
logistic regression, and print how far apart their loss values and final points are.

    python scripts/compare_hdm_reference.py PATH/TO/osgm-best-hypergrad [--iters 600]
        [--out results/full/hdm_reference.csv]

Both get the same f and ∇f, computed in the same floating-point order (numpy), so the numbers
differ only where the two implementations round differently. Writes both loss values at a few
iterations of each setting to --out (tests/test_hdm.py pins our trajectory to it), and exits 1 if
a loss value differs by more than 1e-9 relative.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

from hdrepro.optim import HDMBest


def problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((200, 20)) * np.logspace(0, 1.5, 20)
    b = np.sign(rng.standard_normal(200))

    def f(x):
        return float(np.mean(np.log1p(np.exp(-b * (A @ x)))) + 0.5e-3 * x @ x)

    def grad_f(x):
        s = -b / (1 + np.exp(b * (A @ x)))
        return A.T @ s / len(b) + 1e-3 * x
    return f, grad_f


def ours(f, grad_f, iters, **kw):
    x = torch.zeros(20, dtype=torch.float64, requires_grad=True)

    def closure():
        xn = x.detach().numpy()
        x.grad = torch.tensor(grad_f(xn))
        return torch.tensor(f(xn), dtype=torch.float64)
    opt = HDMBest([x], max_iter=iters, **kw)
    return [opt.step(closure) for _ in range(iters)], x.detach().numpy()


def theirs(reference: Path, f, grad_f, iters, L, shape, convex):
    sys.path.insert(0, str(reference / "algorithms"))
    import algo_config as c
    from bench_algo import ALG_STATS_FUNCVALS, ALG_STATS_OPTIMAL_SOL
    from hdm import HyperGradientDescent
    params = dict(c.hdm_params)
    params.update({c.ALG_UNIVERSAL_PARAM_MAXITER: iters, c.ALG_UNIVERSAL_PARAM_TOL: 0.0,
                   c.ALG_HDM_NONCONVEX: not convex, c.ALG_HDM_LEARNING_RATE: -1,
                   c.ALG_HDM_BETA_LEARNING_RATE: 1.0,
                   c.ALG_HDM_BETA_VERSION: c.ALG_HDM_VERSION_SCALAR,
                   c.ALG_HDM_LR_VERSION: (c.ALG_HDM_VERSION_DIAG if shape == "diagonal"
                                          else c.ALG_HDM_VERSION_SCALAR),
                   c.ALG_UNIVERSAL_PARAM_L_EST: np.inf if L is None else L})
    stats = HyperGradientDescent(params).optimize(np.zeros(20), f, grad_f)
    return list(stats[ALG_STATS_FUNCVALS]), stats[ALG_STATS_OPTIMAL_SOL]


#: the settings compared: (convex, L, shape of P)
SETTINGS = [(convex, L, shape) for convex, L in ((False, None), (False, 4.0), (True, 4.0))
            for shape in ("diagonal", "scalar")]
#: the iterations whose loss values the results file keeps
KEPT = (1, 10, 50, 100, 200, 300, 400, 500, 599)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", type=Path, help="a checkout of udellgroup/osgm-best-hypergrad")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--out", type=Path, default=Path("results/full/hdm_reference.csv"))
    args = ap.parse_args(argv)
    if not (args.reference / "algorithms" / "hdm.py").exists():
        ap.error(f"{args.reference} has no algorithms/hdm.py: give a checkout of "
                 "udellgroup/osgm-best-hypergrad")
    f, grad_f = problem()
    worst, rows = 0.0, []
    for convex, L, shape in SETTINGS:
        mine, x_mine = ours(f, grad_f, args.iters, L=L, shape=shape, convex=convex)
        ref, x_ref = theirs(args.reference, f, grad_f, args.iters, L, shape, convex)
        # their list holds f before each iteration, ours f after it
        rel = max(abs(a - b) / abs(b) for a, b in zip(mine[:-1], ref[1:]))
        worst = max(worst, rel)
        print(f"convex={convex!s:5} L={L!s:4} P {shape:8}: max rel. diff of f over "
              f"{args.iters} iterations {rel:.1e}, max |x diff| at the end "
              f"{np.abs(x_mine - x_ref).max():.1e}")
        rows += [dict(convex=convex, L="" if L is None else L, shape=shape, iteration=k,
                      f_ours=repr(float(mine[k - 1])), f_reference=repr(float(ref[k])),
                      max_rel_diff=f"{rel:.3e}") for k in KEPT if k < args.iters]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 1 if worst > 1e-9 else 0


if __name__ == "__main__":
    sys.exit(main())
