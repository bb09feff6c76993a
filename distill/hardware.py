"""What this machine computes fast: bfloat16 on the CPU (AVX-512 BF16 or AMX) or on a CUDA GPU.

Usage:
    from distill.hardware import bf16_support, use_bf16
    support = bf16_support()          # Bf16Support(device="cpu", supported=True, reason="avx512_bf16")
    if use_bf16("auto"): ...          # "auto" follows bf16_support(); "true"/"false" force it

bf16 only pays where the hardware has bf16 instructions: with AVX-512 BF16 (Zen 4, Cooper Lake,
Sapphire Rapids) or AMX, oneDNN runs bf16 matmuls about twice as fast as fp32 (a LoRA step of
SmolLM2-135M: 10.8 s -> 4.9 s on this project's 2-core Zen 4). Without them PyTorch still
accepts bf16 but emulates it, and it runs slower than fp32: so ``auto`` looks at the CPU's own
instruction flags, not at whether PyTorch would accept the dtype.
"""

from __future__ import annotations

import functools
import logging
import platform
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Linux /proc/cpuinfo flags of the instructions that make CPU bf16 matmuls fast.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Bf16Support:
    """Whether bf16 is fast on the device training or generation runs on, and why (for the run record)."""

    device: str  # "cuda" or "cpu"
    supported: bool
    reason: str


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The instruction flags of the first CPU listed in ``/proc/cpuinfo`` (empty where it does not exist)."""
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM spelling
            return set(value.split())
    return set()


def cpu_bf16(flags: set[str] | None = None, capability: str | None = None) -> Bf16Support:
    """bf16 support of the CPU from its flags, else from PyTorch's detected capability (``AMX``...)."""
    flags = cpu_flags() if flags is None else flags
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if found:
        return Bf16Support("cpu", True, found[0])
    if not flags:  # no /proc/cpuinfo (macOS, some containers): ask PyTorch what it dispatches to
        capability = capability if capability is not None else _torch_capability()
        if "AMX" in capability.upper():
            return Bf16Support("cpu", True, f"torch capability {capability}")
        return Bf16Support("cpu", False, f"no CPU flags readable; torch capability {capability or 'unknown'}")
    return Bf16Support("cpu", False, f"{platform.machine() or 'CPU'} without {' or '.join(BF16_CPU_FLAGS)}")


def _torch_capability() -> str:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # an old torch without the query: treat as unknown
        return ""


@functools.lru_cache(maxsize=None)
def bf16_support() -> Bf16Support:
    """bf16 support of the device this process computes on: the CUDA GPU if there is one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        ok = torch.cuda.is_bf16_supported()
        return Bf16Support("cuda", ok, torch.cuda.get_device_name() + ("" if ok else " (no bf16)"))
    support = cpu_bf16()
    if support.supported and not _onednn_bf16():
        return Bf16Support("cpu", False, f"{support.reason}, but this torch build has no oneDNN bf16")
    return support


def _onednn_bf16() -> bool:
    import torch

    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and (check() if check is not None else True))
    except Exception:  # the private query moved: trust the CPU flags
        return True


def use_bf16(setting: str | bool | None) -> bool:
    """Resolve a ``bf16: auto|true|false`` option: ``auto`` is on where :func:`bf16_support` says so."""
    text = str(setting).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", "none"):
        return False
    support = bf16_support()
    log.info("bf16 auto: %s on %s (%s)", "on" if support.supported else "off", support.device, support.reason)
    return support.supported
