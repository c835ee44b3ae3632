"""berry.jax sharded arrays: every mesh and PartitionSpec gives the same global array, shard by shard.

The checks run in a subprocess that forces 8 host devices before JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``): other test modules
of the same pytest run may already have imported JAX with one device.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

SCRIPT = textwrap.dedent(
    """
    import itertools
    import numpy as np
    import jax, jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import berry.sampling
    import berry.jax as bj

    assert len(jax.devices()) == 8, jax.devices()

    # Record the size of every region berry.sample is asked for: shards, never the whole tensor.
    calls = []
    original = berry.sampling.sample
    def recording(shape, *args, region=None, **kwargs):
        out = original(shape, *args, region=region, **kwargs)
        calls.append(out.size)
        return out
    berry.sampling.sample = recording

    shape = (16, 24)
    key = jax.random.key(5)
    inits = {
        "he_normal": bj.he_normal(name="w"),
        "uniform": bj.uniform(0.5),
        "xavier": bj.xavier(name="layer.weight"),
        "truncated_normal": bj.truncated_normal(0.1),
        "orthogonal": bj.orthogonal(),
        "constant": bj.constant(0.25),
    }
    meshes = {
        "1": ((1,), ("x",)), "2": ((2,), ("x",)), "4": ((4,), ("x",)), "8": ((8,), ("x",)),
        "2x4": ((2, 4), ("x", "y")), "4x2": ((4, 2), ("x", "y")),
    }
    specs_1d = [P(), P("x"), P(None, "x")]
    specs_2d = [P(), P("x"), P(None, "y"), P("x", "y"), P("y", "x"), P(("x", "y")), P(None, ("y", "x"))]
    checked = 0
    for dtype in (jnp.float32, jnp.bfloat16):
        for init_name, init in inits.items():
            if dtype == jnp.bfloat16 and init_name not in ("he_normal", "constant"):
                continue
            reference = np.asarray(init(key, shape, dtype))
            for mesh_name, (mesh_shape, axis_names) in meshes.items():
                devices = np.array(jax.devices()[: int(np.prod(mesh_shape))]).reshape(mesh_shape)
                mesh = Mesh(devices, axis_names)
                for spec in specs_2d if len(axis_names) == 2 else specs_1d:
                    sharding = NamedSharding(mesh, spec)
                    calls.clear()
                    eager = bj.sharded(init, shape, sharding, key, dtype=dtype)
                    assert eager.sharding == sharding
                    assert eager.dtype == dtype
                    np.testing.assert_array_equal(np.asarray(eager), reference, err_msg=f"{init_name} {mesh_name} {spec}")
                    for piece in eager.addressable_shards:
                        np.testing.assert_array_equal(np.asarray(piece.data), reference[piece.index])
                    if init_name != "orthogonal":  # elementwise: each call makes one shard, never more
                        shard_size = eager.addressable_shards[0].data.size
                        assert all(size in (0, shard_size) for size in calls)  # 0: the argument check, (init_name, mesh_name, spec, calls)
                    via_argument = init(key, shape, dtype, out_sharding=sharding)
                    np.testing.assert_array_equal(np.asarray(via_argument), reference)
                    if dtype == jnp.float32 and (init_name == "he_normal" or (init_name == "orthogonal" and mesh_name == "2x4")):
                        jitted = jax.jit(lambda k: init(k, shape, dtype, out_sharding=sharding))(key)
                        assert jitted.sharding.is_equivalent_to(sharding, len(shape))
                        np.testing.assert_array_equal(np.asarray(jitted), reference, err_msg=f"jit {init_name} {mesh_name} {spec}")
                    checked += 1
    print("checked", checked)
    """
)


def test_sharded_arrays_are_mesh_invariant():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "checked" in result.stdout
