"""Shared timing code for the benchmarks (not a test; nothing here asserts).

Every benchmark times several implementations *side by side in one process*:
each round runs every implementation once, in a shuffled order, so a load
spike on a shared machine hits all of them alike.  We report each
implementation's median time and its spread (25th-75th percentile), and
ratios as the median of the per-round ratios (paired measurements), with
their 25th-75th percentile.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine() -> dict:
    """Device, CPU model, core count, library versions and load, for the results file."""
    import jax

    info = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "platform": jax.default_backend(),
    }
    try:
        import jaxlib

        info["jaxlib"] = jaxlib.__version__
    except Exception:  # pragma: no cover
        pass
    for mod in ("optax", "torch", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = "not installed"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L3 cache"):
                info[key.strip()] = value.strip()
    except FileNotFoundError:  # pragma: no cover
        info["cpu"] = platform.processor()
    if os.environ.get("XLA_FLAGS"):
        info["XLA_FLAGS"] = os.environ["XLA_FLAGS"]
    if jax.default_backend() != "cpu":
        info["accelerator"] = jax.devices()[0].device_kind
    try:
        info["loadavg (1, 5, 15 min) at start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    return info


def block(tree):
    import jax

    jax.block_until_ready(tree)


def interleaved(runners: dict, rounds: int, warmup: int = 2, seed: int = 0) -> dict:
    """Time ``runners`` (name -> zero-argument callable doing one blocking step).

    Returns name -> array of per-round seconds.
    """
    rng = random.Random(seed)
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    times = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return {name: np.asarray(t) for name, t in times.items()}


def summary(times: np.ndarray) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile)."""
    q25, q50, q75 = np.percentile(times, [25, 50, 75])
    return float(q50), float(q25), float(q75)


def paired_ratio(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Median and 25th-75th percentile of a_i / b_i over rounds."""
    return summary(a / b)


def fmt_ratio(r) -> str:
    if r is None:
        return "-"
    med, lo, hi = r
    digits = 2 if med >= 0.1 else 4
    return f"{med:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def fmt_ms(t) -> str:
    med, lo, hi = summary(t)
    return f"{med * 1e3:.2f} [{lo * 1e3:.2f}-{hi * 1e3:.2f}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_markdown(info: dict) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in info.items())


def write_result(path: str | None, text: str) -> None:
    print(text)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"\nwritten to {path}")
