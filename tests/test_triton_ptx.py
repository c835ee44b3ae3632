"""berry's Triton kernel compiled for a CUDA GPU (on a machine without one): every operation IEEE-exact.

``triton.compile`` of the kernel's source for ``GPUTarget("cuda", 90, 32)`` emits PTX without a device.
With ``enable_fp_fusion=False`` (how berry launches it) the PTX must hold no fused multiply-add and no
approximate division, square root or transcendental, and no flush of subnormals to zero, in any code
path: the float32 transform (normal, truncated normal with and without the complement, both signs of the
upper half), the float64 transform (uniform, normal, truncated normal) and every output dtype. A control
compiles the same kernel with fusion on and must find the FMAs, so the check can fail.
"""

from __future__ import annotations

import inspect
import re

import pytest

from berry import _device, _recipe

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton)")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)  # H100/H200 (sm_90), warp size 32
FORBIDDEN = re.compile(
    r"\b(?:fma\.\S*|mad\.\S*f(?:16|32|64)|\S*\.approx\S*|div\.full\S*|rsqrt\S*|ex2\S*|lg2\S*|sin\.\S*|cos\.\S*|tanh\S*)"
    r"|\.ftz\b"
)
F32 = _recipe.TRANSFORM_F32
F64 = _recipe.TRANSFORM_F64
CODES = _recipe.DTYPE_CODES
LAW = {"uniform": _recipe.LAW_UNIFORM, "normal": _recipe.LAW_NORMAL, "truncated": _recipe.LAW_TRUNCATED}

#: (label, output pointer type, constexprs): together they cover every branch of the kernel.
VARIANTS = [
    ("f32_normal_float32", "*fp32", dict(DTYPE=CODES["float32"], LAW=LAW["normal"], TRANSFORM=F32, AFFINE32=1)),
    ("f32_tn_lower_bfloat16", "*i16", dict(DTYPE=CODES["bfloat16"], LAW=LAW["truncated"], TRANSFORM=F32, UPPER_POSITIVE=0)),
    ("f32_tn_complement_float16", "*i16", dict(DTYPE=CODES["float16"], LAW=LAW["truncated"], TRANSFORM=F32, COMPLEMENT=1)),
    ("f64_normal_float64", "*fp64", dict(DTYPE=CODES["float64"], LAW=LAW["normal"], TRANSFORM=F64)),
    ("f64_tn_complement_float64", "*fp64", dict(DTYPE=CODES["float64"], LAW=LAW["truncated"], TRANSFORM=F64, COMPLEMENT=1)),
    ("f64_tn_float32", "*fp32", dict(DTYPE=CODES["float32"], LAW=LAW["truncated"], TRANSFORM=F64)),
    ("f64_uniform_bfloat16", "*i16", dict(DTYPE=CODES["bfloat16"], LAW=LAW["uniform"], TRANSFORM=F64)),
]


def compile_ptx(pointer: str, constants: dict[str, int], *, fusion: bool = False) -> str:
    kernel = _device.kernel(interpret=False)
    words = 4 if constants["TRANSFORM"] == F32 else 2
    constexprs = {"AFFINE32": 0, "COMPLEMENT": 0, "UPPER_POSITIVE": 1, "N_OUTER": 4, "WORDS": words, "BLOCK": 1024}
    constexprs.update(constants)
    signature = {}
    for name in inspect.signature(kernel.fn).parameters:
        signature[name] = pointer if name == "out_ptr" else "constexpr" if name in constexprs else "i64"
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=TARGET, options={"enable_fp_fusion": fusion}).asm["ptx"]


def instructions(ptx: str) -> set[str]:
    return set(re.findall(r"^\s*(?:@!?%p\d+\s+)?([a-z][a-z0-9_.]*)", ptx, re.M))


@pytest.mark.parametrize(("pointer", "constants"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_ptx_is_ieee_exact(pointer, constants):
    ptx = compile_ptx(pointer, constants)
    found = instructions(ptx)
    bad = sorted({match.group(0) for match in FORBIDDEN.finditer(ptx)})
    assert not bad, f"fused, approximate or flushing instructions in the PTX: {bad}"
    assert "mul.hi.u32" in found  # Philox's 32-bit multiply-high
    if constants["TRANSFORM"] == F32:
        assert {"div.rn.f32", "sqrt.rn.f32", "mul.rn.f32", "add.rn.f32"} <= found
    elif constants["LAW"] != LAW["uniform"]:
        assert {"div.rn.f64", "sqrt.rn.f64", "mul.rn.f64", "add.rn.f64"} <= found


def test_the_check_finds_fused_multiply_adds_when_fusion_is_on():
    ptx = compile_ptx("*fp32", dict(DTYPE=CODES["float32"], LAW=LAW["normal"], TRANSFORM=F32, AFFINE32=1), fusion=True)
    assert any(match.group(0).startswith("fma.") for match in FORBIDDEN.finditer(ptx))
