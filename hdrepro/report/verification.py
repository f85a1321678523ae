"""REPORT.md's verification parts: where each equation lives in the code, the analytic ≡ autodiff
table and the finite-difference table (from experiments/equivalence.py's results)."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

from .format import md_table, read_csv, sci

#: the folder that holds the package: code locations are given relative to it, so they read
#: ``hdrepro/optim/sgdhd.py:NN`` in a checkout and in an installed wheel alike
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent


def code_location(obj) -> str:
    obj = inspect.unwrap(obj)  # see through decorators such as torch.no_grad
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(PACKAGE_PARENT)
    line = inspect.getsourcelines(obj)[1]
    return f"[`{path}:{line}`]({path}#L{line}) `{obj.__qualname__}`"


def equations_table(_: Path) -> str:
    from ..autodiff import clip, levels, stack
    from ..optim import _hypergrad as hg
    from ..optim import adam_directions, hd, hdm, marthe, sgdhd
    rows = [
        ("h_t = ∇f(θ_{t-1})·∇_α u_{t-1} = −g_t·d_{t-1}", "Baydin et al. Eq. (hypergradient)",
         sgdhd.SGDHD._group_step),
        ("α_t = α_{t-1} − β_t h_t (additive)", "Baydin et al. Alg. 1-3", hg.lr_rule),
        ("α_t = α_{t-1}(1 − β_t h_t/(‖g_t‖‖∇_α u_{t-1}‖)) (multiplicative)",
         "Baydin et al., multiplicative rule", hg.lr_rule),
        ("β_t = β_{t-1} − γ h_t ∂α_{t-1}/∂β = β_{t-1} + γ h_t h_{t-1}",
         "reproducibility report §5 (sign corrected)", hg.lr_rule),
        ("SGD / SGDN direction d_t, θ_t = θ_{t-1} − α_t d_t", "Baydin et al. Alg. 1-2",
         sgdhd.SGDHD),
        ("Adam-HD: d_{t-1} = m̂_{t-1}/(√v̂_{t-1}+ε)", "Baydin et al. Alg. 3",
         adam_directions.torch_hypergradient),
        ("∇_α u_{t-1} = Δθ_{t-1}/α_{t-1} for any linear-in-α optimizer", "Baydin et al. §2",
         hd.HD.step),
        ("∂f(θ_{t-1})/∂α_{t-1} by reverse mode through one step", "Chandra et al. §3",
         stack.HyperStack._hypergradients),
        ("p_t = p_{t-1}.detach() − α·f(g.detach()) (one level)", "Chandra et al. §3",
         levels.SGD.update),
        ("θ_t = ((t−1)θ'_{t−1} + ‖g_t‖)/t, g'_t = g_t min(1, θ_t/‖g_t‖)",
         "clipping report §3", clip.clip_step),
        ("Z_t = μ(Z_{t−1} − α_t H_t Z_{t−1}) − g_t, h_t = ∇E(θ_{t−1})·Z_{t−1} (μ = 1: RTHO)",
         "Donini et al. 2020; Franceschi et al. 2017", marthe.MARTHE.step),
        ("r_k = −g_{k+1}⊙g_k/‖g_k‖², m_k = g_{k+1}·(x_k − x_{k−1})/‖g_k‖² (HDM)",
         "Chu et al. 2025", hdm.hypergradients),
        ("P_{k+1} = P_k − η r_k/(√G_k + 10⁻¹²), G_k = G_{k−1} + r_k² (AdaGrad on P and β)",
         "Chu et al. 2025", hdm.adagrad),
    ]
    return md_table(["equation (paper symbols)", "source", "code"],
                    [[f"{eq}", src, code_location(obj)] for eq, src, obj in rows])


def equivalence_table(results: Path) -> str:
    rows = _equivalence_rows(results)
    if not rows:
        return "_No equivalence results in this results folder: run experiments/equivalence.py._"
    body = [[r["case"], r["model"], r["steps"], sci(r["alpha_rel_err"]), sci(r["params_rel_err"]),
             sci(r["beta_rel_err"]), f"{float(r['alpha_0']):g} → {float(r['alpha_T']):.4g}"]
            for r in rows]
    text = (md_table(["analytic optimizer vs autodiff stack", "model", "steps", "α rel. err",
                      "θ rel. err", "β rel. err", "α₀ → α_T"], body)
            + f"\n\nLargest relative difference over all rows: **{sci(_worst(rows))}** "
              "(tests require ≤ 1e-10 after 25 steps).")
    return text


def _equivalence_rows(results: Path) -> list[dict]:
    return [r for r in read_csv(results / "equivalence.csv") if r["check"] == "analytic vs autodiff"]


def _worst(rows: list[dict]) -> float:
    return max(max(float(r["alpha_rel_err"]), float(r["params_rel_err"]),
                   0.0 if math.isnan(float(r["beta_rel_err"])) else float(r["beta_rel_err"]))
               for r in rows)


def fd_table(results: Path) -> str:
    rows = [r for r in read_csv(results / "equivalence.csv")
            if r["check"] == "analytic vs finite difference"]
    if not rows:
        return "_No finite-difference results in this results folder._"
    body = [[r["case"], r["model"], f"{float(r['h_analytic']):.8g}", f"{float(r['h_fd']):.8g}",
             sci(r["h_rel_err"])] for r in rows]
    worst = max(float(r["h_rel_err"]) for r in rows)
    return (md_table(["optimizer", "model", "analytic h", "central difference", "rel. err"], body)
            + f"\n\nLargest relative error: **{sci(worst)}** (tests require ≤ 1e-6).")




def summary(results: Path) -> str:
    """Both checks in one sentence: comparisons, steps and the largest difference of each."""
    rows = _equivalence_rows(results)
    fd = [r for r in read_csv(results / "equivalence.csv")
          if r["check"] == "analytic vs finite difference"]
    if not rows:
        return "_No equivalence results in this results folder: run experiments/equivalence.py._"
    text = (f"Over {len(rows)} comparisons of an analytic optimizer with its autodiff stack, "
            f"{rows[0]['steps']} steps each in float64, α, θ and β agree to a relative "
            f"difference of at most **{sci(_worst(rows))}**")
    if fd:
        worst = max(float(r["h_rel_err"]) for r in fd)
        text += (f"; over {len(fd)} checks of the hypergradient h_t against a central finite "
                 f"difference, the largest relative error is **{sci(worst)}**")
    return text + "."
