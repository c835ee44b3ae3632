"""The rules berry follows to choose every parameter's initialization from the propagated moments.

Targets (the second moment each op's output should have):

* every weight use: ``target`` (default 1), so each layer's output keeps unit
  second moment at its actual input statistics (He et al. 2015, generalized to
  any activation by the exact Gaussian expectations of the elementwise chain it
  reads);
* a residual branch (``x + f(x)``) of a stream with ``L`` additions:
  ``c q_0 / L`` at the branch's last scale (its knob), with ``q_0`` the second
  moment entering the stream and ``c = residual_growth`` (default 1), so the
  stream grows from ``q_0`` to at most ``(1 + c) q_0`` whatever the depth
  (the ``1/sqrt(L)`` branch scaling of Hanin & Rolnick 2018 and of GPT-2,
  Radford et al. 2019, derived for the stream's actual scale). Other
  schemes: ``residual="gpt2" | "deepnorm" | "t-fixup" | "fixup" | "none"``;
* a projection shortcut: the stream's second moment at the block's input;
* summed embeddings (token + position): equal shares, or the tied one's scale;
* a language-model head (output width = an embedding's vocabulary, tied or
  not): logits of std ``logit_std`` (default 0.2), so the initial loss is
  ``ln(V) + logit_std^2 / 2`` (0.02 nats above ``ln V``);
* a plain stack of ``D >= 4`` layers with one activation (a deep MLP): the
  operating point, gain and bias of :func:`_stack_point` (the edge of chaos of
  Schoenholz et al. 2017 where its fixed point is stable, else the largest
  stable gain), hidden weights orthogonal where criticality and stability
  conflict (GELU, SiLU);
* with ``mup``: the readout's std ``1/fan_in`` and zero query projections
  (Yang et al. 2021).

A weight's scale is chosen from its input's predicted second moment only
where berry can vouch for it: within ``PLAUSIBLE`` (``[1e-6, 1e6]``) times the
target, or measured on the example inputs themselves. Outside (an op that is
not modelled, ``exp`` of a wide non-Gaussian signal, a chain that vanished)
the op is treated as one berry does not understand: its parameters are kept
as the model made them, it is listed in ``report.not_understood``, and its
output is taken to have its target second moment (a note says so), so the
error does not spread to the rest of the plan.

Defaults that need no propagation: biases zero (unless critical), norm weights
one and norm biases zero (a branch-ending norm's weight is its branch's
knob), recurrent matrices orthogonal per gate (Saxe et al. 2014) with input
weights chosen so the gates' pre-activations have unit second moment.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from berry._validation import check_bool, check_choice, check_positive
from berry.torch.auto._chain import chain_moments
from berry.torch.auto._structure import Structure, WeightUse

if TYPE_CHECKING:
    from berry.torch.auto._propagate import Forward, Stat

__all__ = ["RESIDUAL_SCHEMES", "Decision", "Options", "Policy", "StackInfo"]

RESIDUAL_SCHEMES = ("auto", "gpt2", "deepnorm", "t-fixup", "fixup", "none")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
#: A weight's predicted input second moment, as a multiple of the target, that a scale may be chosen from.
#: Every weight berry chooses aims its output at about the target (a residual branch, a head: less), so a
#: prediction beyond this band comes from ops the propagation does not model well (the guard of
#: :meth:`Policy.vouch`), not from the model: the guessed scale would be off by the same factor.
PLAUSIBLE = (1e-6, 1e6)


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything :func:`berry.torch.auto_init` lets you choose (see :mod:`berry.torch.auto._policy`)."""

    target: float = 1.0
    residual: str = "auto"
    residual_growth: float = 1.0
    logit_std: float = 0.2
    output_std: float | None = None
    critical: bool = True
    distribution: str = "normal"
    recurrent_gain: float = 1.0
    mup: bool = False  #: muP's readout (std 1/fan_in) and zero query projections (Yang et al. 2021)

    def __post_init__(self) -> None:
        check_positive("target", self.target)
        check_positive("residual_growth", self.residual_growth)
        check_positive("logit_std", self.logit_std)
        check_positive("recurrent_gain", self.recurrent_gain)
        if self.output_std is not None:
            check_positive("output_std", self.output_std)
        object.__setattr__(self, "critical", check_bool("critical", self.critical))
        object.__setattr__(self, "mup", check_bool("mup", self.mup))
        object.__setattr__(self, "residual", check_choice("residual", self.residual, RESIDUAL_SCHEMES))
        object.__setattr__(self, "distribution", check_choice("distribution", self.distribution, DISTRIBUTIONS))


@dataclasses.dataclass
class Decision:
    """What one parameter gets, and why."""

    name: str
    init: Any  #: the value of ``report.rules[name]``
    std: float | None
    role: str
    reason: str
    node: int | None = None  #: the op it serves (its output's statistics are the prediction)
    fan_in: float | None = None
    target: float | None = None


@dataclasses.dataclass
class StackInfo:
    """A plain stack and the operating point chosen for it."""

    uses: list[int]
    activation: str
    depth: int
    chi_at_target: float  #: chi = q E[f'^2] / E[f^2] with the unit-preserving gain and no bias, at the target
    q_star: float  #: operating point: second moment of the stack's pre-activations
    bias_var: float  #: sigma_b^2 of the biases feeding the activation
    chi: float  #: chi at the chosen point (1: critical)
    slope: float = 1.0  #: slope of the q-map at the chosen point (> 1: the fixed point is unstable)
    convex: bool = False  #: E' > D2: criticality and stability conflict (GELU, SiLU); hidden weights orthogonal


#: Plain stacks shorter than this keep the target and no bias: their chi^depth stays near 1.
_MIN_STACK_DEPTH = 4
#: The q-map must contract deviations up to this factor above its fixed point (its secant slope <= 1).
_SECANT = 2.0
_UP = 4


def _stack_point(composite: Any, depth: int, target: float, has_bias: bool) -> StackInfo:
    """The operating point of a plain stack of ``depth`` layers with activation ``composite``.

    With ``a`` the weight gain (``sigma_w^2 fan_in``) and, at pre-activations
    ``N(0, q)``, ``E2 = E f^2``, ``D2 = E f'^2`` and ``E' = dE2/dq``: the
    fixed point is ``q = a E2 + sigma_b^2``, the gradient changes by
    ``chi = a D2`` per layer (Schoenholz et al. 2017) and a deviation of the
    signal's scale by ``slope = a E'`` (the q-map's slope, Poole et al. 2016:
    above 1 the fixed point is unstable and finite-width noise grows layer
    after layer until the signal explodes). The gain is
    ``a = min(q / E2, 1 / D2, 1 / E')``: the edge of chaos ``chi = 1`` where
    its fixed point is stable (tanh, ReLU: ``E' <= D2``), else the largest
    stable gain (GELU, SiLU: their mean makes the q-map convex, ``E' > D2``,
    and no gain gives both; an exploding signal is worse than a gradient that
    shrinks by ``chi < 1`` per layer). The bias variance closes the fixed
    point. The operating point ``q`` is the target unless a larger one (by
    quarter octaves, up to twice the target) brings ``chi`` nearer 1: larger
    pre-activations bring GELU and SiLU nearer their homogeneous (ReLU-like)
    regime. Without biases ``a = q / E2`` is forced and ``q`` is chosen in
    ``[target / 4, 2 target]`` to keep ``depth * max(ln slope, |ln chi|)`` least.
    """

    def point(q: float) -> tuple[float, float, float, float]:
        moments = chain_moments(composite, 0.0, q, 0.0)
        e2, d2 = moments.q, moments.d2
        step = 1e-3 * q
        slope_e = (chain_moments(composite, 0.0, q + step, 0.0).q - chain_moments(composite, 0.0, q - step, 0.0).q) \
            / (2.0 * step)
        secant = (chain_moments(composite, 0.0, _SECANT * q, 0.0).q - e2) / ((_SECANT - 1.0) * q)
        a = q / e2
        if has_bias:
            a = min(a, 1.0 / d2, 1.0 / max(slope_e, secant, 1e-300))
        return a, q - a * e2, a * d2, a * slope_e

    def cost(q: float) -> float:
        _, _, chi, slope = point(q)
        return depth * max(math.log(max(slope, 1.0)), abs(math.log(chi)))

    moments = chain_moments(composite, 0.0, target, 0.0)
    chi_target = target * moments.d2 / moments.q
    grid = [target * 2.0 ** (k / 4.0) for k in range(0, _UP + 1)] if has_bias else \
        sorted((target * 2.0 ** (k / 4.0) for k in range(-8, 5)), key=lambda q: abs(math.log(q / target)))
    costs = [cost(q) for q in grid]
    chosen = grid[min(range(len(grid)), key=lambda i: (round(costs[i], 9), i))]
    _, bias_var, chi, slope = point(chosen)
    convex = slope > chi * (1.0 + 1e-9)  # slope / chi = E' / D2 whatever the gain
    return StackInfo([], composite.description, depth, chi_target, chosen, max(bias_var, 0.0), chi, slope, convex)


class Policy:
    """Chooses scales during a :class:`~berry.torch.auto._propagate.Forward` pass; remembers across passes."""

    def __init__(self, structure: Structure, options: Options, input_stats: dict[int, Stat]) -> None:
        self.structure = structure
        self.options = options
        self.input_stats = input_stats
        self.decisions: dict[str, Decision] = {}
        self.pins: dict[str, float] = {}  #: tied parameters' std, from the previous pass
        self.next_pins: dict[str, float] = {}
        self.stacks: dict[int, StackInfo] = {}  #: use node -> its stack
        self.orthogonal: set[int] = set()  #: hidden layers of deep plain stacks: orthogonal weights
        self._stacks_ready = False
        self.lm_heads = self._lm_heads()
        self.queries = _query_projections(structure) if options.mup else set()
        self.guarded: set[str] = set()  #: parameters kept because their input statistics are implausible
        self.distrusted: set[int] = set()  #: weight uses whose input statistics were replaced by the target

    def start_pass(self) -> None:
        self.decisions = {}
        self.next_pins = {}
        self.guarded = set()
        self.distrusted = set()

    # ---------------------------------------------------------------------------------- helpers
    def _decide(self, name: str, init: Any, std: float | None, role: str, reason: str, node: int | None = None,
                fan_in: float | None = None, target: float | None = None) -> None:
        if std is not None and not math.isfinite(std):  # no rule can hold it: say where it comes from
            raise ValueError(
                f"cannot choose a scale for {name}: {reason} gives std {std:g}. A second moment that is not finite "
                "comes from an example input holding inf or nan values (an additive -inf mask, ...): give such an "
                "input as a meta tensor or an InputSpec (its values are then not measured)")
        if name not in self.decisions:
            self.decisions[name] = Decision(name, init, std, role, reason, node, fan_in, target)

    def _spec(self, std: float) -> Any:
        if self.options.distribution == "normal":
            return {"std": float(std)}
        return {"distribution": self.options.distribution, "std": float(std)}

    def _lm_heads(self) -> set[int]:
        """Heads whose width is the vocabulary of an embedding that reads the model's token ids."""
        structure = self.structure
        vocabularies = {structure.graph.nodes[use.node].inputs[-1] for use in structure.uses if use.kind == "embedding"}
        sizes = {structure.graph.nodes[i].shape[0] for i in vocabularies if structure.graph.nodes[i].shape}
        embedding_params = {use.param for use in structure.uses if use.kind == "embedding"}
        heads = set()
        for node in structure.heads:
            use = structure.use_of[node]
            width = structure.graph.nodes[node].shape[-1] if structure.graph.nodes[node].shape else 0
            if use.param in embedding_params or (use.kind in ("linear", "matmul") and width in sizes and width > 1):
                heads.add(node)
        return heads

    # ---------------------------------------------------------------------------------- targets
    def target_for(self, forward: Forward, node: int, role: str | None) -> tuple[float, str]:
        """The second moment the op at ``node`` should produce, and why."""
        options = self.options
        structure = self.structure
        if role == "in_proj":
            return options.target, "attention projection: unit second moment"
        if node in self.lm_heads:
            return options.logit_std**2, (f"language-model head: logits std {options.logit_std:g}, initial loss "
                                          f"ln(V) + {options.logit_std**2 / 2:.3g}")
        knob = structure.knob_of.get(node)
        if knob is not None:
            how, add_index = knob
            add = structure.residual[add_index]
            if how == "branch":
                return self._branch_target(forward, add_index)
            if how == "shortcut" and add.common is not None:
                return forward.stat(add.common).q, "projection shortcut: keeps the stream's second moment"
            if how == "merge":
                return self._merge_target(forward, node, add_index)
        if node in structure.heads:
            if options.output_std is not None:
                return options.output_std**2, f"output layer: std {options.output_std:g} (output_std)"
            return options.target, "output layer: unit second moment"
        info = self.stacks.get(node)
        if info is not None:
            return info.q_star, (f"plain stack of {info.depth} {info.activation} layers: operating point q*="
                                 f"{info.q_star:.3g}, chi {info.chi:.3g}, q-map slope {info.slope:.3g}")
        return options.target, "unit second moment"

    def _branch_target(self, forward: Forward, add_index: int) -> tuple[float, str]:
        structure = self.structure
        options = self.options
        add = structure.residual[add_index]
        assert add.stream is not None
        stream = structure.streams[add.stream]
        length = stream.chain or len(stream.adds)
        q0 = forward.stat(stream.source).q if forward.stat(stream.source).kind == "data" else options.target
        scheme = options.residual
        if scheme == "auto":
            c = options.residual_growth
            where = f"{add.position}/{length}" if length == len(stream.adds) else f"of a chain of {length} (post-norm)"
            return c * q0 / length, (f"residual branch {where}: adds {c:g}/{length} of the stream's {q0:.3g} "
                                     f"(stream grows at most {1 + c:g}x)")
        if scheme == "none":
            return q0, "residual branch: unit ratio to the stream (residual='none')"
        if scheme == "gpt2":
            return q0 / length, f"residual branch: GPT-2's 1/sqrt(2N) scaling, N = {length // 2 or 1} blocks"
        if scheme == "fixup":
            return 0.0, f"residual branch: Fixup's zero-initialized last layer, L = {length} branches"
        # The encoder constants of berry.torch.schemes.deepnorm_constants / t_fixup_scales, written out here:
        # the schemes apply their rules through init_model, whose defaults are this planner (no import cycle).
        # tests/test_init_model_defaults.py checks that the two agree.
        layers = max(length // 2, 1)
        if scheme == "deepnorm":
            beta = (8 * layers) ** -0.25  # Wang et al. 2022 (DeepNet), encoder-only beta
            return q0 * beta**4, f"residual branch: DeepNorm beta = (8N)^(-1/4) = {beta:.4g} on value and output"
        scale = 0.67 * layers**-0.25  # Huang et al. 2020 (T-Fixup), encoder scale
        return q0 * scale**4, f"residual branch: T-Fixup 0.67 N^(-1/4) = {scale:.4g} on value and output"

    def _merge_target(self, forward: Forward, node: int, add_index: int) -> tuple[float, str]:
        add = self.structure.residual[add_index]
        fixed = []
        for operand in add.operands:
            knob = _knob_of_operand(self.structure, operand, add.merge_knobs)
            if knob == node:
                continue
            use = self.structure.use_of.get(knob) if knob is not None else None
            if knob is None or (use is not None and use.param in self.pins) or operand < node:
                if forward.stats[operand] is not None:
                    fixed.append(forward.stats[operand].q)  # type: ignore[union-attr]
        if fixed:
            return sum(fixed) / len(fixed), "summed with another signal: the same second moment as it"
        count = max(len(add.operands), 1)
        return self.options.target / count, f"one of {count} summed signals: an equal share of the target"

    # ---------------------------------------------------------------------------------- stacks
    def _prepare_stacks(self, forward: Forward) -> None:
        """Operating point, weight gain and bias of every plain stack deep enough for them to matter."""
        self._stacks_ready = True
        options = self.options
        structure = self.structure
        for stack in structure.stacks:
            depth = len(stack) - 1
            if depth < _MIN_STACK_DEPTH or not options.critical:
                continue
            tops = [structure.chain_between.get(u) for u in stack[:-1]]
            if any(t is None for t in tops):
                continue
            composites = [forward.composite(t, structure.leaf[t]) for t in tops if t is not None]
            if len({c.signature for c in composites}) != 1:
                continue
            composite = composites[0]
            if any(math.isnan(v) for v in composite.constants.values()):
                continue
            has_bias = all(structure.use_of[u].bias is not None for u in stack[:-1])
            info = _stack_point(composite, depth, options.target, has_bias)
            info.uses = list(stack)
            for use in stack[:-1]:
                self.stacks[use] = info
            if info.convex:  # dynamical isometry cuts the finite-width noise the marginal fixed point lets grow
                self.orthogonal.update(stack[1:-1])

    # ---------------------------------------------------------------------------------- parameters
    def weight_scales(self, forward: Forward, use: WeightUse, x: Stat | None, role: str | None = None
                      ) -> tuple[float, float]:
        """(weight std, bias std) for a weight use whose input has statistics ``x``."""
        if not self._stacks_ready:
            self._prepare_stacks(forward)
        options = self.options
        target, reason = self.target_for(forward, use.node, role)
        info = self.stacks.get(use.node)
        bias_var = info.bias_var if info is not None and use.node not in self.structure.heads else 0.0
        if use.kind == "embedding":
            sigma = math.sqrt(target)
            reason = f"embedding: output second moment {target:.3g} ({reason})"
        else:
            assert x is not None
            sigma = math.sqrt(max(target - bias_var, 0.0) / max(use.fan_in * x.q, 1e-300))
            reason = f"fan_in {use.fan_in:g}, input second moment {x.q:.4g}: {reason}"
        name = use.param
        tied_head = use.node in self.structure.heads and len(self.structure.param_uses.get(name, [])) > 1
        if options.mup and not tied_head and use.kind != "embedding":
            if use.node in self.structure.heads:  # muP's readout (Yang et al. 2021, Table 3): variance 1/fan_in^2
                sigma = 1.0 / use.fan_in
                reason = f"muP readout: std 1/fan_in = {sigma:.4g} (Yang et al. 2021)"
            elif use.node in self.queries:
                sigma = 0.0
                reason = "muP: query projection zero (Yang et al. 2021), attention starts uniform"
        if tied_head and use.node not in self.distrusted:
            self.next_pins[name] = sigma
        if name in self.pins and not tied_head:
            sigma = self.pins[name]
            reason = "tied: the scale its output (head) role needs"
        elif name in self.decisions and self.decisions[name].std is not None and not tied_head:
            sigma = float(self.decisions[name].std)  # type: ignore[arg-type]
            reason = "shared: the scale chosen at its first use"
        if tied_head and name in self.pins:
            reason = "tied: " + reason
        if (options.residual == "fixup" and target == 0.0) or sigma == 0.0:
            self._decide(name, "zeros", 0.0, "weight", reason, use.node, use.fan_in, target)
        elif use.node in self.orthogonal and name not in self.decisions and self._square(use):
            gain = sigma * math.sqrt(use.fan_in)
            self._decide(name, {"init": "orthogonal", "gain": float(gain)}, sigma, "weight",
                         reason + "; orthogonal (dynamical isometry, Saxe et al. 2014, Pennington et al. 2017: "
                         "less finite-width noise through the stack)", use.node, use.fan_in, target)
        else:
            self._decide(name, self._spec(sigma), sigma, "embedding" if use.kind == "embedding" else "weight", reason,
                         use.node, use.fan_in, target)
        if name in self.decisions and self.decisions[name].std == 0.0:
            sigma = 0.0
        sigma_b = math.sqrt(bias_var)
        if use.bias is not None:
            if bias_var > 0:
                self._decide(use.bias, self._spec(sigma_b), sigma_b, "bias",
                             f"bias of a plain stack: sigma_b^2 = q* - a E[f^2] = {bias_var:.4g} closes the "
                             "fixed point (Schoenholz et al. 2017)", use.node)
            else:
                self._decide(use.bias, "zeros", 0.0, "bias", "bias: zeros", use.node)
        return sigma, sigma_b

    def vouch(self, forward: Forward, use: WeightUse, x: Stat) -> Stat:
        """The input statistics a weight's scale may be chosen from: ``x``, or the target where ``x`` is implausible.

        ``x`` is implausible when its second moment is not finite or lies
        outside ``PLAUSIBLE`` times the target, unless it is the statistics of
        an example input itself (measured, not predicted). The parameter (and
        its bias) is then kept as the model made it, the op is listed in
        ``not_understood``, and the target second moment replaces ``x``: the
        caller's output prediction becomes the op's target, so the error does
        not spread. A parameter whose scale was chosen at another use keeps
        it; a guarded one stays kept at its other uses.
        """
        from berry.torch.auto._propagate import Stat

        name = use.param
        target = self.options.target
        low, high = PLAUSIBLE
        given = _given_input(self.structure, use.input)
        if given is not None and not 0 < x.q < math.inf:  # measured, so no guess can stand in for it
            label = self.structure.graph.nodes[given].name or "an example input"
            raise ValueError(
                f"example input {label} read by {name} has second moment {x.q:g}: a weight's scale is chosen "
                "from its input's second moment, which must be finite and > 0; pass representative inputs "
                "(finite, not all zeros), or an InputSpec (shape, dtype, mean, std)")
        plausible = (low * target <= x.q <= high * target and math.isfinite(x.q)) or given is not None
        if plausible and name not in self.guarded:
            return x
        out, _ = self.target_for(forward, use.node, None)
        assumed = f"its output is taken to have the target second moment {out:.3g}"
        if name in self.guarded:  # kept at an earlier use: whatever this use sees, the weight keeps its values
            forward.note(use.node, f"{name} is kept (not trusted at another use): {assumed}")
        else:
            doubt = (f"input second moment predicted as {x.q:.1e}, outside [{low:g}, {high:g}] x the target "
                     f"{target:g}: the ops before it are not modelled well enough to choose a scale")
            tied_head = use.node in self.structure.heads and len(self.structure.param_uses.get(name, [])) > 1
            if name in self.decisions or (name in self.pins and not tied_head):
                self.structure.unknown.setdefault(use.node, f"{doubt}; {name} keeps the scale chosen at its other use")
                forward.note(use.node, f"{doubt}: {assumed}")
            else:
                self.guarded.add(name)
                self._decide(name, "keep", None, "kept", f"{doubt}: left as the model made it", use.node,
                             use.fan_in)
                if use.bias is not None:
                    self._decide(use.bias, "keep", None, "kept", f"bias of {name}, which is kept: left as the model "
                                                                 "made it", use.node)
                kept = f"{name} and its bias" if use.bias is not None else name
                self.structure.unknown.setdefault(use.node, f"{doubt}; {kept} kept")
                forward.note(use.node, f"{doubt}; {kept} left as the model made {'them' if use.bias else 'it'}; "
                                       f"{assumed}")
        self.distrusted.add(use.node)
        return Stat("data", q=target, m=0.0, s=0.0, gauss=True, axes=x.axes)

    def _square(self, use: WeightUse) -> bool:
        shape = tuple(self.structure.graph.parameter_objects[use.param].shape)
        return use.kind == "linear" and len(shape) == 2 and shape[0] == shape[1]

    def norm_affine(self, forward: Forward, index: int, bound: dict[str, Any], base_q: float) -> tuple[float, float]:
        """(gamma, beta) constants of a norm: ones and zeros, or the branch's scale at a branch-ending norm."""
        from berry.torch.auto._record import Ref

        structure = self.structure
        weight, bias = bound.get("weight"), bound.get("bias")
        gamma, reason = 1.0, "norm weight: ones"
        if index in structure.knob_of:
            target, why = self.target_for(forward, index, None)
            if isinstance(weight, Ref) and structure.nature[weight.index] == "param":
                gamma = math.sqrt(max(target, 0.0) / max(base_q, 1e-300))
                reason = f"branch-ending norm weight {gamma:.4g}: {why}"
            else:
                forward.note(index, "a residual branch ends in a norm without weight: its scale is not set")
        if isinstance(weight, Ref) and structure.nature[weight.index] == "param":
            name = structure.param_root[weight.index]
            self._decide(name, float(gamma) if gamma != 1.0 else "ones", None, "norm weight", reason, index)
            gamma = self.constant(name)
        if isinstance(bias, Ref) and structure.nature[bias.index] == "param":
            self._decide(structure.param_root[bias.index], "zeros", None, "norm bias", "norm bias: zeros", index)
        return gamma, 0.0

    def constant(self, name: str) -> float:
        """The constant a parameter used elementwise (or as a norm's affine) starts at."""
        decision = self.decisions.get(name)
        if decision is not None:
            init = decision.init
            if init == "ones":
                return 1.0
            if init == "zeros":
                return 0.0
            if isinstance(init, (int, float)) and not isinstance(init, bool):
                return float(init)
            return 0.0
        hows = {how for how, _ in self.structure.param_uses.get(name, [])}
        if hows and hows <= {"add"}:
            self._decide(name, "zeros", None, "additive", "added to data: zeros (neutral)")
            return 0.0
        if hows and hows <= {"mul", "norm_weight"}:
            self._decide(name, "ones", None, "multiplier", "multiplies data: ones (neutral); the weights before "
                                                          "it set the scale")
            return 1.0
        return 1.0

    def data_param(self, forward: Forward, name: str, node: int, peers: list[Stat]) -> float:
        """Std of a parameter that enters the data itself (a class token, a learned position table)."""
        qs = [p.q for p in peers if p.kind == "data"]
        q = sum(qs) / len(qs) if qs else self.options.target
        sigma = math.sqrt(q)
        self._decide(name, self._spec(sigma), sigma, "data",
                     "joins data: the same second moment as what it is added to or concatenated with", node)
        return float(self.decisions[name].std or sigma)

    def record(self, name: str, init: Any, std: float | None, role: str, reason: str, node: int) -> None:
        """Record a parameter chosen by a module rule (:mod:`~berry.torch.auto._rnn`, attention modules)."""
        self._decide(name, init, std, role, reason, node)

    def input_stat(self, forward: Forward, index: int) -> Stat:
        return self.input_stats[index]


def _given_input(structure: Structure, index: int | None) -> int | None:
    """The example input node ``index`` holds (through copies and reshapes), or ``None``: its statistics were measured."""
    for _ in range(64):
        if index is None:
            return None
        if index in structure.graph.input_nodes:
            return index
        data = structure.data_inputs(index)
        if structure.categories[index] not in ("alias", "shape", "dropout") or len(data) != 1:
            return None
        index = data[0]
    return None


def _query_projections(structure: Structure) -> set[int]:
    """Weight uses that feed only the query of a scaled-dot-product attention (not a packed q/k/v projection)."""
    from berry.torch.auto._ops import bind
    from berry.torch.auto._record import Ref

    found: set[int] = set()
    for node in structure.graph.nodes:
        if node.op != "scaled_dot_product_attention":
            continue
        query = bind(node).get("query")
        current = query.index if isinstance(query, Ref) else None
        while current is not None and structure.categories[current] in ("alias", "shape"):
            data = structure.data_inputs(current)
            current = data[0] if len(data) == 1 else None
        if current is not None and current in structure.use_of:
            found.add(current)
    return found


def _knob_of_operand(structure: Structure, operand: int, knobs: tuple[int, ...]) -> int | None:
    from berry.torch.auto._structure import _knob

    knob = _knob(structure, operand)
    return knob if knob in knobs else None
