"""Dtypes: the HD optimizers take float32 and float64 and refuse half precision with a one-line
error that names the fix (mixed precision through torch.autocast, which they support)."""
import pytest
import torch
from torch import nn

from hdrepro.optim import HD, AdamHD, SGDHD


def _mlp(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 2)).to(dtype)


MAKERS = {
    "SGDHD": lambda ps: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, hypergrad_lr=1e-3),
    "AdamHD": lambda ps: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-7),
    "HD(AdamW)": lambda ps: HD(torch.optim.AdamW(ps, lr=1e-3), hypergrad_lr=1e-7),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_parameters_are_refused_naming_autocast(name, dtype):
    with pytest.raises(ValueError, match=f"not {str(dtype)[6:]}.*autocast"):
        MAKERS[name](list(_mlp(dtype).parameters()))


@pytest.mark.parametrize("name", ["SGDHD", "AdamHD"])   # HD checks its wrapped groups when built
def test_a_half_precision_group_added_later_is_refused_too(name):
    opt = MAKERS[name](list(_mlp().parameters()))
    with pytest.raises(ValueError, match="bfloat16"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))]})


def _run(name, autocast: bool, steps=30):
    model = _mlp()
    opt = MAKERS[name](list(model.parameters()))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 20, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return float(loss.detach()), float(opt.param_groups[0]["lr"])


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mixed_precision_under_autocast_learns_alpha_like_float32(name):
    loss32, alpha32 = _run(name, autocast=False)
    loss16, alpha16 = _run(name, autocast=True)
    start = 1e-2 if name == "SGDHD" else 1e-3
    assert alpha32 != start and alpha16 != start          # HD moved α in both
    assert alpha16 == pytest.approx(alpha32, rel=0.05)    # bfloat16 matmuls: a few % apart
    assert loss16 == pytest.approx(loss32, rel=0.05, abs=0.02)
