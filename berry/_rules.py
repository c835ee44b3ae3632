"""Whole-model initialization without a framework: rules, what they say, and the report.

``berry.torch.init_model``, ``berry.jax.init_nnx``/``init_linen`` and
``berry.keras.init_model`` share one rules format, one matching rule, one set
of defaults and one report (each framework only walks its own parameters):

* a rule is ``(match, init)``; ``match`` is an ``fnmatch`` pattern on a
  parameter's name (``"*.bias"``), ``"Type:pattern"`` on the class of the
  module that owns it (or a base class) and its local name
  (``"Linear:weight"``, ``"Dense:kernel"``, ``"*:*bias*"``), or a module class;
* name patterns are tried before type rules, each kind in the order given,
  then :func:`default_rules`, then a fallback (Xavier for tensors of rank
  >= 2, ones for the others, with a warning naming them);
* ``init`` is an initializer name (or ``"keep"``), a number (a constant), a
  dict of :func:`berry.sample` options, an :class:`berry.InitSpec`, a
  callable in the framework's own initializer protocol, or ``None`` (keep).

A Flax or Keras parameter answers to two identities (:class:`Identity`): its
own (path ``"Dense_0/kernel"``, class ``Dense``, local name ``kernel``) and
the canonical one of :mod:`berry._canonical` (``"Dense_0.weight"``, the
torch class ``Linear``, ``weight``); a rule matches if it matches either, so
the default rules, written with torch's names, apply to every framework, and
one rule set in canonical names gives the same weights in all three. A torch
parameter has one identity: its fully qualified name, its local name and its
module.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

from berry._format import format_table
from berry.sampling import InitSpec

__all__ = [
    "Identity",
    "InitReport",
    "ParameterInit",
    "Rule",
    "RulesLike",
    "SpecLike",
    "UnmatchedRuleError",
    "action_of",
    "check_unused",
    "choose",
    "default_rules",
    "describe_action",
    "first_match",
    "parse_rules",
    "type_names",
    "warn_vector_fallbacks",
]

#: What a rule can say (see the module documentation).
SpecLike = Union[str, float, Mapping[str, Any], InitSpec, Callable[..., Any], None]  # noqa: UP007 (runtime alias)
#: What an action is once parsed: a spec, a framework callable, or None ("keep").
Action = Union[InitSpec, Callable[..., Any], None]  # noqa: UP007

_KEEP = "keep"
#: Prefixes a type rule may carry (``"nn.Linear"``, ``"keras.layers.Dense"``): only the class name counts.
_TYPE_PREFIXES = ("torch.nn.", "nn.", "flax.linen.", "linen.", "flax.nnx.", "nnx.", "keras.layers.", "layers.")


class UnmatchedRuleError(ValueError):
    """A rule matched no parameter while ``strict=True``."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """How rules see one parameter: its name, local name, owner's class names and owner."""

    name: str
    local: str
    types: tuple[str, ...]  #: class names of the owner and its bases (short and qualified)
    owner: Any = None  #: the owning module or layer, for rules that match a class object

    @classmethod
    def of(cls, name: str, local: str, owner: Any) -> Identity:
        """The identity of parameter ``local`` of ``owner`` (a module or layer, or None), named ``name``."""
        return cls(name, local, type_names(type(owner)) if owner is not None else (), owner)


def type_names(cls: type) -> tuple[str, ...]:
    """The names a type rule may use for ``cls``: each class of its MRO, short and qualified."""
    names: list[str] = []
    for base in cls.__mro__:
        names += [base.__name__, f"{base.__module__}.{base.__qualname__}"]
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class Rule:
    """Which parameters get which initializer.

    ``match`` is one of

    * ``"pattern"``: an ``fnmatch`` pattern on the parameter's name (torch's
      fully qualified name), e.g. ``"*.c_proj.weight"``, ``"*.bias"``,
      ``"encoder.layers.0.*"``;
    * ``"Type:pattern"``: parameters of modules whose class (or a base class)
      is named ``Type``, whose own name matches ``pattern``, e.g.
      ``"Linear:weight"``, ``"LayerNorm:*"``, ``"Conv2d:bias"``; ``Type`` may
      be ``*`` (any module) and ``"Type:"`` means ``"Type:*"``;
    * a module class, e.g. ``torch.nn.Embedding`` (all its parameters).

    ``init`` is what they get (see :data:`SpecLike`): an initializer name
    (``"xavier"``, ``"orthogonal"``, ``"zeros"``, ... or ``"keep"``), a number
    (a constant), a dict of :func:`berry.sample` options, an
    :class:`berry.InitSpec`, a callable in the framework's protocol (torch's:
    ``fn(tensor, *, seed, name)``), or ``None`` (keep).
    """

    match: str | type
    init: SpecLike

    @property
    def by_type(self) -> bool:
        return isinstance(self.match, type) or ":" in self.match

    def _type_and_pattern(self) -> tuple[str | type, str]:
        if isinstance(self.match, type):
            return self.match, "*"
        type_name, _, pattern = self.match.partition(":")
        return type_name.strip(), pattern.strip() or "*"

    def matches(self, identity: Identity) -> bool:
        if not self.by_type:
            assert isinstance(self.match, str)
            return fnmatch.fnmatchcase(identity.name, self.match)
        wanted, pattern = self._type_and_pattern()
        if not fnmatch.fnmatchcase(identity.local, pattern):
            return False
        if isinstance(wanted, type):
            return identity.owner is not None and isinstance(identity.owner, wanted)
        if wanted == "*":
            return True
        for prefix in _TYPE_PREFIXES:
            if wanted.startswith(prefix):
                wanted = wanted[len(prefix) :]
        return wanted in identity.types

    def describe(self) -> str:
        if isinstance(self.match, type):
            return f"{self.match.__name__}:*"
        return self.match


RulesLike = Union[  # noqa: UP007 (runtime alias)
    Mapping[Any, SpecLike], Sequence[Union[Rule, tuple[Any, SpecLike], Mapping[str, Any]]], None  # noqa: UP007
]


def parse_rules(rules: RulesLike, *, module_class: type | tuple[type, ...] = object, framework: str = "") -> list[Rule]:
    """``rules`` as :class:`Rule` objects, every spec checked now; name patterns first, then type rules."""
    if rules is None:
        return []
    if isinstance(rules, Mapping):
        items: list[Any] = list(rules.items())
    elif isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        raise TypeError(f"rules must be a dict {{match: init}} or a list of Rule / (match, init) pairs, got {rules!r}")
    else:
        items = list(rules)
    parsed = []
    for item in items:
        if isinstance(item, Rule):
            rule = item
        elif isinstance(item, Mapping) and set(item) == {"match", "init"}:
            rule = Rule(item["match"], item["init"])
        elif isinstance(item, tuple) and len(item) == 2:
            rule = Rule(*item)
        else:
            raise TypeError(
                f"each rule must be a Rule, a (match, init) pair or a dict with keys 'match' and 'init', got {item!r}"
            )
        if not isinstance(rule.match, (str, type)) or (
            isinstance(rule.match, type) and not issubclass(rule.match, module_class)
        ):
            raise TypeError(f"a rule's match must be a pattern string or a {framework} module class, got {rule.match!r}")
        action_of(rule.init, rule.describe())  # reject bad specs before touching any parameter
        parsed.append(rule)
    return [r for r in parsed if not r.by_type] + [r for r in parsed if r.by_type]


def action_of(spec: SpecLike, where: str) -> Action:
    """``spec`` as an :class:`InitSpec`, a callable, or ``None`` for "leave as is"."""
    if spec is None or (isinstance(spec, str) and spec.lower() == _KEEP):
        return None
    if isinstance(spec, InitSpec):
        return spec
    try:
        if isinstance(spec, str):
            return InitSpec(spec)
        if isinstance(spec, bool):
            raise TypeError(f"a rule's init must not be a bool, got {spec!r}")
        if isinstance(spec, (int, float)):
            return InitSpec("constant", value=spec)
        if isinstance(spec, Mapping):
            return InitSpec.from_dict(spec)
    except (TypeError, ValueError) as error:
        raise type(error)(f"rule {where!r}: {error}") from None
    if callable(spec):
        return spec
    raise TypeError(
        f"rule {where!r}: init must be an initializer name, a number, a dict of berry.sample options, "
        f"an InitSpec, a callable or None, got {spec!r}"
    )


def default_rules() -> list[Rule]:
    """The rules for parameters no user rule matches, most specific first.

    Weights get Xavier/Glorot normal with each layer's true fans (groups,
    transposed convolutions, each of q/k/v, each recurrent gate), recurrent
    weights orthogonal per gate, embeddings ``N(0, 1)`` (torch's), norms ones
    and zeros, biases zeros. Parameters of other modules: Xavier for tensors
    of rank >= 2, ones for other 1-D tensors (with a warning naming them: add
    a rule). They are written with torch's class names and match Flax and
    Keras parameters through their canonical identity.

    >>> [rule.describe() for rule in default_rules()][:3]
    ['_NormBase:weight', '_NormBase:bias', 'LayerNorm:weight']
    """
    rules: list[Rule] = []
    for norm in ("_NormBase", "LayerNorm", "GroupNorm", "RMSNorm"):
        rules += [Rule(f"{norm}:weight", "ones"), Rule(f"{norm}:bias", "zeros")]
    rules += [
        Rule("Embedding:weight", {"std": 1.0}),
        Rule("EmbeddingBag:weight", {"std": 1.0}),
        Rule("MultiheadAttention:in_proj_bias", "zeros"),
        Rule("MultiheadAttention:*", "xavier"),
        Rule("RNNBase:weight_hh_l*", "orthogonal"),
        Rule("RNNCellBase:weight_hh", "orthogonal"),
        Rule("RNNBase:weight_*", "xavier"),
        Rule("RNNCellBase:weight_*", "xavier"),
        Rule("PReLU:weight", {"init": "constant", "value": 0.25}),
        Rule("Linear:weight", "xavier"),
        Rule("Bilinear:weight", "xavier"),
        Rule("_ConvNd:weight", "xavier"),
        Rule("*:*bias*", "zeros"),
    ]
    return rules


FALLBACK_MATRIX = Rule("*:*", "xavier")
FALLBACK_VECTOR = Rule("*:*", "ones")


def first_match(rules: Sequence[Rule], identities: Sequence[Identity]) -> Rule | None:
    """The first of ``rules`` that matches any of a parameter's identities, or None."""
    for rule in rules:
        if any(rule.matches(identity) for identity in identities):
            return rule
    return None


def choose(
    identities: Sequence[Identity],
    rank: int,
    user_rules: Sequence[Rule],
    defaults: Sequence[Rule],
    planned: tuple[Rule, str] | None = None,
) -> tuple[Rule, str, Action]:
    """The rule for one parameter, its report label, its action.

    The first of ``user_rules`` that matches any of its identities; else ``planned`` (a rule chosen for
    this parameter beforehand, with its label: torch's architecture plan); else the first of ``defaults``;
    else the fallback for its rank.
    """
    rule = first_match(user_rules, identities)
    if rule is not None:
        source = rule.describe()
    elif planned is not None:
        rule, source = planned
    else:
        rule = first_match(defaults, identities) or (FALLBACK_MATRIX if rank >= 2 else FALLBACK_VECTOR)
        source = f"default {rule.describe()}"
    return rule, source, action_of(rule.init, rule.describe())


def describe_action(action: Action) -> str:
    """How the report names what a parameter got."""
    if action is None:
        return "kept"
    if not isinstance(action, InitSpec):
        named = getattr(action, "func", action)  # functools.partial names its function
        return str(getattr(named, "__name__", type(named).__name__))
    return action.describe()


def check_unused(user_rules: Sequence[Rule], used: set[int], names: Sequence[str]) -> None:
    """``strict=True``: a rule that matched nothing is a typo; say how the parameters are named."""
    unused = [rule.describe() for rule in user_rules if id(rule) not in used]
    if unused:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise UnmatchedRuleError(f"rules {unused} matched no parameter (strict=True); parameters are named like: {shown}")


def warn_vector_fallbacks(names: Sequence[str], stacklevel: int = 3) -> None:
    if names:
        warnings.warn(
            f"no rule for the 1-D parameters {list(names)} of unknown modules: filled with ones; "
            "add a rule (e.g. {'*.scale': 'ones'}) to choose",
            UserWarning,
            stacklevel=stacklevel,
        )


# ----------------------------------------------------------------------------- report
@dataclasses.dataclass(frozen=True)
class ParameterInit:
    """What one parameter got."""

    name: str  #: the parameter's name in its framework
    shape: tuple[int, ...]
    dtype: str
    rule: str  #: the rule that matched ("default ..." for the built-in ones)
    init: str  #: the initializer, described
    std: float | None  #: the values' scale where one applies
    #: The canonical name the values are keyed by (with the seed) in Flax and Keras; empty in torch,
    #: whose values are keyed by ``name``.
    key: str = ""


@dataclasses.dataclass(frozen=True)
class InitReport:
    """What an ``init_model`` did: one :class:`ParameterInit` per parameter, in model order."""

    seed: int
    parameters: tuple[ParameterInit, ...]
    reset_buffers: tuple[str, ...] = ()  #: state reset (BatchNorm statistics, a torch parametrization's state)
    #: other state left as it was (in torch, recompute it if the model was materialized from meta)
    other_buffers: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  #: (name, reason) of tensors berry did not fill (lazy, quantized, abstract)
    #: What parameters no rule matched got: "architecture" (the plan of :mod:`berry.torch.auto`, made when
    #: torch's init_model is given no rules) or "structural" (:func:`default_rules`).
    defaults: str = "structural"
    #: Where the architecture plan came from, or why torch's init_model fell back to the structural defaults
    #: (empty when rules were given: unmatched parameters then always get the structural defaults).
    defaults_note: str = ""

    def __iter__(self) -> Iterator[ParameterInit]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __getitem__(self, name: str) -> ParameterInit:
        for entry in self.parameters:
            if name == entry.name or (entry.key and name == entry.key):
                return entry
        raise KeyError(name)

    def table(self) -> str:
        """A fixed-width table: name, canonical key (where there is one), shape, rule, initializer, std."""
        keyed = any(p.key for p in self.parameters)
        header = ("parameter", *(("key",) if keyed else ()), "shape", "rule", "init", "std")
        rows = [
            (p.name, *((p.key,) if keyed else ()), "x".join(map(str, p.shape)) or "()", p.rule, p.init,
             "" if p.std is None else f"{p.std:.4g}")
            for p in self.parameters
        ]
        lines = [format_table(rows, header)]
        if self.reset_buffers:
            lines.append(f"state reset: {', '.join(self.reset_buffers)}")
        if self.other_buffers:
            lines.append(f"state left as it was: {', '.join(self.other_buffers)}")
        lines += [f"not initialized: {name} ({reason})" for name, reason in self.skipped]
        if self.defaults_note:
            lines.append(f"defaults: {self.defaults}: {self.defaults_note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "parameters": [dataclasses.asdict(p) for p in self.parameters],
            "reset_buffers": list(self.reset_buffers),
            "other_buffers": list(self.other_buffers),
            "skipped": [list(item) for item in self.skipped],
            "defaults": self.defaults,
            "defaults_note": self.defaults_note,
        }
