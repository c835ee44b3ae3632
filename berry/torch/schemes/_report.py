"""What a scheme did (:class:`SchemeReport`), and how its rules reach :func:`berry.torch.init_model`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn

from berry._format import format_table
from berry.torch._model import InitReport, RulesLike, init_model

__all__ = ["SchemeReport", "SchemeRules", "apply_rules"]

#: A scheme's rules: ``(pattern, init)`` pairs in :func:`berry.torch.init_model`'s forms, most specific first.
SchemeRules = list[tuple[str, Any]]


@dataclasses.dataclass(frozen=True)
class SchemeReport:
    """What a scheme did: its constants, each parameter's role, and :func:`init_model`'s report."""

    scheme: str
    preset: str | None
    constants: dict[str, float]  #: the scheme's numbers (alpha, beta, scales, depths)
    roles: dict[str, str]  #: parameter name -> the role the scheme gave it
    init: InitReport  #: what each parameter got (rule, initializer, std)

    def __getitem__(self, name: str) -> Any:
        return self.init[name]

    def table(self) -> str:
        """The scheme, a table of its constants, then a table of its parameters: name, role, initializer, std.

        Both tables have a header (berry's one table formatter, :func:`berry._format.format_table`).
        """
        lines = [f"{self.scheme} (preset {self.preset})" if self.preset else self.scheme]
        if self.constants:
            constants = format_table(list(self.constants.items()), ("constant", "value"))
            lines += ["  " + line for line in constants.splitlines()] + [""]
        rows = [(p.name, self.roles.get(p.name, "-"), p.init, "" if p.std is None else f"{p.std:.4g}") for p in self.init]
        lines += ["  " + line for line in format_table(rows, ("parameter", "role", "init", "std")).splitlines()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def apply_rules(
    model: nn.Module, scheme_rules: SchemeRules, rules: RulesLike, seed: int, *, respect_no_reinit: bool = True
) -> InitReport:
    """Apply ``scheme_rules`` (exact names first), then the user's ``rules``, then berry's defaults.

    ``respect_no_reinit=False`` lets a scheme overwrite parameters marked ``_no_reinit`` (its own).
    """
    extra: list[Any] = []
    if isinstance(rules, Mapping):
        extra = list(rules.items())
    elif rules is not None:
        extra = list(rules)
    # Fixup-style multipliers named "scale" start at 1 (berry's defaults would warn about them).
    return init_model(
        model, [*scheme_rules, *extra, ("*:scale", "ones")], seed=seed, respect_no_reinit=respect_no_reinit
    )
