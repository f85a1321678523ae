"""Norm-based averaged clipping: the report's pseudo-code walked by hand."""
import pytest
import torch

from hdrepro.autodiff import clip_init, clip_step

pytestmark = pytest.mark.usefixtures("float64")


def _walk(norms, count_zero_first):
    state = clip_init(torch.zeros(()))
    out = []
    for n in norms:
        g, state, theta = clip_step(torch.tensor(n), state, count_zero_first)
        out += [float(g), float(theta), float(state["avg"])]
    return out


def test_pseudo_code_by_hand():
    # Norms 0 (the stack's first hypergradient), 4, 1, 10, counted as the report's code does.
    # t=1: θ1 = 0/1 = 0; factor 0/0 -> 1; g'=0; θ'1 = 0
    # t=2: θ2 = (0*1 + 4)/2 = 2; factor 2/4; g' = 2; θ'2 = (0 + 2)/2 = 1
    # t=3: θ3 = (1*2 + 1)/3 = 1; 1 <= 1, no clip; g' = 1; θ'3 = (2 + 1)/3 = 1
    # t=4: θ4 = (1*3 + 10)/4 = 3.25; factor 0.325; g' = 3.25; θ'4 = (3 + 3.25)/4 = 1.5625
    got = _walk([0.0, 4.0, 1.0, 10.0], count_zero_first=True)
    want = [0.0, 0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 3.25, 3.25, 1.5625]  # (g', θ, θ')
    assert got == pytest.approx(want, rel=1e-15)


def test_pseudo_code_skipping_the_zero_first_hypergradient():
    # t counts only non-zero norms: 4 -> θ=4, no clip; 1 -> θ=2.5; 10 -> θ=(2.5*2+10)/3=5,
    # clipped to 5, θ' = (2.5*2 + 5)/3 = 10/3
    got = _walk([0.0, 4.0, 1.0, 10.0], count_zero_first=False)
    want = [0.0, 0.0, 0.0, 4.0, 4.0, 4.0, 1.0, 2.5, 2.5, 5.0, 5.0, 10 / 3]
    assert got == pytest.approx(want, rel=1e-15)


def test_constant_norms_give_factor_one_half_when_the_zero_is_counted():
    """docs/report/setups.md: with the first zero counted, θ_t = c/2 for all t >= 2."""
    c = 3.0
    clipped = _walk([0.0] + [c] * 50, count_zero_first=True)[3::3]
    assert clipped == pytest.approx([c / 2] * 50, rel=1e-12)
    clipped = _walk([0.0] + [c] * 50, count_zero_first=False)[3::3]
    assert clipped == pytest.approx([c] * 50, rel=1e-12)


def test_clipped_norm_never_exceeds_the_threshold_and_sign_is_kept():
    gen = torch.Generator().manual_seed(0)
    state = clip_init(torch.zeros(()))
    for _ in range(200):
        g = torch.randn((), generator=gen) * 10 ** float(torch.randint(-3, 4, (), generator=gen))
        clipped, state, theta = clip_step(g, state)
        assert abs(float(clipped)) <= float(theta) * (1 + 1e-12) or abs(float(clipped)) == abs(float(g))
        assert torch.sign(clipped) == torch.sign(g) or float(g) == 0
