"""What every benchmark script shares: device synchronisation, the device's name for the CSV,
and writing the rows."""
from __future__ import annotations

import csv
import platform
from pathlib import Path

import torch


def sync(device) -> None:
    """Wait for the device's queued work, so that wall-clock timings include it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
