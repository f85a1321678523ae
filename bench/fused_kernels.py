"""Print which of torch's fused optimizer kernels step like its single-tensor kernels, per
device and dtype, beside the table the HD optimizers follow (hdrepro.optim.kernels.FUSED).

    python bench/fused_kernels.py [--csv results/fused_kernels.csv]

A row marked "MISMATCH" is a kernel the table uses that measured wrong, or one it avoids that
measured right (then the table may be widened, after a check of the HD tests on that device).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from hdrepro.optim.kernels import FUSED, measure

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def rows():
    for device in devices():
        for dtype in DTYPES:
            for kernel in ("sgd", "adam"):
                used = FUSED.get((device, dtype, kernel), False)
                try:
                    check = measure(device, dtype, kernel)
                except RuntimeError as err:   # a fused kernel torch does not have
                    yield dict(device=device, dtype=str(dtype)[6:], kernel=kernel, used=used,
                               move_ratio="", max_diff="", right=False,
                               note=str(err).splitlines()[0][:60])
                    continue
                yield dict(device=device, dtype=str(dtype)[6:], kernel=kernel, used=used,
                           move_ratio=f"{check.move_ratio:.4f}", max_diff=f"{check.max_diff:.2e}",
                           right=check.right, note="" if used == check.right or not used
                           else "MISMATCH")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    table = list(rows())
    print(f"torch {torch.__version__}")
    print(f"{'device':6} {'dtype':9} {'kernel':6} {'used':5} {'move':>8} {'max diff':>9}  right")
    for r in table:
        print(f"{r['device']:6} {r['dtype']:9} {r['kernel']:6} {r['used']!s:5} "
              f"{r['move_ratio']:>8} {r['max_diff']:>9}  {r['right']!s:5} {r['note']}")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return 1 if any(r["note"] == "MISMATCH" for r in table) else 0


if __name__ == "__main__":
    sys.exit(main())
