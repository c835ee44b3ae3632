"""One descriptor per kind of initializer: a kind registered once works everywhere, unchanged code.

A test-local kind (random signs, ``rademacher``) is registered with one call to
:func:`berry.register_kind` and then used through :func:`berry.sample`,
:class:`berry.InitSpec` (validation, description, JSON), ``berry.torch``'s
``init_model``, ``berry.jax`` and ``berry.keras``, without touching any other
code. The built-in kinds' descriptors are checked against the option table that
``berry.sampling`` documents.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import berry
from berry import distributions, kinds, sampling, stream
from berry._validation import MissingNameError, UnknownNameError
from berry.kinds import InitKind


def fill_rademacher(spec, out, *, shape, region, key, threads):
    """Random signs times gain: the sign of the stream's uniform on [-1, 1)."""
    distributions.fill_elementwise(out, stream.Uniform(-1.0, 1.0), key=key, threads=threads, shape=shape, region=region)
    out[...] = np.where(out >= 0, spec.gain, -spec.gain)


RADEMACHER = InitKind(
    "rademacher", fill_rademacher, options={"gain"}, aliases=("random_signs",), min_rank=2, max_rank=2,
    shape_text="a 2-D shape", summary="random signs times gain",
)


@pytest.fixture
def rademacher():
    berry.register_kind(RADEMACHER)
    try:
        yield RADEMACHER
    finally:
        berry.unregister_kind("rademacher")


def expected_signs(shape, gain, seed, name, dtype="float32"):
    uniform = berry.sample(shape, distribution="uniform", low=-1.0, high=1.0, seed=seed, name=name, dtype=dtype)
    return np.where(uniform >= 0, gain, -gain).astype(dtype)


def test_sample_and_initspec_use_a_registered_kind(rademacher):
    w = berry.sample((6, 5), "rademacher", gain=0.5, seed=3, name="w")
    np.testing.assert_array_equal(w, expected_signs((6, 5), 0.5, 3, "w"))
    np.testing.assert_array_equal(berry.sample((6, 5), "Random_Signs", gain=0.5, seed=3, name="w"), w)
    spec = berry.InitSpec("rademacher", gain=0.5)
    assert spec.kind == "rademacher" and spec.describe() == "rademacher" and spec.std_for((6, 5)) is None
    assert berry.InitSpec.from_json(spec.to_json()) == spec
    np.testing.assert_array_equal(spec((6, 5), seed=3, name="w", region=(slice(2, 4),)), w[2:4])


def test_a_registered_kind_is_validated_like_the_built_in_ones(rademacher):
    with pytest.raises(ValueError, match=re.escape("std=0.1 does not apply here: init='rademacher' does not use it")):
        berry.InitSpec("rademacher", std=0.1)
    with pytest.raises(ValueError, match=re.escape("init='rademacher' needs a 2-D shape, got shape=(4,)")):
        berry.sample((4,), "rademacher", name="w")
    with pytest.raises(MissingNameError):
        berry.sample((4, 4), "rademacher")
    assert "rademacher" in berry.initializations.STRUCTURAL_INITIALIZERS


def test_torch_init_model_uses_a_registered_kind(rademacher):
    torch = pytest.importorskip("torch")
    from berry.torch import init_model

    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Linear(6, 2))
    report = init_model(model, {"Linear:weight": {"init": "rademacher", "gain": 0.25}}, seed=7)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), expected_signs((6, 5), 0.25, 7, "0.weight"))
    assert report["1.weight"].init == "rademacher" and report["1.weight"].std is None


def test_jax_uses_a_registered_kind(rademacher):
    jax = pytest.importorskip("jax")
    import berry.jax as bj

    w = bj.initializer("rademacher", gain=0.5, name="w")(jax.random.key(3), (6, 5))
    np.testing.assert_array_equal(np.asarray(w), expected_signs((6, 5), 0.5, 3, "w"))
    with pytest.raises(ValueError, match="2-D shape"):
        bj.initializer("rademacher")(jax.random.key(3), (6, 5, 2))


def test_keras_uses_a_registered_kind(rademacher):
    bk = pytest.importorskip("berry.keras")
    import keras

    w = keras.ops.convert_to_numpy(bk.BerryInitializer("rademacher", seed=3, name="w", gain=0.5)((6, 5)))
    np.testing.assert_array_equal(w, expected_signs((6, 5), 0.5, 3, "w"))


def test_names_are_shared_between_kinds_and_rules(rademacher):
    with pytest.raises(ValueError, match="already a scale rule"):
        berry.register_kind(InitKind("glorot", fill_rademacher))
    with pytest.raises(ValueError, match="already the kind 'rademacher'"):
        berry.register_kind(InitKind("other", fill_rademacher, aliases=("random_signs",)))
    with pytest.raises(ValueError, match="structural initializer"):
        berry.register_initialization("rademacher", lambda **kwargs: 1.0)
    with pytest.raises(ValueError, match="built in"):
        berry.unregister_kind("orthogonal")


def test_an_unregistered_kind_is_unknown_again():
    berry.register_kind(RADEMACHER)
    berry.unregister_kind("random_signs")  # by alias
    with pytest.raises(UnknownNameError, match="init='rademacher' is not supported"):
        berry.sample((2, 2), "rademacher", name="w")


def test_descriptors_are_checked():
    with pytest.raises(ValueError, match="not InitSpec options"):
        InitKind("bad", fill_rademacher, options={"gian"})
    with pytest.raises(ValueError, match="identifier"):
        InitKind("two words", fill_rademacher)
    with pytest.raises(TypeError, match="fill must be callable"):
        InitKind("bad", None)  # type: ignore[arg-type]


def _documented_options() -> dict[str, set[str]]:
    """The option table in berry.sampling's docstring: {kind name: options it lists}."""
    table = sampling.__doc__.split("Which options go with which ``init``")[1].split("\n\n")[0]
    known = set(kinds._SPEC_OPTIONS) | {"layout"}
    rows: dict[str, set[str]] = {}
    current: list[str] = []
    for line in table.splitlines():
        if line.startswith(("=", "-")) or "options it uses" in line or not line.strip():
            continue
        head, rest = line[:30], line[30:]
        names = re.findall(r'``"(\w+)"``', head) or (["rule"] if head.startswith("a rule") else [])
        if names:
            current = names
            for name in names:
                rows.setdefault(name, set())
        for name in current:
            rows[name] |= {word for word in re.findall(r"\w+", rest) if word in known}
    return rows


def test_the_documented_option_table_is_the_descriptors():
    documented = _documented_options()
    expected = {"rule": set(kinds.RULE.options)}
    for name, kind in kinds.list_kinds().items():
        for key in (name, *kind.aliases):
            expected[key] = set(kind.options)
    assert set(documented) == set(expected)
    for name, options in documented.items():
        assert options - {"layout"} == expected[name], name
