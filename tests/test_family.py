"""The optimizer family (torch.optim by name), HD around each member, and the α₀-sensitivity
experiment's cells and summary."""
import pandas as pd
import pytest
import torch

from hdrepro.methods import family
from hdrepro.optim import HD
from hdrepro.studies.sensitivity import (HD_BETA, MODERN_RATE, SensitivitySpec, complete_seeds,
                                        lost_runs, pair_tuning, sgd_row, tuning, tuning_verdict,
                                        whole)
from hdrepro.methods.registry import OptimConfig, make_optimizer

NAMES = list(family.FAMILY)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _train(opt, model, steps=6):
    x, y = torch.randn(32, 6, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", NAMES)
def test_each_name_builds_its_torch_optim_class_and_variant(name):
    opt = make_optimizer(OptimConfig(name, 0.01, weight_decay=0.0), _model().parameters())
    cls, variant = family.FAMILY[name]
    assert type(opt) is getattr(torch.optim, cls)
    group = opt.param_groups[0]
    for key, value in variant.items():
        assert group[key] == (0.9 if value is None else value), (name, key)


@pytest.mark.parametrize("name", NAMES)
def test_hd_with_zero_beta_is_exactly_the_family_member(name):
    lr = 1.0 if name == "adadelta" else 2 ** -7   # exact in float32, where HD keeps α
    a, b = _model(), _model()
    plain = _train(make_optimizer(OptimConfig(name, lr), a.parameters()), a)
    hd = make_optimizer(OptimConfig(f"hd-{name}", lr, 0.0), b.parameters())
    assert isinstance(hd, HD)
    assert torch.equal(plain, _train(hd, b))


@pytest.mark.parametrize("name", NAMES)
def test_hd_moves_alpha_on_every_family_member(name):
    lr = 1.0 if name == "adadelta" else 0.01
    m = _model()
    opt = make_optimizer(OptimConfig(f"hd-{name}", lr, 1e-3), m.parameters())
    _train(opt, m)
    assert float(opt.param_groups[0]["lr"]) != lr


def test_optimizer_options_reach_the_torch_class():
    opt = make_optimizer(OptimConfig("adam", 1e-3, options=(("eps", 1e-3),)),
                         _model().parameters())
    assert opt.param_groups[0]["eps"] == 1e-3
    with pytest.raises(TypeError):
        make_optimizer(OptimConfig("adam", 1e-3, options=(("nonsense", 1),)),
                       _model().parameters())
    with pytest.raises(ValueError, match="options="):
        make_optimizer(OptimConfig("sgd-hd", 1e-3, options=(("eps", 1),)), _model().parameters())


def test_unknown_family_name_lists_the_family():
    with pytest.raises(ValueError, match="adadelta"):
        family.build("adamx", _model().parameters(), 0.1)


def test_sensitivity_cells_pair_each_base_with_its_hd_at_the_kinds_beta():
    spec = SensitivitySpec(models=("logreg",), optimizers=("sgd", "adam"), alphas=(1e-3, 1e-1),
                           epochs={"logreg": 1}, modern=())
    cells = spec.cells()
    assert len(cells) == 2 * 2 * 2
    by = {(c.optim.name, c.optim.lr): c for c in cells}
    assert by[("hd-sgd", 1e-3)].optim.hypergrad_lr == HD_BETA["sgd"] == 1e-3
    assert by[("hd-adam", 1e-1)].optim.hypergrad_lr == HD_BETA["adam"] == 1e-7
    assert by[("sgd", 1e-1)].optim.hypergrad_lr == 0.0
    with pytest.raises(ValueError, match="adamx"):
        SensitivitySpec(optimizers=("adamx",))


def test_the_newer_methods_join_sgds_row_at_their_one_rate():
    spec = SensitivitySpec(models=("logreg",), optimizers=("sgd", "adam"), alphas=(1e-3, 1e-1),
                           epochs={"logreg": 1}, modern_alphas=(1e-2,))
    new = [c for c in spec.cells() if dict(c.tags)["variant"] in MODERN_RATE]
    assert sorted((c.optim.name, c.optim.lr, c.optim.hypergrad_lr) for c in new) == [
        ("hdm", 1e-2, MODERN_RATE["hdm"]), ("marthe", 1e-2, MODERN_RATE["marthe"])]
    assert all(dict(c.tags)["family"] == "sgd" for c in new)
    assert not [c for c in SensitivitySpec(optimizers=("adam",)).cells()
                if dict(c.tags)["variant"] in MODERN_RATE]   # no SGD row, no newer methods
    with pytest.raises(ValueError, match="newer methods"):
        SensitivitySpec(modern=("prodigy",))


def test_a_newer_method_is_counted_against_the_mark_it_does_not_move():
    rows = [{"model": "m", "family": "sgd", "variant": variant, "alpha0": a, "train_loss": v,
             "val_loss": v, "diverged": False, "seed": 1}
            for variant, a, v in (("base", 1e-3, 0.30), ("hd", 1e-3, 0.40), ("hdm", 1e-3, 0.10),
                                  ("hdm", 1e-2, 0.32))]
    t = tuning(pd.DataFrame(rows)).iloc[0]
    assert (t.base_near, t.hd_near, t.hdm_near) == (1, 0, 2)   # the mark stays SGD's 0.30
    assert t.hdm_best == 0.10


def test_sgd_row_compares_every_variant_at_the_alphas_the_newer_methods_ran():
    rows = [{"model": "m", "family": "sgd", "variant": variant, "alpha0": a, "val_loss": v,
             "diverged": v != v, "test_error": e, "seed": 1}
            for variant, a, v, e in (
                ("base", 1e-3, 0.30, 0.1), ("base", 3e-3, 0.50, 0.1), ("base", 1e-2, 0.32, 0.1),
                ("hd", 1e-3, 0.31, 0.1), ("hd", 3e-3, 0.60, 0.1),
                ("hd", 1e-2, float("nan"), float("nan")),
                ("hdm", 1e-3, 0.20, 0.1), ("hdm", 1e-2, 0.34, 0.9),     # stuck: lost
                ("marthe", 1e-3, 0.40, 0.1), ("marthe", 1e-2, 0.33, 0.1))]
    got = sgd_row(pd.DataFrame(rows)).set_index("variant")
    assert got.loc["base"].tolist() == ["m", 2, 2, 0]      # 3e-3 is not a common α₀
    assert got.loc["hd"].tolist() == ["m", 2, 1, 1]
    assert got.loc["hdm"].tolist() == ["m", 2, 1, 1]
    assert got.loc["marthe"].tolist() == ["m", 2, 1, 0]   # 0.33 ≤ 1.1 × 0.30, 0.40 is not
    assert sgd_row(pd.DataFrame(rows[:6])).empty
    # a seed whose SGD-HD sweep is not whole yet is left out, newer methods and all
    assert sgd_row(pd.DataFrame([r for r in rows if r["alpha0"] != 3e-3 or r["variant"] != "hd"])
                   ).empty
    # so is a seed whose MARTHE sweep is not: a second seed, MARTHE one α₀ short
    seed2 = [{**r, "seed": 2} for r in rows if r["variant"] != "marthe" or r["alpha0"] == 1e-3]
    got = sgd_row(pd.DataFrame(rows + seed2)).set_index("variant")
    assert got.runs.tolist() == [2, 2, 2, 2]


def test_whole_keeps_a_seed_only_where_every_variant_swept_all_its_alphas():
    def runs(family, variant, alphas, seed):
        return [{"model": "m", "family": family, "variant": variant, "alpha0": a, "seed": seed}
                for a in alphas]
    rows = (runs("sgd", "base", (1e-3, 1e-2), 1) + runs("sgd", "hd", (1e-3, 1e-2), 1)
            + runs("sgd", "marthe", (1e-3, 1e-2), 1)
            + runs("sgd", "base", (1e-3, 1e-2), 2) + runs("sgd", "hd", (1e-3, 1e-2), 2)
            + runs("sgd", "marthe", (1e-3,), 2)                   # MARTHE part-swept
            + runs("adam", "base", (1e-3, 1e-2), 2) + runs("adam", "hd", (1e-3,), 2)
            + runs("adam", "base", (1e-3, 1e-2), 3) + runs("adam", "hd", (1e-3, 1e-2), 3))
    kept = whole(pd.DataFrame(rows))
    assert sorted({(r.family, r.seed) for r in kept.itertuples()}) == [("adam", 3), ("sgd", 1)]


def test_tuning_counts_the_alphas_near_the_best_of_either_variant():
    rows = []
    for variant, losses in (("base", [0.50, 0.30, 2.0]), ("hd", [0.32, 0.31, float("nan")])):
        for a, v in zip((1e-3, 1e-2, 1e-1), losses):
            rows.append({"model": "m", "family": "sgd", "variant": variant, "alpha0": a,
                         "train_loss": v, "val_loss": v, "diverged": v != v, "seed": 1})
    t = tuning(pd.DataFrame(rows)).iloc[0]
    assert (t.base_near, t.hd_near) == (1, 2)   # within 10% of 0.30
    assert t.base_best == 0.30 and t.hd_best == 0.31
    assert t.hd_median == 0.32                  # the diverged α₀ counts as worst


def _sweeps(widths: dict) -> pd.DataFrame:
    """Runs of pairs ("m", name) over 4 α₀ whose per-seed near-best counts are given as
    {name: [(base count, HD count), ...] per seed}: the best run has loss 1.0, near ones 1.05,
    the rest 2.0."""
    rows = []
    for name, seeds in widths.items():
        for seed, counts in enumerate(seeds, 1):
            for variant, k in zip(("base", "hd"), counts):
                for i, a in enumerate((1e-4, 1e-3, 1e-2, 1e-1)):
                    v = (1.0 if i == 0 else 1.05) if i < k else 2.0
                    rows.append({"model": "m", "family": name, "variant": variant, "alpha0": a,
                                 "train_loss": v, "val_loss": v, "diverged": False,
                                 "seed": seed})
    return pd.DataFrame(rows)


def test_pair_tuning_pairs_by_seed_and_calls_a_difference_inside_the_noise_a_tie():
    f = _sweeps({"sgd": [(1, 3), (2, 4), (1, 3)],        # +2, +2, +2: wider
                 "adam": [(3, 1), (4, 2), (3, 2)],       # −2, −2, −1: narrower
                 "nadam": [(1, 3), (2, 1), (2, 3)],      # +2, −1, +1: inside the noise
                 "radam": [(1, 2)]})                     # one seed: no spread, not judged
    p = pair_tuning(f).set_index("family")
    assert p.outcome.to_dict() == {"sgd": "wider", "adam": "narrower", "nadam": "tie",
                                   "radam": "one seed"}
    assert p.seeds.to_dict() == {"sgd": 3, "adam": 3, "nadam": 3, "radam": 1}
    assert p.loc["sgd", "near"].estimate == 2 and p.loc["nadam", "near"].contains(0)


def test_a_part_swept_seed_is_left_out_until_its_sweep_is_whole():
    f = _sweeps({"sgd": [(1, 3), (1, 3), (1, 3)]})
    cut = f[~((f.seed == 3) & (f.variant == "hd") & (f.alpha0 == 1e-1))]
    assert sorted(complete_seeds(cut).seed.unique()) == [1, 2]
    assert pair_tuning(cut).iloc[0].seeds == 2


# three seeds each: +2 on every seed is beyond a count's rounding at n = 3, not at n = 2
WIDER, NARROWER = [(1, 3), (2, 4), (1, 3)], [(3, 1), (4, 2), (3, 1)]
TIE = [(1, 3), (3, 1)]


@pytest.mark.parametrize("kinds, verdict", [
    ([WIDER] * 5, "reproduces"),                       # 5 of 5: Wilson's interval above 1/2
    ([NARROWER] * 3 + [TIE] * 2, "does not reproduce"),  # ties count as not wider
    ([WIDER] * 3 + [TIE] * 3, "partly"),
    ([[(1, 3)]] * 5, "not tested"),                     # one seed each: nothing judged
])
def test_the_tuning_verdict_can_return_every_outcome(kinds, verdict):
    pairs = pair_tuning(_sweeps({f"o{i}": seeds for i, seeds in enumerate(kinds)}))
    assert tuning_verdict(pairs)[0] == verdict


def test_claim_4_is_judged_on_the_pairs_with_seeds_and_says_which_wait(tmp_path):
    from hdrepro.engine.results import GridStore
    from hdrepro.report.claims import _tuning
    full = tmp_path / "results" / "full"
    full.mkdir(parents=True)
    f = _sweeps({f"o{i}": [(1, 3)] * 3 for i in range(5)} | {"late": [(1, 3)]})
    GridStore(full / "family_sensitivity.jsonl").append(
        [{**r, "cell_id": f"{r['family']}-{r['variant']}-{r['alpha0']}-{r['seed']}"}
         for r in f.to_dict("records")])
    claim = _tuning(tmp_path / "results" / "quick")[0]
    assert claim.verdict == "reproduces" and claim.n == "5 pairs × 3 seeds"
    assert "5 wider, 0 tie, 0 narrower of 5" in claim.evidence
    assert "; 1 pair with one seed so far not judged" in claim.evidence
    one = _sweeps({"o": [(1, 3)]})
    (full / "family_sensitivity.jsonl").unlink()
    GridStore(full / "family_sensitivity.jsonl").append(
        [{**r, "cell_id": f"{r['variant']}-{r['alpha0']}"} for r in one.to_dict("records")])
    claim = _tuning(tmp_path / "results" / "quick")[0]
    assert claim.verdict == "not tested" and "no change" in claim.evidence


def test_lost_runs_count_diverged_and_stuck_runs_per_kind_and_variant():
    rows = [{"model": "m", "family": name, "variant": variant, "diverged": diverged,
             "test_error": error}
            for name, variant, diverged, error in (
                ("sgd", "base", False, 0.05), ("nesterov", "hd", True, float("nan")),
                ("sgd", "hd", False, 0.90), ("adam", "base", False, 0.86),
                ("adam", "hd", False, 0.84), ("radam", "hd", True, 0.90))]
    lost = lost_runs(pd.DataFrame(rows)).set_index(["kind", "variant"])
    assert lost.loc[("non-adaptive", "base")].tolist() == ["m", 1, 0, 0]
    assert lost.loc[("non-adaptive", "hd")].tolist() == ["m", 2, 1, 1]
    assert lost.loc[("adaptive", "base")].tolist() == ["m", 1, 0, 1]
    assert lost.loc[("adaptive", "hd")].tolist() == ["m", 2, 1, 0]  # diverged is not also stuck
