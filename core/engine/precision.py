"""Precision and device helpers: which precision "auto" means here, the device's peak FLOP/s
(for MFU), and freeing device memory after an out-of-memory error."""

from __future__ import annotations

# Dense bf16 tensor-core peaks, most specific name first (first match wins): "H100 PCIe" is not an
# SXM H100, "GH200" is not an H200.
PEAK_FLOPS = {"GH200": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12,
              "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
              "4090": 165e12, "3090": 71e12, "V100": 125e12, "T4": 65e12}


def resolve_precision(precision: str) -> str:
    import torch

    if precision == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


def cpu_has_bf16() -> bool:
    """A CPU with bf16 matrix instructions (AVX512-BF16 or AMX): autocast to bf16 pays there."""
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # pragma: no cover - private API; absent or failing means no
            pass
    return False


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, val in PEAK_FLOPS.items():
        if key in name:
            return val
    return None


def free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
