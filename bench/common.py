"""What every benchmark script shares: its command line, device synchronisation, the device's
name for the CSV, and writing the rows."""
from __future__ import annotations

import argparse
import csv
import platform
from pathlib import Path

import torch

from hdrepro.cli_help import PROFILE_HELP, HelpFormatter


def parser(doc: str, profiles, out_help: str = "folder for the benchmark's CSV"
           ) -> argparse.ArgumentParser:
    """--profile, --out and --device, which every benchmark takes."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--profile", choices=sorted(profiles), default="quick", help=PROFILE_HELP)
    ap.add_argument("--out", type=Path, default=Path("results/quick"), help=out_help)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda, cuda:1, … (CUDA where this machine has it)")
    return ap


def sync(device) -> None:
    """Wait for the device's queued work, so that wall-clock timings include it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_rows(path: Path, rows: list[dict]) -> None:
    """The rows as a CSV; its columns are every row's keys in the order they first appear (a
    row without one leaves its cell empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
