"""The table of torch fused kernels the HD fast paths use (hdrepro.optim.kernels): every CPU
entry in use steps like torch's single-tensor kernel, and the check can tell a wrong one."""
import pytest
import torch

from hdrepro.optim import _hypergrad as hg
from hdrepro.optim.kernels import FUSED, KernelCheck, measure

IN_USE_HERE = sorted((k for k, used in FUSED.items() if used and k[0] == "cpu"), key=str)


@pytest.mark.skipif(hg._torch_version() < (2, 4), reason="torch < 2.4 has no fused CPU kernels")
@pytest.mark.parametrize("device,dtype,kernel", IN_USE_HERE, ids=str)
def test_each_fused_cpu_kernel_in_use_steps_like_the_reference(device, dtype, kernel):
    check = measure(device, dtype, kernel)
    assert check.right, check


def test_the_check_tells_a_kernel_that_moves_too_little():
    assert not KernelCheck("cpu", torch.bfloat16, "sgd", 0.0053, 4.1).right
    assert not KernelCheck("cpu", torch.float32, "sgd", 1.0, 0.2).right   # other parameters
    assert KernelCheck("cpu", torch.bfloat16, "adam", 1.005, 1.6).right   # bfloat16 rounding


def test_half_precision_never_takes_a_fused_kernel_on_cpu():
    for (device, dtype, _), used in FUSED.items():
        if device == "cpu" and dtype in (torch.bfloat16, torch.float16):
            assert not used
