"""hdrepro.engine.models: shapes and the papers' architectures."""
import pytest
import torch

from hdrepro.engine import models as M

SHAPES = [("logreg", (2, 1, 28, 28), 7850), ("mlnn", (2, 1, 28, 28), 1796010),
          ("bettercnn", (2, 1, 28, 28), None), ("tanh-mlp", (2, 1, 28, 28), 101770),
          ("tanh-mlp-no-output-tanh", (2, 1, 28, 28), 101770), ("clip-cnn", (2, 3, 32, 32), None),
          ("clip-cnn-28", (2, 1, 28, 28), 160 + 2320 + 16 * 24 * 24 * 128 + 128 + 1290),
          ("vgg16bn-narrow", (2, 3, 32, 32), None)]


@pytest.mark.parametrize("name,shape,n_params", SHAPES, ids=[s[0] for s in SHAPES])
def test_models_map_images_to_ten_logits(name, shape, n_params):
    model = M.build(name)
    assert model(torch.randn(shape)).shape == (2, 10)
    if n_params is not None:
        assert sum(p.numel() for p in model.parameters()) == n_params


def test_bettercnn_is_the_reports_network():
    convs = [m for m in M.BetterCNN() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in M.BetterCNN() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 30, (5, 5)),
                                                                              (30, 15, (3, 3))]
    assert [(l.in_features, l.out_features) for l in linears] == [(375, 128), (128, 50), (50, 10)]


def test_bettercnn_dropout_is_off_at_evaluation():
    model = M.BetterCNN().eval()
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    assert not torch.equal(a, model(x))


def test_output_tanh_bounds_the_logits():
    out = M.TanhMLP(output_tanh=True)(torch.randn(64, 1, 28, 28) * 100)
    assert out.abs().max() <= 1


def test_vgg16bn_full_width_has_thirteen_convs_with_batch_norm():
    model = M.VGG16BN()
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in model) == 13
    assert convs[-1].out_channels == 512


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose one of logreg, mlnn"):
        M.build("resnet50")
