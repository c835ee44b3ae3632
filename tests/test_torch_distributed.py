"""Sharded initialization with real processes: each rank fills its shard, the gathered tensor is bit-identical.

World sizes 2 and 4 on CPU with the gloo backend, launched with
``torch.multiprocessing.spawn``: DTensors placed with ``Shard(0)``,
``Shard(1)``, ``Replicate()`` (world 2) and ``(Shard(0), Shard(1))`` on a
2 x 2 mesh (world 4), uneven sizes included, and FSDP2 ``fully_shard``
models built on the meta device (one with a tied embedding and output
head, materialized with ``berry.torch.materialize``), compared after
``full_tensor()`` with a single-process initialization.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import pytest
from _helpers import leave_worker, spawn_gathered

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch built without torch.distributed", allow_module_level=True)

import berry.torch as init  # noqa: E402

pytestmark = pytest.mark.slow

#: (label, global shape, initializer); uneven sizes so that shards differ in size.
CASES: list[tuple[str, tuple[int, ...], Callable[..., object]]] = [
    ("normal", (13, 7), functools.partial(init.normal_, mean=0.5, std=2.0, seed=7, name="w")),
    ("trunc_normal", (9, 10), functools.partial(init.trunc_normal_, std=0.02, a=-0.04, b=0.04, seed=7, name="t")),
    ("xavier_uniform", (10, 6, 3), functools.partial(init.xavier_uniform_, seed=1, name="x")),
    ("kaiming_normal", (7, 5), functools.partial(init.kaiming_normal_, nonlinearity="relu", seed=2, name="k")),
    ("orthogonal", (6, 9), functools.partial(init.orthogonal_, gain=2.0, seed=3, name="o")),
    ("orthogonal_conv", (5, 3, 2, 2), functools.partial(init.orthogonal_, seed=3, name="oc")),
    ("sparse", (11, 5), functools.partial(init.sparse_, sparsity=0.3, seed=4, name="s")),
    ("eye", (5, 7), init.eye_),
    ("dirac", (6, 3, 3), functools.partial(init.dirac_, groups=2)),
    ("generator", (9, 4), functools.partial(init.uniform_, a=-1.0, b=1.0)),  # key drawn from the seeded default generator
]


class TiedLM(torch.nn.Module):
    """nanoGPT's tie: the token embedding and the output head share one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.wte = torch.nn.Embedding(13, 8)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(2))
        self.lm_head = torch.nn.Linear(8, 13, bias=False)
        self.lm_head.weight = self.wte.weight


def scheme_model() -> torch.nn.Module:
    from berry.torch.models import Transformer

    return Transformer(n_layer=2, n_embd=16, n_head=2, vocab_size=23, block_size=8, norm="post")


#: Schemes whose packed q/k/v scaling and deterministic fills must respect shards (sizes not divisible by 4).
SCHEMES: dict[str, Callable[[torch.nn.Module], object]] = {
    "deepnorm": lambda model: init.schemes.deepnorm(model, seed=3),
    "zero": lambda model: init.schemes.zero(model, preset="mlp"),
}


def tiny_transformer() -> torch.nn.Module:
    layer = functools.partial(torch.nn.TransformerEncoderLayer, d_model=16, nhead=2, dim_feedforward=24, batch_first=True)
    return torch.nn.Sequential(torch.nn.Embedding(11, 16), layer(), layer(), torch.nn.LayerNorm(16), torch.nn.Linear(16, 11))


def _single_process_cases() -> dict[str, torch.Tensor]:
    out = {}
    for label, shape, fill in CASES:
        torch.manual_seed(1234)
        tensor = torch.empty(shape)
        fill(tensor)
        out[label] = tensor
    return out


def _worker(rank: int, world: int, port: int, result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor import Replicate, Shard
        from torch.distributed.tensor import empty as dtensor_empty

        torch.set_num_threads(1)
        mesh = init_device_mesh("cpu", (world,))
        layouts = [(mesh, [Shard(0)]), (mesh, [Shard(1)])]
        if world == 4:  # tensor-parallel style: a 2 x 2 mesh sharding both dims
            layouts.append((init_device_mesh("cpu", (2, 2)), [Shard(0), Shard(1)]))
        else:
            layouts.append((mesh, [Replicate()]))
        results: dict[str, torch.Tensor] = {}
        for on_mesh, placements in layouts:
            for label, shape, fill in CASES:
                torch.manual_seed(1234)  # every rank holds the same generator state, as torch requires
                tensor = dtensor_empty(shape, device_mesh=on_mesh, placements=placements)
                fill(tensor)
                results[f"{placements}/{label}"] = tensor.full_tensor()

        with torch.device("meta"):
            model = tiny_transformer()
        for block in list(model)[1:3]:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        init.init_model(model, {}, seed=5)
        for name, parameter in model.named_parameters():
            results[f"model/{name}"] = parameter.full_tensor()

        # No rules: every rank plans the same architecture defaults from the structure alone.
        with torch.device("meta"):
            planned = tiny_transformer()
        for block in list(planned)[1:3]:
            fully_shard(block, mesh=mesh)
        fully_shard(planned, mesh=mesh)
        planned.to_empty(device="cpu")
        planned_report = init.init_model(planned, seed=5)
        results["planned/path"] = torch.tensor([planned_report.defaults == "architecture"])
        for name, parameter in planned.named_parameters():
            results[f"planned/{name}"] = parameter.full_tensor()

        with torch.device("meta"):
            tied = TiedLM()
        for block in tied.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(tied, mesh=mesh)
        init.materialize(tied, "cpu")
        calls = []

        def counting(tensor, *, seed, name):
            calls.append(name)
            init.normal_(tensor, std=0.02, seed=seed, name=name)

        report = init.init_model(tied, {"wte.weight": counting}, seed=7)
        local_wte, local_head = tied.wte.weight._local_tensor, tied.lm_head.weight._local_tensor
        results["tied/same"] = torch.tensor([tied.wte.weight is tied.lm_head.weight,
                                             local_wte.data_ptr() == local_head.data_ptr(), calls == ["wte.weight"],
                                             [p.name for p in report].count("wte.weight") == 1])
        results["tied/count"] = torch.tensor(sum(p.numel() for p in tied.parameters()))
        for name, parameter in tied.named_parameters():
            results[f"tied/{name}"] = parameter.full_tensor()

        for scheme in SCHEMES:  # schemes write through the same shard-aware functions
            with torch.device("meta"):
                sharded = scheme_model()
            for block in sharded.blocks:
                fully_shard(block, mesh=mesh)
            fully_shard(sharded, mesh=mesh)
            init.materialize(sharded, "cpu")
            SCHEMES[scheme](sharded)
            for name, parameter in sharded.named_parameters():
                results[f"{scheme}/{name}"] = parameter.full_tensor()
        if rank == 0:
            torch.save(results, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    leave_worker()


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_initialization_equals_single_process(world, tmp_path):
    gathered = spawn_gathered(_worker, world, tmp_path)

    expected = _single_process_cases()
    for key, value in gathered.items():
        if key.startswith(("model/", "planned/", "tied/", *(f"{scheme}/" for scheme in SCHEMES))):
            continue
        label = key.rsplit("/", 1)[1]
        assert torch.equal(value, expected[label]), key

    model = tiny_transformer()
    init.init_model(model, {}, seed=5)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(f"model/{n}" for n in names) == sorted(k for k in gathered if k.startswith("model/"))
    for name, parameter in model.named_parameters():
        assert torch.equal(gathered[f"model/{name}"], parameter.detach()), name
    planned = tiny_transformer()
    assert init.init_model(planned, seed=5).defaults == "architecture" and gathered["planned/path"].all()
    for name, parameter in planned.named_parameters():
        assert torch.equal(gathered[f"planned/{name}"], parameter.detach()), name

    # A tied LM through FSDP2 and berry.torch.materialize: still one tensor, one initialization.
    assert gathered["tied/same"].all(), gathered["tied/same"]
    tied = TiedLM()
    assert int(gathered["tied/count"]) == sum(p.numel() for p in tied.parameters()) == 13 * 8 + 2 * 72
    init.init_model(tied, {"wte.weight": functools.partial(init.normal_, std=0.02)}, seed=7)
    for name, parameter in tied.named_parameters():
        assert torch.equal(gathered[f"tied/{name}"], parameter.detach()), name

    for scheme, apply in SCHEMES.items():
        single = scheme_model()
        apply(single)
        for name, parameter in single.named_parameters():
            assert torch.equal(gathered[f"{scheme}/{name}"], parameter.detach()), f"{scheme}: {name}"
