"""How a scheme finds the roles of a model's parameters: presets of name patterns, one mechanism for all.

A *role* is what a scheme takes a parameter for ("residual", "ffn",
"branch", "readout", ...). A :class:`Preset` names, for one naming
convention (nanoGPT, fairseq, torchvision, ...), the fnmatch patterns of the
parameters that play each role. A scheme family declares its roles, its
presets and the roles a model must have in one :class:`RoleTable`; its
scheme function then calls :meth:`RoleTable.resolve`, which

1. takes the preset asked for (``"auto"``: the first that fits the model),
2. lays the user's patterns (``roles={"ffn": [...]}`` or the same as
   keywords, ``ffn=[...]``) over it, and
3. checks that every required role matches, or raises :class:`PresetError`
   naming the patterns searched and the model's parameters,

and returns the :class:`Roles` of that model: which preset fit, the
patterns in force, and the parameters each role matches, in model order.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import nn

from berry.torch._walk import ParameterEntry, parameter_entries, unwrap

__all__ = [
    "ModelParameters",
    "Preset",
    "PresetError",
    "RoleTable",
    "Roles",
    "exact",
    "matching",
    "shown",
]

Patterns = tuple[str, ...]
PatternsLike = str | Sequence[str]


class PresetError(LookupError, ValueError):
    """A scheme's preset (or the patterns given) does not fit the model's parameter names."""


# ----------------------------------------------------------------------------- patterns
def exact(name: str) -> str:
    """An fnmatch pattern matching exactly ``name``."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def matching(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The names (in their order) that match any of ``patterns``."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def shown(names: Sequence[str], limit: int = 16) -> str:
    """At most ``limit`` names, comma-separated, with the count when some are left out."""
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def as_patterns(argument: str, value: PatternsLike) -> Patterns:
    """One pattern or a sequence of them, as a tuple; anything else is a TypeError naming ``argument``."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"{argument} must be an fnmatch pattern or a sequence of them, got {value!r}")


# ----------------------------------------------------------------------------- the model's parameters
class ModelParameters:
    """A model's parameters as the schemes see them: :func:`berry.torch.init_model`'s walk, by name.

    Each parameter once (tied ones under their first name), wrapper segments
    dropped, parametrized weights under their module attribute's name
    (:mod:`berry.torch._walk`); tensors ``init_model`` cannot fill (lazy,
    quantized) are left out here and reported by ``init_model``.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.entries: tuple[ParameterEntry, ...] = tuple(
            e for e in parameter_entries(unwrap(model)) if e.skipped is None
        )
        self.names: tuple[str, ...] = tuple(e.name for e in self.entries)
        self._by_name = {e.name: e for e in self.entries}

    def __iter__(self) -> Iterator[ParameterEntry]:
        return iter(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> ParameterEntry:
        return self._by_name[name]

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self._by_name[name].shape
        assert shape is not None  # skipped entries (no shape) are not listed
        return shape

    def tensor(self, name: str) -> nn.Parameter:
        """The parameter itself, for a scheme that reads or marks it (a parametrized weight has none)."""
        parameter = self._by_name[name].parameter
        if parameter is None:
            raise ValueError(
                f"{name} is computed by a parametrization, so this scheme cannot read or mark it directly; "
                "apply the scheme before registering the parametrization"
            )
        return parameter


# ----------------------------------------------------------------------------- presets and roles
@dataclasses.dataclass(frozen=True)
class Preset:
    """A naming convention: for each role, the fnmatch patterns of the parameters that play it.

    A role left empty (``()``) means the convention has no such parameter:
    a preset that leaves a required role empty is never picked by
    ``preset="auto"``, and chosen by name it waives that requirement (muP's
    ``"none"``: no separate readout; ZerO's ``"mlp"``: no residual branches).

    >>> Preset("mine", {"residual": "*.down.weight"}).roles
    {'residual': ('*.down.weight',)}
    """

    name: str
    roles: Mapping[str, Patterns]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"a preset's name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.roles, Mapping):
            raise TypeError(f"a preset's roles must be a dict role -> patterns, got {self.roles!r}")
        roles = {str(role): as_patterns(f"preset {self.name!r} role {role!r}", p) for role, p in self.roles.items()}
        object.__setattr__(self, "roles", roles)


@dataclasses.dataclass(frozen=True)
class Roles:
    """The roles of one model: which preset fit, the patterns in force, the parameters each matches."""

    preset: str
    patterns: Mapping[str, Patterns]
    names: tuple[str, ...]  #: every parameter name of the model, in model order

    def of(self, role: str) -> list[str]:
        """The parameters playing ``role``, in model order (none if the role has no patterns)."""
        return matching(self.names, self.patterns.get(role, ()))

    def plays(self, name: str, role: str) -> bool:
        """Whether parameter ``name`` matches ``role``'s patterns."""
        return bool(matching([name], self.patterns.get(role, ())))


@dataclasses.dataclass(frozen=True)
class RoleTable:
    """The roles a scheme family knows, its presets, and the roles a model must have.

    ``required`` lists requirements, each a tuple of roles of which at least
    one must match (``("value", "packed")``: separate value projections or
    packed q/k/v weights). A role matches when every one of its patterns
    matches some parameter, so a preset that fits only part of a model
    (attention names but not feed-forward ones) is not taken for a fit.
    """

    scheme: str
    roles: tuple[str, ...]
    presets: tuple[Preset, ...]
    required: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        for preset in self.presets:
            unknown = set(preset.roles) - set(self.roles)
            if unknown:
                raise ValueError(f"{self.scheme}: preset {preset.name!r} has roles {sorted(unknown)} not in {self.roles}")

    @property
    def preset_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.presets)

    def as_dict(self) -> dict[str, dict[str, Patterns]]:
        """``{preset name: {role: patterns}}``."""
        return {p.name: dict(p.roles) for p in self.presets}

    def overrides(self, roles: Mapping[str, PatternsLike] | None, keywords: Mapping[str, Any]) -> dict[str, Patterns]:
        """The user's patterns, from ``roles=`` and from role keywords (``ffn=...``), validated."""
        if roles is not None and not isinstance(roles, Mapping):
            raise TypeError(f"roles must be a dict role -> fnmatch patterns, got {roles!r}")
        given: dict[str, Patterns] = {}
        for source in (roles or {}, keywords):
            for role, value in source.items():
                if role not in self.roles:
                    raise TypeError(
                        f"{self.scheme}() got an unexpected argument {role!r}: not one of its parameters nor one "
                        f"of its roles {list(self.roles)}"
                    )
                if value is None:
                    continue
                if role in given:
                    raise TypeError(f"{self.scheme}: role {role!r} is given twice (in roles= and as a keyword)")
                given[role] = as_patterns(role, value)
        return given

    def resolve(
        self,
        parameters: ModelParameters,
        preset: str | Preset = "auto",
        overrides: Mapping[str, Patterns] | None = None,
        *,
        required: Sequence[Sequence[str]] = (),
    ) -> Roles:
        """The model's roles: the preset's patterns (the first that fits for ``"auto"``) under ``overrides``."""
        overrides = dict(overrides or {})
        needs = [tuple(r) for r in (*self.required, *required)]
        if isinstance(preset, Preset):
            candidates, explicit = [preset], True
        else:
            choice = preset if isinstance(preset, str) else repr(preset)
            if choice != "auto" and choice not in self.preset_names:
                raise ValueError(
                    f"preset={preset!r} is not a {self.scheme} preset; allowed: {['auto', *self.preset_names]} "
                    "or a Preset"
                )
            candidates = list(self.presets) if choice == "auto" else [p for p in self.presets if p.name == choice]
            explicit = choice != "auto"
        names = parameters.names
        failures = []
        for candidate in candidates:
            patterns = {**candidate.roles, **overrides}
            waived = [n for n in needs if all(not candidate.roles.get(r) and r not in overrides for r in n)]
            if waived and not explicit:
                continue  # a preset for models without a required role is only taken by name
            missing = _missing_roles(patterns, [n for n in needs if n not in waived], names)
            if not missing:
                return Roles(candidate.name, patterns, names)
            failures.append(f"preset {candidate.name!r}: no parameter matches {missing}")
        raise PresetError(
            f"{self.scheme}: cannot find the parameters it needs ({'; '.join(failures)}). "
            f"The model's parameters are: {shown(list(names))}. "
            f"Pass preset= one of {list(self.preset_names)} or point the scheme at your names with roles= "
            f"(roles: {list(self.roles)})."
        )


def _missing_roles(
    patterns: Mapping[str, Patterns], needs: Sequence[Sequence[str]], names: Sequence[str]
) -> dict[str, Patterns]:
    """For each requirement not met, its roles and the patterns searched in vain."""
    missing: dict[str, Patterns] = {}

    def fits(role: str) -> bool:
        found = patterns.get(role, ())
        return bool(found) and all(matching(names, (pattern,)) for pattern in found)

    for alternatives in needs:
        if not any(fits(role) for role in alternatives):
            for role in alternatives:
                missing[role] = patterns.get(role, ())
    return missing
