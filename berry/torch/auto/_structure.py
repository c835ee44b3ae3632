"""The structure of a recorded graph: what is data, which parameter each op uses, residual streams, heads.

Everything here depends only on the graph, not on any scale:

* each node's *nature*: ``data`` (a random activation), ``index`` (integer
  data: token ids), ``point`` (a reduction over features, concentrated at its
  mean: ``x.pow(2).mean(-1)``), ``const``, ``param`` (a parameter or a view of
  one), ``pcomp`` (computed from parameters only), ``loss``;
* elementwise *chains*: the single leaf each elementwise data node is a
  function of (``x * sigmoid(1.702 * x)`` has the leaf ``x``);
* *weight uses*: every op that multiplies data by a parameter (linear,
  convolutions of any kind, embeddings, ``x @ W``), with its true fans;
* *residual additions*: ``x + f(x)`` where ``x`` is the skip (an ancestor of
  the branch, or the side with fewer weight layers when both sides have
  some: a projection shortcut), grouped into *streams* (additions whose skips
  follow each other through elementwise and shape ops, not through a norm);
* *knobs*: the op at the end of each residual branch whose scale sets the
  branch's contribution (the last weight use, or the last norm's affine weight);
* *heads*: weight uses whose output reaches a model output without another weight;
* *ties*: parameters used by more than one op;
* *plain stacks*: chains of weight uses linked by one repeated activation and
  nothing else (a deep MLP), where the operating point matters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from berry.torch.auto import _ops
from berry.torch.auto._ops import bind, category, refs
from berry.torch.auto._record import Graph, Node, Ref

__all__ = ["Structure", "WeightUse", "analyze"]

#: Ops through which a residual stream continues from one addition to the next.
_STREAM_CARRIERS = frozenset({"alias", "shape", "dropout", "elementwise"})
#: Ops a residual branch may end with after its knob without changing what the knob controls.
_BRANCH_TAIL = frozenset({"alias", "shape", "dropout"})


@dataclasses.dataclass
class WeightUse:
    """One op multiplying data by a parameter."""

    node: int
    ordinal: int
    param: str
    kind: str  #: "linear", "conv", "conv_transpose", "embedding", "matmul", "bilinear"
    input: int | None  #: the data (or index) input
    bias: str | None
    fan_in: float  #: effective number of summed inputs per output element
    fan_out: float  #: effective number of outputs each input element feeds
    groups: int = 1


@dataclasses.dataclass
class ResidualAdd:
    """``skip + branch`` (or a merge of two parallel paths when ``skip`` is None)."""

    node: int
    skip: int | None
    branch: int | None
    operands: tuple[int, ...]
    stream: int | None = None
    position: int = 0  #: 1-based position of the addition in its stream
    knob: int | None = None  #: node whose scale sets the branch (weight use, norm, attention)
    shortcut_knobs: tuple[int, ...] = ()  #: projection-shortcut knobs on the skip side
    common: int | None = None  #: where skip and branch part (the block's input)
    merge_knobs: tuple[int, ...] = ()  #: for a merge (no skip): the knob of each operand that has one
    parallel: int | None = None  #: ``x + (f(x) + g(x))``: the sum of parallel branches whose other branch it adds


@dataclasses.dataclass
class Stream:
    """A residual stream: additions whose skips carry the previous addition's output."""

    index: int
    adds: list[int]  #: nodes of its additions, in order
    source: int  #: the skip operand of the first addition (the stream's input)
    follows: int | None = None  #: the stream whose last addition, normalized, is this one's source (post-LN)
    chain: int = 0  #: additions in the whole chain of streams linked through norms (its own if none)


@dataclasses.dataclass
class Structure:
    """The graph with its structural analysis (see the module docstring)."""

    graph: Graph
    users: list[list[int]]
    categories: list[str]
    nature: list[str]
    param_root: dict[int, str]
    leaf: dict[int, int]  #: elementwise data node -> its chain's leaf (itself when it is a leaf)
    alias_root: list[int]
    uses: list[WeightUse]
    use_of: dict[int, WeightUse]
    param_uses: dict[str, list[tuple[str, int]]]  #: param -> [(how, node)]: "weight", "bias", "mul", "add", ...
    ancestors: list[int]  #: bitset of weight-use ordinals upstream of each node (itself included)
    residual: dict[int, ResidualAdd]
    streams: list[Stream]
    knob_of: dict[int, tuple[str, int]]  #: knob node -> ("branch" | "shortcut", addition node)
    heads: list[int]  #: weight-use nodes whose output reaches a model output without another weight
    loss_inputs: list[int]
    stacks: list[list[int]]  #: plain stacks: weight-use nodes linked by one activation chain each
    chain_between: dict[int, int]  #: weight-use node -> the chain top that feeds the next use of its stack
    unknown: dict[int, str]  #: node -> why it is not understood
    random_bit: dict[int, int] = dataclasses.field(default_factory=dict)  #: fresh random op -> its ancestry bit

    def fresh(self, index: int) -> int:
        """The bit that marks ``index``'s output as a fresh zero-mean random signal (0 if it is not one)."""
        bit = self.random_bit.get(index)
        return 0 if bit is None else 1 << bit

    def data_inputs(self, index: int) -> list[int]:
        """The inputs of a node that carry data."""
        return [i for i in self.graph.nodes[index].inputs if self.nature[i] == "data"]


def analyze(graph: Graph) -> Structure:
    """The :class:`Structure` of a recorded graph."""
    nodes = graph.nodes
    users = graph.users()
    categories = [category(node) for node in nodes]
    nature: list[str] = ["none"] * len(nodes)
    param_root: dict[int, str] = {}
    alias_root = list(range(len(nodes)))
    unknown: dict[int, str] = {}
    for node in nodes:
        nature[node.index] = _nature(node, categories, nature, param_root, graph, unknown)
        if categories[node.index] == "alias" and node.inputs:
            alias_root[node.index] = alias_root[node.inputs[0]]

    uses: list[WeightUse] = []
    param_uses: dict[str, list[tuple[str, int]]] = {}
    for node in nodes:
        use = _weight_use(node, len(uses), categories, nature, param_root, nodes)
        if use is not None:
            uses.append(use)
            param_uses.setdefault(use.param, []).append(("weight", node.index))
            if use.bias:
                param_uses.setdefault(use.bias, []).append(("bias", node.index))
            continue
        for how, name in _other_param_uses(node, categories, nature, param_root, nodes):
            param_uses.setdefault(name, []).append((how, node.index))
    use_of = {use.node: use for use in uses}

    # Every op whose output is a fresh zero-mean random signal gets a bit: weight uses, attention modules,
    # recurrent modules, learned position tables. A node's ancestors are the bits of those upstream of it.
    random_bit = {use.node: use.ordinal for use in uses}
    for node in nodes:
        fresh_source = node.op == "multi_head_attention_forward" or categories[node.index] == "module" or (
            categories[node.index] == "param" and nature[node.index] == "data")
        if fresh_source and node.index not in random_bit:
            random_bit[node.index] = len(random_bit)
    ancestors = [0] * len(nodes)
    for node in nodes:
        bits = 0
        for i in node.inputs:
            bits |= ancestors[i]
        if node.index in random_bit:
            bits |= 1 << random_bit[node.index]
        ancestors[node.index] = bits

    leaf = _chain_leaves(nodes, categories, nature, alias_root)
    structure = Structure(graph, users, categories, nature, param_root, leaf, alias_root, uses, use_of, param_uses,
                          ancestors, {}, [], {}, [], [], [], {}, unknown, random_bit)
    structure.loss_inputs = [i for node in nodes if categories[node.index] == "loss"
                             for i in node.inputs[:1] if nature[i] == "data"]
    _residuals(structure)
    structure.heads = _heads(structure)
    _stacks(structure)
    return structure


# ------------------------------------------------------------------------------------------- natures
def _nature(node: Node, categories: list[str], nature: list[str], param_root: dict[int, str], graph: Graph,
            unknown: dict[int, str]) -> str:
    kind = categories[node.index]
    ins = [nature[i] for i in node.inputs]
    if kind == "input":
        return "data" if node.dtype.is_floating_point or node.dtype.is_complex else "index"
    if kind == "param":
        assert node.name is not None
        param_root[node.index] = node.name
        return "data" if _positional(node, graph) else "param"
    if kind in ("buffer", "const", "factory"):
        return "const"
    if kind == "part":
        parent = graph.nodes[node.inputs[0]]
        if parent.kind == "module":
            return "data"
        return nature[parent.index] if nature[parent.index] != "param" else "pcomp"
    if kind == "loss":
        return "loss"
    if kind == "weight" and node.op == "embedding" and "param" in ins:
        return "data"  # a table lookup, even at constant positions, is a random signal
    if "data" not in ins and "index" not in ins:
        if kind in ("alias", "shape", "split") and ins and ins[0] == "param":
            param_root[node.index] = param_root[node.inputs[0]]
            return "param"
        if "param" in ins or "pcomp" in ins:
            return "pcomp"
        if "point" in ins and kind in ("elementwise", "alias", "shape"):
            return "point"
        return "const"
    if kind == "reduce":
        return _reduce_nature(node, graph, nature)
    if "data" not in ins:  # integer data: token ids, comparisons, arange offsets
        if kind == "weight" and node.op == "embedding":
            return "data"
        return "index" if not node.dtype.is_floating_point else "data"
    if kind == "unknown":
        unknown[node.index] = f"op {node.op!r} is not one berry's propagation knows"
    if not node.dtype.is_floating_point:
        return "index"
    return "data"


def _positional(node: Node, graph: Graph) -> bool:
    """A parameter added to data that varies along a position axis: a learned positional embedding."""
    if len(node.shape) < 2 or all(size == 1 for size in node.shape[:-1]):
        return False
    frontier, final = [node.index], []
    while frontier:
        current = frontier.pop()
        users = [user for user in graph.nodes[current + 1:] if current in user.inputs]
        for user in users:
            if category(user) in ("shape", "alias"):
                frontier.append(user.index)
            else:
                final.append(user)
    return bool(final) and all(user.op in ("add", "sub") for user in final)


def _reduce_nature(node: Node, graph: Graph, nature: list[str]) -> str:
    """A reduction over features only is concentrated (a point); over positions it pools data."""
    source = graph.nodes[node.inputs[0]]
    bound = bind(node)
    dims = _ops.dims_of(bound.get("dim"), len(source.shape))
    if dims is None or len(dims) == len(source.shape):
        return "point"
    if not node.dtype.is_floating_point:
        return "index"
    return "data"  # refined by the propagation from the axes' labels (feature or position)


def _weight_use(node: Node, ordinal: int, categories: list[str], nature: list[str], param_root: dict[int, str],
                nodes: list[Node]) -> WeightUse | None:
    kind = categories[node.index]
    if kind not in ("weight", "matmul"):
        return None
    bound = bind(node)
    if kind == "weight":
        weight = bound.get("weight")
        if not isinstance(weight, Ref) or nature[weight.index] != "param":
            return None
        name = param_root[weight.index]
        data = bound.get("input", bound.get("input1"))
        data_index = data.index if isinstance(data, Ref) else None
        bias = bound.get("bias")
        bias_name = param_root.get(bias.index) if isinstance(bias, Ref) and nature[bias.index] == "param" else None
        wshape = nodes[weight.index].shape
        if node.op == "embedding":
            return WeightUse(node.index, ordinal, name, "embedding", data_index, None, 1.0, 0.0)
        if node.op == "linear":
            return WeightUse(node.index, ordinal, name, "linear", data_index, bias_name, float(wshape[-1]),
                             float(wshape[0]) if len(wshape) == 2 else 1.0)
        if node.op == "bilinear":
            return WeightUse(node.index, ordinal, name, "bilinear", data_index, bias_name,
                             float(wshape[1] * wshape[2]), float(wshape[0]))
        if data_index is None:
            return None
        fan_in, fan_out, groups = _ops.conv_fans(node, nodes[data_index].shape, wshape)
        conv_kind = "conv_transpose" if node.op.startswith("conv_transpose") else "conv"
        return WeightUse(node.index, ordinal, name, conv_kind, data_index, bias_name, fan_in, fan_out, groups)
    # matmul family: one operand a parameter (view), the other data; addmm's added input a bias when a parameter
    bias_name = None
    args = node.args
    if node.op in ("addmm", "baddbmm", "addmv") and args and isinstance(args[0], Ref) and nature[args[0].index] == "param":
        bias_name, args = param_root[args[0].index], args[1:]
    operands = [i for i in refs(args) if nature[i] in ("param", "data")]
    params = [i for i in operands if nature[i] == "param"]
    datas = [i for i in operands if nature[i] == "data"]
    if len(params) != 1 or len(datas) != 1 or node.op == "einsum":
        return _einsum_use(node, ordinal, nature, param_root, nodes) if node.op == "einsum" else None
    weight, data = params[0], datas[0]
    wshape, dshape = nodes[weight].shape, nodes[data].shape
    if len(wshape) < 1 or not dshape:
        return None
    ordered = [i for i in refs(args) if i in (weight, data)]
    if node.op in ("addmm", "baddbmm", "addmv"):
        ordered = ordered[-2:]
    if ordered and ordered[0] == data:  # data @ W: contraction over W's rows
        fan_in = float(dshape[-1])
        fan_out = float(wshape[-1]) if len(wshape) >= 2 else 1.0
    else:  # W @ data
        fan_in = float(wshape[-1])
        fan_out = float(wshape[-2]) if len(wshape) >= 2 else 1.0
    return WeightUse(node.index, ordinal, param_root[weight], "matmul", data, bias_name, fan_in, fan_out)


def _einsum_use(node: Node, ordinal: int, nature: list[str], param_root: dict[int, str],
                nodes: list[Node]) -> WeightUse | None:
    if not node.args or not isinstance(node.args[0], str):
        return None
    equation = node.args[0].replace(" ", "")
    operands = [v for v in node.args[1:] if isinstance(v, Ref)]
    if len(operands) == 1 and isinstance(node.args[1], (list, tuple)):
        operands = [v for v in node.args[1] if isinstance(v, Ref)]
    if "->" not in equation or "..." in equation or len(operands) != 2:
        return None
    inputs, output = equation.split("->")
    terms = inputs.split(",")
    if len(terms) != 2:
        return None
    kinds = [nature[r.index] for r in operands]
    if sorted(kinds) != ["data", "param"]:
        return None
    w_pos = kinds.index("param")
    sizes: dict[str, int] = {}
    for term, ref in zip(terms, operands, strict=True):
        for letter, size in zip(term, nodes[ref.index].shape, strict=False):
            sizes[letter] = int(size)
    w_term, d_term = terms[w_pos], terms[1 - w_pos]
    contracted = [c for c in w_term if c in d_term and c not in output]
    produced = [c for c in w_term if c not in d_term and c in output]
    fan_in = float(_product(sizes[c] for c in contracted))
    fan_out = float(_product(sizes[c] for c in produced))
    return WeightUse(node.index, ordinal, param_root[operands[w_pos].index], "matmul", operands[1 - w_pos].index,
                     None, fan_in, fan_out)


def _product(values: Any) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _other_param_uses(node: Node, categories: list[str], nature: list[str], param_root: dict[int, str],
                      nodes: list[Node]) -> list[tuple[str, str]]:
    """How a node that is not a weight use uses parameters: norm affine, multiplier, additive, data, ..."""
    found: list[tuple[str, str]] = []
    kind = categories[node.index]
    bound = bind(node)
    for i in dict.fromkeys(refs(node.args) + refs(node.kwargs)):
        if nature[i] != "param":
            continue
        name = param_root[i]
        if kind == "norm":
            how = "norm_weight" if bound.get("weight") == Ref(i) else "norm_bias" if bound.get("bias") == Ref(i) \
                else "other"
        elif kind == "elementwise" and node.op in ("mul", "div") and i != _first_ref(node, nature, "data"):
            how = "mul" if not (node.op == "div" and node.args and node.args[0] == Ref(i)) else "other"
        elif kind == "elementwise" and node.op in ("add", "sub", "rsub"):
            how = "add"
        elif kind in ("concat", "elementwise", "shape", "alias", "attention", "matmul"):
            how = "data" if kind in ("concat",) else ("attention" if kind == "attention" else "other")
        else:
            how = "other"
        found.append((how, name))
    return found


def _first_ref(node: Node, nature: list[str], wanted: str) -> int | None:
    for i in refs(node.args):
        if nature[i] == wanted:
            return i
    return None


# ------------------------------------------------------------------------------------------- chains
def _chain_leaves(nodes: list[Node], categories: list[str], nature: list[str], alias_root: list[int]) -> dict[int, int]:
    """For each elementwise data node, the one data node it is a function of (or itself)."""
    leaf: dict[int, int] = {}
    for node in nodes:
        i = node.index
        if nature[i] != "data":
            continue
        if categories[i] != "elementwise":
            leaf[i] = i
            continue
        data_in = {alias_root[j] for j in node.inputs if nature[j] == "data"}
        leaves = {leaf.get(j, j) for j in data_in}
        scalar_rest = all(_scalar_like(nodes[j], nature) for j in node.inputs if nature[j] != "data")
        leaf[i] = leaves.pop() if len(leaves) == 1 and scalar_rest else i
    return leaf


def _scalar_like(node: Node, nature: list[str]) -> bool:
    """A non-data input that takes a single value: a point, a scalar constant, a parameter (constant-filled)."""
    if nature[node.index] in ("point", "param", "pcomp"):
        return True
    return node.numel == 1


# ------------------------------------------------------------------------------------------- residuals
def _primary_path(structure: Structure, start: int, limit: int = 4096) -> list[int]:
    """Nodes from ``start`` back along each op's first data input (the path a signal was carried on)."""
    path = [start]
    current = start
    nodes, nature = structure.graph.nodes, structure.nature
    while len(path) < limit:
        node = nodes[current]
        if structure.categories[current] == "attention":
            bound = bind(node)
            value = bound.get("value")
            candidates = [value.index] if isinstance(value, Ref) else []
        else:
            candidates = [i for i in node.inputs if nature[i] == "data"]
        if not candidates:
            break
        current = candidates[0]
        path.append(current)
    return path


def _weights_between(structure: Structure, path: list[int], stop: int) -> int:
    count = 0
    for i in path:
        if i == stop:
            return count
        if i in structure.use_of or structure.categories[i] in ("attention", "module"):
            count += 1
    return count


def _residuals(structure: Structure) -> None:
    nodes = structure.graph.nodes
    for node in nodes:
        if structure.categories[node.index] != "elementwise" or node.op not in ("add", "sub"):
            continue
        operands = structure.data_inputs(node.index)
        if len(operands) != 2 or structure.leaf.get(node.index) != node.index:
            continue
        a, b = operands
        path_a, path_b = _primary_path(structure, a), _primary_path(structure, b)
        on_b = set(path_b)
        common = next((i for i in path_a if i in on_b), None)
        skip = branch = None
        skip_weights = 0
        if common is not None:
            wa, wb = _weights_between(structure, path_a, common), _weights_between(structure, path_b, common)
            if wa == 0 and wb > 0:
                skip, branch = a, b
            elif wb == 0 and wa > 0:
                skip, branch = b, a
            elif 0 < wa < wb:
                skip, branch, skip_weights = a, b, wa
            elif 0 < wb < wa:
                skip, branch, skip_weights = b, a, wb
        add = ResidualAdd(node.index, skip, branch, (a, b), common=common)
        if branch is None:
            add.merge_knobs = tuple(k for k in (_knob(structure, a), _knob(structure, b)) if k is not None)
            for knob in add.merge_knobs:
                structure.knob_of.setdefault(knob, ("merge", node.index))
        if branch is not None:
            add.knob = _knob(structure, branch)
            if skip is not None and skip_weights:
                add.shortcut_knobs = tuple(k for k in [_knob(structure, skip)] if k is not None)
        structure.residual[node.index] = add
    _parallel_branches(structure)
    # streams: a residual addition continues the stream of the addition its skip came from
    stream_of: dict[int, int] = {}
    for index, add in structure.residual.items():
        if add.skip is None:
            continue
        previous = _previous_addition(structure, add)
        if previous is not None and previous in stream_of:
            stream = structure.streams[stream_of[previous]]
        else:
            stream = Stream(len(structure.streams), [], add.skip)
            through_norm = _previous_addition(structure, add, through_norms=True)
            if through_norm is not None and through_norm in stream_of:
                stream.follows = stream_of[through_norm]
            structure.streams.append(stream)
        if add.parallel is not None:  # its partner is an addition of the same stream, just before it
            partner = structure.residual[add.parallel]
            stream.adds.append(add.parallel)
            stream_of[add.parallel] = stream.index
            partner.stream, partner.position = stream.index, len(stream.adds)
            if partner.knob is not None:
                structure.knob_of.setdefault(partner.knob, ("branch", add.parallel))
        stream.adds.append(index)
        stream_of[index] = stream.index
        add.stream, add.position = stream.index, len(stream.adds)
        if add.knob is not None:
            structure.knob_of.setdefault(add.knob, ("branch", index))
        for knob in add.shortcut_knobs:
            structure.knob_of.setdefault(knob, ("shortcut", index))
    # a chain of streams linked through norms (post-LN) shares one depth budget
    group: dict[int, int] = {}
    for stream in structure.streams:
        group[stream.index] = group[stream.follows] if stream.follows is not None else stream.index
    totals: dict[int, int] = {}
    for stream in structure.streams:
        totals[group[stream.index]] = totals.get(group[stream.index], 0) + len(stream.adds)
    for stream in structure.streams:
        stream.chain = totals[group[stream.index]]


def _parallel_branches(structure: Structure) -> None:
    """``x + (f(x) + g(x))`` (GPT-NeoX's and GPT-J's parallel attention and MLP): two branches of one stream.

    The inner sum parts at ``x`` with weights on both sides, so it was read as
    a branch beside a projection shortcut (or a merge); the outer addition's
    skip is that same ``x``. Each branch is then an addition of the stream,
    with its own share of the stream's budget.
    """
    for add in structure.residual.values():
        inner = structure.residual.get(add.branch) if add.branch is not None else None
        if inner is None or add.skip is None or add.common is None or inner.common != add.common or \
                inner.parallel is not None or add.skip != add.common:
            continue
        a, b = inner.operands
        if min(_weights_between(structure, _primary_path(structure, i), inner.common) for i in (a, b)) == 0:
            continue
        knob_a, knob_b = _knob(structure, a), _knob(structure, b)
        if knob_a is None or knob_b is None:
            continue
        inner.skip, inner.branch, inner.knob, inner.shortcut_knobs, inner.merge_knobs = None, b, knob_b, (), ()
        add.knob, add.parallel = knob_a, inner.node


def _previous_addition(structure: Structure, add: ResidualAdd, through_norms: bool = False) -> int | None:
    """The residual addition whose output this one's skip carries on (through elementwise/shape ops or a shortcut;
    with ``through_norms``, also through norms: the previous stream of a post-LN chain)."""
    assert add.skip is not None
    current = add.skip if not add.shortcut_knobs or add.common is None else add.common
    shortcut = set(add.shortcut_knobs)
    for _ in range(4096):
        if current in structure.residual and structure.residual[current].skip is not None:
            return current
        kind = structure.categories[current]
        carried = kind in _STREAM_CARRIERS or (through_norms and kind == "norm")
        if not carried and current not in shortcut and not _is_shortcut_part(structure, current, shortcut):
            return None
        data = structure.data_inputs(current)
        if not data:
            return None
        current = data[0]
    return None


def _is_shortcut_part(structure: Structure, index: int, shortcut: set[int]) -> bool:
    """Whether ``index`` lies on a projection shortcut (a norm right after a shortcut's weight use)."""
    if structure.categories[index] != "norm":
        return False
    data = structure.data_inputs(index)
    return bool(data) and (data[0] in shortcut or structure.categories[data[0]] == "weight")


def _knob(structure: Structure, start: int) -> int | None:
    """The op whose scale sets a branch's output: walk back through shape, dropout and scalar ops."""
    current = start
    nodes = structure.graph.nodes
    for _ in range(64):
        kind = structure.categories[current]
        if current in structure.use_of or kind == "attention" or (kind == "norm" and nodes[current].op != "normalize"):
            return current
        if kind == "part" and structure.categories[nodes[current].inputs[0]] in ("attention", "module"):
            current = nodes[current].inputs[0]  # the output of an attention module or a recurrent module
            continue
        if kind in _BRANCH_TAIL or (kind == "elementwise" and _is_linear_scalar_op(structure, current)):
            data = structure.data_inputs(current)
            if len(data) != 1:
                return None
            current = data[0]
            continue
        return None
    return None


def _is_linear_scalar_op(structure: Structure, index: int) -> bool:
    """``x * c``, ``x / c``, ``x + b`` with ``c``, ``b`` not data (scalars, parameters: layer scale, Fixup bias)."""
    node = structure.graph.nodes[index]
    if node.op not in ("mul", "div", "add", "sub", "neg"):
        return False
    return len(structure.data_inputs(index)) == 1 and (node.op != "div" or structure.nature[node.inputs[0]] == "data")


# ------------------------------------------------------------------------------------------- heads
def _heads(structure: Structure) -> list[int]:
    """Weight uses whose output reaches a model output or a loss through no other weight or norm."""
    targets = set(structure.graph.outputs) | set(structure.loss_inputs)
    heads: list[int] = []
    for use in structure.uses:
        frontier, seen = [use.node], set()
        reaches = False
        while frontier and not reaches:
            current = frontier.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in targets:
                reaches = True
                break
            for user in structure.users[current]:
                kind = structure.categories[user]
                unary = kind != "elementwise" or len(structure.data_inputs(user)) == 1
                if kind in ("alias", "shape", "dropout", "elementwise", "split", "part", "softmax") and unary:
                    frontier.append(user)
        if reaches:
            heads.append(use.node)
    return heads


# ------------------------------------------------------------------------------------------- stacks
def _stacks(structure: Structure) -> None:
    """Plain stacks: each weight use feeds, through one elementwise chain and shape ops only, the next."""
    following: dict[int, int] = {}
    for use in structure.uses:
        if use.kind == "embedding" or use.input is None:
            continue
        top = _skip_shape(structure, use.input)
        if structure.categories[top] != "elementwise":
            continue
        leaf = _skip_shape(structure, structure.leaf.get(top, top))
        if leaf in structure.use_of and leaf != use.node and len(_data_users(structure, leaf)) == 1:
            following[leaf] = use.node
            structure.chain_between[leaf] = top
    starts = [u for u in following if u not in following.values()]
    for start in starts:
        stack = [start]
        while stack[-1] in following:
            stack.append(following[stack[-1]])
        structure.stacks.append(stack)


def _skip_shape(structure: Structure, index: int) -> int:
    """Back through alias, shape and dropout ops."""
    current = index
    while structure.categories[current] in ("alias", "shape", "dropout"):
        data = structure.data_inputs(current)
        if len(data) != 1:
            break
        current = data[0]
    return current


def _data_users(structure: Structure, index: int) -> list[int]:
    return [u for u in structure.users[index] if structure.nature[u] in ("data", "point")]


def bound_refs(node: Node, names: Mapping[str, Any]) -> dict[str, int]:
    """The node indices bound to the given argument names (those that are tensors)."""
    out: dict[str, int] = {}
    for name in names:
        value = names[name]
        if isinstance(value, Ref):
            out[name] = value.index
    return out
