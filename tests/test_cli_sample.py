"""The ``berry sample`` command: streamed .npy/.safetensors files equal to berry.sample, written atomically."""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import berry.cli as cli
from berry.cli import main
from berry.sampling import sample

KEY = ["--init", "he", "--seed", "11", "--name", "layer3.weight"]


def _expected(shape, dtype="float32", **options):
    return sample(shape, options.pop("init", "he"), seed=11, name="layer3.weight", dtype=dtype, **options)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 96 bytes, so every test tensor is written in many regions (and some regions cut axis 1)."""
    monkeypatch.setattr(cli, "_SAMPLE_CHUNK_BYTES", 96)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("shape", [(40, 30), (3, 50, 7), (1000,), (0, 5)])
def test_npy_round_trip_equals_berry_sample(tmp_path, small_chunks, capsys, shape, dtype):
    target = tmp_path / "w.npy"
    assert main(["sample", ",".join(map(str, shape)), *KEY, "--dtype", dtype, "--out", str(target)]) == 0
    loaded = np.load(target)
    assert loaded.dtype == np.dtype(dtype) and loaded.shape == shape
    np.testing.assert_array_equal(loaded, _expected(shape, dtype))
    assert str(target) in capsys.readouterr().out


def _read_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_safetensors_round_trip_with_the_reference_reader(tmp_path, small_chunks, dtype):
    numpy_reader = pytest.importorskip("safetensors.numpy")
    target = tmp_path / "w.safetensors"
    assert main(["sample", "33x17", *KEY, "--dtype", dtype, "--distribution", "truncated_normal",
                 "--out", str(target)]) == 0
    tensors = numpy_reader.load_file(str(target))
    assert list(tensors) == ["layer3.weight"]
    np.testing.assert_array_equal(tensors["layer3.weight"], _expected((33, 17), dtype, distribution="truncated_normal"))
    header, _ = _read_safetensors(target)
    spec = json.loads(header["__metadata__"]["berry.spec"])
    assert spec["init"] == "he" and spec["distribution"] == "truncated_normal"
    assert header["__metadata__"]["berry.seed"] == "11"


def test_safetensors_bfloat16(tmp_path, small_chunks):
    pytest.importorskip("ml_dtypes")
    target = tmp_path / "w.safetensors"
    assert main(["sample", "9,13", *KEY, "--dtype", "bfloat16", "--out", str(target)]) == 0
    header, data = _read_safetensors(target)
    entry = header["layer3.weight"]
    assert entry["dtype"] == "BF16" and entry["shape"] == [9, 13] and entry["data_offsets"] == [0, 9 * 13 * 2]
    (length,) = struct.unpack("<Q", target.read_bytes()[:8])
    assert length % 8 == 0  # the header is padded so the data is aligned
    expected = _expected((9, 13), "bfloat16").view(np.uint16)
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<u2").reshape(9, 13), expected)
    torch_reader = pytest.importorskip("safetensors.torch")
    pytest.importorskip("torch")
    loaded = torch_reader.load_file(str(target))["layer3.weight"]
    np.testing.assert_array_equal(loaded.float().numpy(), _expected((9, 13), "bfloat16").astype(np.float32))


def test_json_payload(tmp_path, capsys):
    target = tmp_path / "w.npy"
    assert main(["sample", "64,32", *KEY, "--out", str(target), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["shape"] == [64, 32] and payload["format"] == "npy" and payload["dtype"] == "float32"
    assert payload["std"] == pytest.approx(math.sqrt(2 / 64))
    assert payload["bytes"] == target.stat().st_size
    assert payload["data_sha256"] == hashlib.sha256(_expected((64, 32)).tobytes()).hexdigest()


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    target = tmp_path / "w.npy"
    target.write_bytes(b"precious")
    assert main(["sample", "4,4", *KEY, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert target.read_bytes() == b"precious"
    assert main(["sample", "4,4", *KEY, "--out", str(target), "--force"]) == 0
    np.testing.assert_array_equal(np.load(target), _expected((4, 4)))


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_no_file_under_the_final_name(tmp_path, small_chunks, monkeypatch, capsys, error):
    regions = cli._sample_regions

    def failing(*args):
        for count, region in enumerate(regions(*args)):
            if count == 3:
                raise error
            yield region

    monkeypatch.setattr(cli, "_sample_regions", failing)
    target = tmp_path / "w.npy"
    if isinstance(error, KeyboardInterrupt):
        assert main(["sample", "40,30", *KEY, "--out", str(target)]) == 130
        assert "nothing was written" in capsys.readouterr().err
    else:
        with pytest.raises(RuntimeError, match="disk on fire"):
            main(["sample", "40,30", *KEY, "--out", str(target)])
    assert _listing(tmp_path) == []  # neither the file nor the temporary one


def test_an_interrupted_overwrite_keeps_the_old_file(tmp_path, small_chunks, monkeypatch):
    target = tmp_path / "w.npy"
    np.save(target, np.arange(3))

    def failing(*args):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(cli, "_sample_regions", failing)
    assert main(["sample", "5,5", *KEY, "--out", str(target), "--force"]) == 130
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert _listing(tmp_path) == ["w.npy"]


def test_written_file_has_ordinary_permissions(tmp_path):
    target = tmp_path / "w.npy"
    assert main(["sample", "2,2", "--out", str(target)]) == 0
    assert target.stat().st_mode & 0o044  # readable by others under a usual umask, not mkstemp's 0600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["4,4", "--out", "w.txt"], ".npy or .safetensors"),
        (["4,4", "--dtype", "bfloat16", "--out", "w.npy"], ".safetensors"),
        (["4,4", "--init", "hee", "--out", "w.npy"], "Did you mean 'he'"),
        (["4,4", "--dtype", "int8", "--out", "w.npy"], "dtype"),
        (["4,4", "--distribution", "cauchy", "--out", "w.npy"], "distribution"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("berry sample: error:") and message in err
    assert _listing(tmp_path) == []


def test_missing_extra_for_bfloat16_is_named(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    target = tmp_path / "w.safetensors"
    assert main(["sample", "4,4", "--dtype", "bfloat16", "--out", str(target)]) == 2
    assert "berry[bfloat16]" in capsys.readouterr().err
    assert not target.exists()


def test_out_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "4,4"])
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    shape=st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
    itemsize=st.sampled_from([2, 4, 8]),
    budget=st.integers(1, 200),
)
def test_regions_tile_the_tensor_in_c_order(shape, itemsize, budget):
    flat = np.arange(math.prod(shape)).reshape(shape)
    pieces = [flat[region].reshape(-1) for region in cli._sample_regions(shape, itemsize, budget)]
    joined = np.concatenate(pieces) if pieces else np.array([], dtype=flat.dtype)
    np.testing.assert_array_equal(joined, flat.reshape(-1))
    for region in cli._sample_regions(shape, itemsize, budget):
        assert math.prod(s.stop - s.start for s in region) * itemsize <= max(budget, itemsize)  # bounded memory


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = cli._Progress(4 * 2**20, "berry sample w.npy", stream=stream)
        for _ in range(4):
            progress.update(2**20)
        progress.close()
    assert "100.0%" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert pipe.getvalue() == ""
