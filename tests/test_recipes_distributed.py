"""The recipes under tensor parallelism: 2 processes (gloo), DTensor-sharded parameters, bit-identical results.

LoRA (kaiming and PiSSA, with the base weight sharded), Mamba's computed dt bias and A_log, mimetic
attention's SVD factors and an LLM recipe are applied to models whose parameters are DTensors placed
with Shard(0)/Shard(1); the gathered values must equal a single-process initialization bit for bit.
"""

from __future__ import annotations

import os

import pytest
from _helpers import leave_worker, spawn_gathered

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch built without torch.distributed", allow_module_level=True)

from torch import nn  # noqa: E402

from berry.torch import schemes  # noqa: E402
from berry.torch.models import Transformer  # noqa: E402

pytestmark = pytest.mark.slow


class Adapted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(64, 48, bias=False)
        self.lora_A = nn.Parameter(torch.empty(8, 64))
        self.lora_B = nn.Parameter(torch.empty(48, 8))


class Mixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_proj = nn.Linear(16, 64, bias=False)
        self.dt_proj = nn.Linear(2, 32)
        self.A_log = nn.Parameter(torch.empty(32, 7))  # 7 columns: uneven shards
        self.D = nn.Parameter(torch.empty(32))
        self.out_proj = nn.Linear(32, 16, bias=False)


def mamba_model() -> nn.Module:
    model = nn.Module()
    model.layers = nn.ModuleList([nn.Module()])
    model.layers[0].mixer = Mixer()
    return model


def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)  # the same base weights on every process (PiSSA reads them)
    return {
        "lora": Adapted(),
        "pissa": Adapted(),
        "mamba": mamba_model(),
        "mimetic": Transformer(n_layer=1, n_embd=16, n_head=2, vocab_size=20, block_size=8),
        "olmo": Transformer(n_layer=2, n_embd=16, n_head=2, vocab_size=20, block_size=8),
    }


SHARDING = {  # parameter -> sharded dim (column- or row-parallel, uneven sizes included)
    "lora": {"base.weight": 1, "lora_A": 1, "lora_B": 0},
    "pissa": {"base.weight": 0, "lora_A": 1, "lora_B": 0},
    "mamba": {"layers.0.mixer.dt_proj.bias": 0, "layers.0.mixer.A_log": 1, "layers.0.mixer.in_proj.weight": 0},
    "mimetic": {"transformer.h.0.attn.c_attn.weight": 0, "transformer.h.0.attn.c_proj.weight": 1},
    "olmo": {"transformer.h.0.attn.c_attn.weight": 0, "transformer.h.1.mlp.c_proj.weight": 1, "lm_head.weight": 0},
}


def apply(label: str, model: nn.Module) -> None:
    if label == "lora":
        schemes.lora(model, seed=4)
    elif label == "pissa":
        schemes.lora(model, init="pissa", scaling=2.0, seed=4)
    elif label == "mamba":
        schemes.mamba(model, seed=4)
    elif label == "mimetic":
        schemes.mimetic(model, seed=4)
    else:
        schemes.olmo(model, init_fn="mitchell", seed=4)


def _worker(rank: int, world: int, port: int, result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard, distribute_tensor

        torch.set_num_threads(1)
        mesh = init_device_mesh("cpu", (world,))
        results = {}
        for label, model in models().items():
            for name, dim in SHARDING[label].items():
                owner_name, _, local = name.rpartition(".")
                owner = model.get_submodule(owner_name) if owner_name else model
                sharded = distribute_tensor(getattr(owner, local).detach(), mesh, [Shard(dim)])
                owner.register_parameter(local, nn.Parameter(sharded))
            apply(label, model)
            for name in SHARDING[label]:
                results[f"{label}/{name}"] = model.get_parameter(name).full_tensor()
        if rank == 0:
            torch.save(results, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    leave_worker()


def test_recipes_on_dtensors_equal_one_process(tmp_path):
    gathered = spawn_gathered(_worker, 2, tmp_path)
    expected = {}
    for label, model in models().items():
        apply(label, model)
        for name in SHARDING[label]:
            expected[f"{label}/{name}"] = model.get_parameter(name).detach()
    assert sorted(gathered) == sorted(expected)
    for key, value in gathered.items():
        assert torch.equal(value, expected[key]), key
