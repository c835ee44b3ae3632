"""Whole-model initialization: declarative rules, per-layer fans, one keyed stream per parameter.

:func:`init_model` walks a ``torch.nn.Module``'s parameters and fills each in
place from the first rule that matches it. Each parameter's values are keyed
by ``(seed, fully qualified name)``, so adding, removing or reordering layers
changes no other parameter, and the result is the same on any device, on a
model built on ``torch.device("meta")`` and materialized with ``to_empty``,
and on a sharded model (DTensor, FSDP2 ``fully_shard``), where each process
fills only its own shard.

Which tensors it fills and under which names is :mod:`berry.torch._walk`
(shared with the schemes); weights computed by parametrizations are
:mod:`berry.torch._parametrized`; tied weights across meta materialization
are :mod:`berry.torch._materialize`; the defaults when given no rules (the
architecture plan) are :mod:`berry.torch.auto._defaults`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from berry._rules import (
    FALLBACK_VECTOR,
    Action,
    Identity,
    InitReport,
    ParameterInit,
    Rule,
    RulesLike,
    UnmatchedRuleError,
    check_unused,
    choose,
    default_rules,
    describe_action,
    parse_rules,
    warn_vector_fallbacks,
)
from berry._validation import check_bool, check_seed
from berry.fans import compute_fans
from berry.sampling import InitSpec
from berry.torch._materialize import check_ties
from berry.torch._tensors import Block, fill_from_sampler, zero_rows
from berry.torch._walk import ParameterEntry, canonical_name, parameter_entries, unwrap

__all__ = ["InitReport", "ParameterInit", "Rule", "UnmatchedRuleError", "default_rules", "fan_blocks", "init_model"]
# The rules, their defaults and the report are berry._rules', shared with berry.jax and berry.keras; this
# module walks torch's parameters, knows torch's fans and fills torch's tensors.
_NO_REINIT = Rule("*:*", "keep")


# ----------------------------------------------------------------------------- fans
_GATES = {"LSTM": "ifgo", "LSTMCell": "ifgo", "GRU": "rzn", "GRUCell": "rzn"}


def _gate_labels(module: nn.Module) -> str | None:
    for cls in type(module).__mro__:
        if cls.__name__ in _GATES:
            return _GATES[cls.__name__]
    return None


def fan_blocks(module: nn.Module, local_name: str, shape: tuple[int, ...]) -> list[Block]:
    """Rows of the parameter that get their own fans, in torch's ``(out, in, *kernel)`` layout.

    The one place that knows a layer's fans (groups and transposed
    convolutions through :func:`berry.compute_fans`, q/k/v blocks, recurrent
    gates); :func:`init_model` and the schemes both read it.
    """
    if len(shape) == 0:
        return [Block(0, 1, fans=(1, 1))]
    rows = shape[0]
    if len(shape) >= 3 and isinstance(module, nn.modules.conv._ConvNd) and local_name == "weight":
        fans = compute_fans(shape, layout="torch", groups=module.groups, transposed=module.transposed)
        return [Block(0, rows, fans=(int(fans.fan_in), int(fans.fan_out)))]
    if len(shape) == 2 and isinstance(module, nn.MultiheadAttention) and local_name == "in_proj_weight":
        third = rows // 3  # q, k and v are packed along dim 0, each its own (E, E) projection
        return [Block(i * third, (i + 1) * third, label, fans=(shape[1], third)) for i, label in enumerate("qkv")]
    gates = _gate_labels(module)
    if len(shape) == 2 and gates and local_name.startswith(("weight_ih", "weight_hh")):
        size = rows // len(gates)
        return [Block(i * size, (i + 1) * size, gate, fans=(shape[1], size)) for i, gate in enumerate(gates)]
    fans = compute_fans(shape, layout="torch") if len(shape) >= 2 else compute_fans(shape)
    return [Block(0, rows, fans=(int(fans.fan_in), int(fans.fan_out)))]


_fan_blocks = fan_blocks  # its name before the schemes shared it


def _scale(action: Action, shape: tuple[int, ...], block: Block) -> float | None:
    if not isinstance(action, InitSpec):
        return None
    std = action.std_for(shape, fans=block.fans)
    return None if std is None else float(std)


# ----------------------------------------------------------------------------- the walk
def init_model(
    model: nn.Module,
    rules: RulesLike = None,
    *,
    seed: int = 0,
    strict: bool = False,
    prefix: str = "",
    verbose: bool = False,
    respect_no_reinit: bool = True,
) -> InitReport:
    """Initialize every parameter of ``model`` in place from declarative rules, reproducibly.

    Each parameter gets the first of ``rules`` that matches it (name patterns
    before module-type rules, each kind in the order given), else the first
    of :func:`default_rules` (the structural defaults).

    With no rules at all (``rules=None``), the architecture decides: an input
    is inferred from the first layer, the forward is recorded on meta tensors
    (no memory, no compute) and the plan of :mod:`berry.torch.auto` is applied
    (for every parameter it decides, the bits of ``auto_init(model,
    seed=seed)``; the others get the structural defaults). The plan depends on
    the structure alone, so every rank of a sharded model makes the same one.
    When no plan can be made (no input can be inferred, the forward fails on
    it, or it branches on tensor values) a warning names the reason and the
    structural defaults are used. ``report.defaults`` (``"architecture"`` or
    ``"structural"``) and ``report.defaults_note`` say which path was taken
    and why. Any rules argument, even ``{}``, skips the plan:
    ``init_model(model, {})`` is the structural (Xavier-everywhere) default.

    Each parameter's values are keyed by ``(seed, name)`` with
    ``name`` its fully qualified name (wrapper segments such as ``_orig_mod``
    or ``_fsdp_wrapped_module`` dropped), so they do not depend on the other
    layers, their order, the device, or the sharding: on DTensor/FSDP2
    parameters each process fills exactly its slice of the global tensor,
    without communicating. Scale rules use each layer's true fans: groups,
    transposed convolutions, each of q/k/v in ``MultiheadAttention``'s packed
    ``in_proj_weight``, each gate of ``LSTM``/``GRU`` weights. An
    ``Embedding``'s ``padding_idx`` row is zeroed after any initializer, as
    in torch. BatchNorm running statistics are reset; other buffers are left
    as they were and listed in the report (after ``to_empty`` they hold
    garbage: recompute them).

    A weight computed by a parametrization (weight norm, spectral norm,
    orthogonal, either torch API) is one entry under its module attribute's
    name, and the rule applies to the weight the layer computes (spectral
    norm: before normalization); a rule its parametrization cannot hold
    raises before that weight is written (see :mod:`berry.torch._parametrized`).
    Lazy parameters and quantized modules are listed in ``report.skipped``
    and warned about. Parameters tied before a meta-device model was
    materialized and separate now are warned about (see
    :func:`berry.torch.materialize`).

    Parameters
    ----------
    model:
        The module (any device; meta parameters are skipped).
    rules:
        ``None`` (default): the architecture plan, see above. Else
        ``{match: init}`` (a dict, e.g. loaded from a config file) or a list
        of :class:`Rule` / ``(match, init)`` pairs / ``{"match": ..., "init":
        ...}`` dicts. ``match``: an fnmatch pattern on qualified names
        (``"*.c_proj.weight"``), ``"Type:pattern"`` on module type and local
        name (``"Linear:weight"``), or a module class. ``init``: an
        initializer name (``"xavier"``, ``"he"``, ``"orthogonal"``,
        ``"zeros"``, ... or ``"keep"``), a number (a constant), a dict of
        :func:`berry.sample` options (``{"std": 0.02, "distribution":
        "truncated_normal"}``), an :class:`berry.InitSpec`, a callable
        ``fn(tensor, *, seed, name)``, or ``None`` (keep).
    seed:
        The seed, in ``[0, 2**64)``.
    strict:
        Raise :class:`UnmatchedRuleError` if a rule of ``rules`` matches no parameter (a typo).
    prefix:
        Prepended to every name, to initialize a submodule as part of a larger model
        (the plan of a submodule is made for the submodule alone).
    verbose:
        Print the report's table (ending with the default path taken, when given no rules).
    respect_no_reinit:
        Keep parameters marked ``_no_reinit = True`` (the convention of
        ``mamba_ssm``, which :func:`berry.torch.schemes.mamba` follows: a
        Mamba layer's ``dt`` bias, ``A_log`` and ``D``), reporting them as
        ``kept``. A scheme that sets them passes ``False``.

    Returns
    -------
    InitReport
        Which rule and initializer each parameter got.

    Examples
    --------
    >>> import torch
    >>> from berry.torch import init_model
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    >>> report = init_model(model, {"*.bias": 0.0, "2.weight": {"std": 0.02}}, seed=1)
    >>> [(p.name, p.rule, p.init) for p in report][:3]
    [('0.weight', 'default Linear:weight', 'xavier normal'), ('0.bias', '*.bias', 'constant(0)'), ('2.weight', '2.weight', 'normal')]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r}")
    seed = check_seed(seed)
    strict = check_bool("strict", strict)
    verbose = check_bool("verbose", verbose)
    respect_no_reinit = check_bool("respect_no_reinit", respect_no_reinit)
    model = unwrap(model)
    user_rules = parse_rules(rules, module_class=nn.Module, framework="torch.nn")
    user_ids = {id(rule) for rule in user_rules}
    walk = parameter_entries(model, prefix)
    check_ties(model, stacklevel=2)
    defaults = default_rules()
    planned: dict[str, tuple[Rule, str]] = {}
    default_path, defaults_note = "structural", ""
    if rules is None:  # no rules at all: the architecture decides, else the structural defaults, and why
        planned, default_path, defaults_note = _architecture_defaults(model, prefix, seed)
    plan = [
        (entry, *_choose(entry, user_rules, user_ids, defaults, respect_no_reinit, planned))
        for entry in walk
        if entry.skipped is None
    ]
    used = {id(rule) for _, rule, _, _ in plan}
    entries: list[ParameterInit] = []
    vector_fallbacks = [entry.name for entry, rule, _, _ in plan if rule is FALLBACK_VECTOR]

    for entry, _, source, action in plan:
        shape = entry.shape
        assert shape is not None
        blocks = fan_blocks(entry.module, entry.local_name, shape)
        described = describe_action(action)
        reparametrization = entry.reparametrization
        if action is not None:
            fill = _filler(action, seed=seed, name=entry.name, blocks=blocks)
            if reparametrization is not None:
                reparametrization.realize(fill, seed=seed, name=entry.name, what=f"rule {source!r} ({described})")
            else:
                assert entry.parameter is not None
                fill(entry.parameter)
                if isinstance(entry.module, (nn.Embedding, nn.EmbeddingBag)) and entry.local_name == "weight":
                    _zero_padding_row(entry.module, entry.parameter)
        if reparametrization is not None and reparametrization.spectral and action is not None:
            described += " (before spectral norm)"
        std = _scale(action, shape, blocks[0]) if blocks else None
        dtype = entry.tensors[-1].dtype
        entries.append(ParameterInit(entry.name, shape, str(dtype).removeprefix("torch."), source, described, std))

    if strict:
        check_unused(user_rules, used, [entry.name for entry in entries])
    warn_vector_fallbacks(vector_fallbacks, stacklevel=3)
    skipped = tuple((entry.name, entry.skipped) for entry in walk if entry.skipped is not None)
    if skipped:
        warnings.warn(
            "init_model could not initialize: " + "; ".join(f"{name} ({reason})" for name, reason in skipped),
            UserWarning,
            stacklevel=2,
        )
    rewritten = {
        buffer
        for entry, _, _, action in plan
        if entry.reparametrization is not None and action is not None
        for buffer in entry.reparametrization.rewritten_buffers(entry.name)
    }
    reset, others = _reset_buffers(model, prefix, rewritten)
    report = InitReport(seed, tuple(entries), reset, others, skipped, default_path, defaults_note)
    if verbose:
        print(report.table())
    return report


def _architecture_defaults(model: nn.Module, prefix: str, seed: int) -> tuple[dict[str, tuple[Rule, str]], str, str]:
    """The architecture plan's rule and report label by parameter name, the default path taken, and its note.

    Imported here: berry.torch.auto builds on this module (its reports apply their rules with init_model).
    """
    from berry.torch.auto._defaults import plan_defaults

    planned = plan_defaults(model, prefix=prefix, seed=seed)
    if not planned.planned:
        warnings.warn(
            f"init_model without rules: no architecture plan for {type(model).__name__}: {planned.note}; "
            "every parameter gets the structural defaults (berry.torch.default_rules()). Pass rules to choose "
            "({} for the structural defaults, silently)",
            UserWarning,
            stacklevel=3,
        )
        return {}, "structural", f"fallback: {planned.note}"
    rules = {name: (Rule(pattern, init), planned.sources[name]) for name, (pattern, init) in planned.rules.items()}
    return rules, "architecture", planned.note


def _choose(
    entry: ParameterEntry,
    user_rules: Sequence[Rule],
    user_ids: set[int],
    defaults: Sequence[Rule],
    respect_no_reinit: bool,
    planned: Mapping[str, tuple[Rule, str]] | None = None,
) -> tuple[Rule, str, Action]:
    """The rule for one parameter, its description for the report, and what it does.

    ``planned``: the architecture plan's rule and label by parameter name, tried before ``defaults``
    (looked up by name: a scan of one exact pattern per parameter would be quadratic in the model's size).
    """
    if respect_no_reinit and any(getattr(tensor, "_no_reinit", False) for tensor in entry.tensors):
        return _NO_REINIT, "_no_reinit", None  # initialized by its own layer's scheme (mamba_ssm's convention)
    shape = entry.shape
    assert shape is not None
    identity = Identity.of(entry.name, entry.local_name, entry.module)
    rule, source, action = choose([identity], len(shape), user_rules, defaults, (planned or {}).get(entry.name))
    if entry.reparametrization is not None and entry.reparametrization.kind == "orthogonal" and action is not None:
        if id(rule) not in user_ids:  # berry's choice: the one law an orthogonal constraint can hold
            return rule, "default orthogonal parametrization", InitSpec("orthogonal", layout="torch")
        holds = isinstance(action, InitSpec) and action.kind in ("orthogonal", "eye") and action.gain == 1.0
        if isinstance(action, InitSpec) and not holds:
            raise ValueError(
                f"{entry.name} is kept orthogonal by torch's orthogonal parametrization, so rule {source!r} "
                f"({describe_action(action)}) cannot hold for it; give it 'orthogonal' (gain 1) or 'keep'"
            )
    return rule, source, action


def _filler(
    action: InitSpec | Callable[..., Any], *, seed: int, name: str, blocks: Sequence[Block]
) -> Callable[[torch.Tensor], None]:
    """A function writing ``action``'s values for parameter ``name`` into a tensor of its shape."""

    def fill(tensor: torch.Tensor) -> None:
        if isinstance(action, InitSpec):
            try:
                fill_from_sampler(tensor, action, seed=seed, name=name, blocks=blocks)
            except TypeError as error:  # e.g. a random law for an integer (packed, quantized) tensor
                raise TypeError(f"parameter {name}: {error}") from None
        else:
            action(tensor, seed=seed, name=name)

    return fill


def _zero_padding_row(module: nn.Module, parameter: torch.Tensor) -> None:
    padding = getattr(module, "padding_idx", None)
    if padding is not None:
        zero_rows(parameter, padding, padding + 1)


def _reset_buffers(model: nn.Module, prefix: str, rewritten: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Reset BatchNorm running statistics; list them and ``rewritten`` as reset, every other buffer as left."""
    reset: list[str] = []
    others: list[str] = []
    for module_name, module in model.named_modules():
        resets_stats = isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats
        if resets_stats and not any(b is not None and b.is_meta for b in module._buffers.values()):
            module.reset_running_stats()
        for buffer_name, buffer in module._buffers.items():
            if buffer is None:
                continue
            qualified = canonical_name([prefix, *module_name.split("."), buffer_name])
            (reset if resets_stats or qualified in rewritten else others).append(qualified)
    return tuple(reset), tuple(others)

