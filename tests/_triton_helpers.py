"""Running berry's Triton kernel under Triton's interpreter on CPU tensors, for the bit tests."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import AVAILABLE_DTYPES

from berry import _device, _lowp, stream

torch = pytest.importorskip("torch")
#: For the tests that run the kernel: each is skipped, with this reason, where Triton is missing.
requires_triton = pytest.mark.skipif(not _device.triton_available(), reason="Triton is not installed (pip install triton)")

DTYPES = AVAILABLE_DTYPES  # bfloat16 with ml_dtypes
_STORAGE = {"float64": torch.float64, "float32": torch.float32, "float16": torch.int16, "bfloat16": torch.int16}


def device_fill(
    law: stream.Law,
    dtype: str,
    key: int,
    global_shape: tuple[int, ...],
    start: tuple[int, ...],
    shape: tuple[int, ...],
    *,
    block: int | None = None,
) -> np.ndarray:
    """The region's values from the interpreted kernel, as a NumPy array of ``dtype``."""
    np_dtype = _lowp.resolve_dtype(dtype)
    params = stream.kernel_params(law, np_dtype)
    layout = stream.region_layout(global_shape, start, shape)
    out = torch.full((int(np.prod(shape, dtype=np.int64)),), -1, dtype=_STORAGE[dtype])  # never a value
    kernel = _device.kernel(interpret=True)
    for launch in _device.launches(params, dtype=dtype, key=key, layout=layout, block=block):
        kernel[(launch.programs,)](out[launch.out_offset :], *launch.args, **launch.constants)
    values = out.numpy()
    if values.dtype == np.int16:
        values = values.view(np_dtype)
    return values.reshape(shape)


def host_fill(
    law: stream.Law, dtype: str, key: int, global_shape: tuple[int, ...], start: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    out = np.empty(shape, dtype=_lowp.resolve_dtype(dtype))
    stream.fill(out, law, key=key, global_shape=global_shape, region_start=start)
    return out
