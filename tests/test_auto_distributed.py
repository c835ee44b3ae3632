"""auto_init on FSDP2-sharded models: each of 2 gloo processes fills its shard, bit-identical to one process.

Two flows: planning on the meta model before sharding and applying the plan
after ``fully_shard`` + ``to_empty``; and calling ``auto_init`` directly on the
sharded model (its DTensor parameters are recorded as meta twins of their
global shape, FSDP's all-gather hooks switched off while recording).
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch built without torch.distributed", allow_module_level=True)

from _helpers import free_port, leave_worker  # noqa: E402

from berry.torch.auto import InputSpec, auto_init, auto_plan  # noqa: E402
from berry.torch.auto.zoo import SwiGLUModel  # noqa: E402

pytestmark = pytest.mark.slow

SPEC = InputSpec((2, 16), dtype=torch.long)


def _model() -> torch.nn.Module:
    return SwiGLUModel(vocab=101, d=32, layers=2, heads=4)


def _worker(rank: int, world: int, port: int, result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        torch.set_num_threads(1)
        mesh = init_device_mesh("cpu", (world,))
        results: dict[str, torch.Tensor] = {}

        # 1. plan on the meta model, shard, materialize, apply
        with torch.device("meta"):
            model = _model()
        report = auto_plan(model, SPEC, seed=3)
        for layer in model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        report.apply(model)
        for name, parameter in model.named_parameters():
            results[f"planned/{name}"] = parameter.full_tensor()

        # 2. auto_init directly on the sharded model
        with torch.device("meta"):
            sharded = _model()
        for layer in sharded.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        sharded.to_empty(device="cpu")
        direct = auto_init(sharded, SPEC, seed=3)
        for name, parameter in sharded.named_parameters():
            results[f"direct/{name}"] = parameter.full_tensor()
        results["rules_equal"] = torch.tensor(float(direct.rules == report.rules))
        if rank == 0:
            torch.save(results, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    leave_worker()


def test_sharded_auto_init_equals_single_process(tmp_path):
    result_path = str(tmp_path / "gathered.pt")
    torch.multiprocessing.spawn(_worker, args=(2, free_port(), result_path), nprocs=2, join=True)
    gathered = torch.load(result_path)
    assert float(gathered["rules_equal"]) == 1.0

    torch.manual_seed(0)
    single = _model()
    auto_init(single, SPEC, seed=3)
    for name, parameter in single.named_parameters():
        for flow in ("planned", "direct"):
            assert torch.equal(gathered[f"{flow}/{name}"], parameter.detach()), (flow, name)
