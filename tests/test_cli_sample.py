"""The ``berry sample`` command: streamed .npy/.safetensors files equal to berry.sample, written atomically."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import berry.cli as cli
from berry.cli import _files, _sample, main
from berry.sampling import sample

KEY = ["--init", "he", "--seed", "11", "--name", "layer3.weight"]


def _expected(shape, dtype="float32", **options):
    return sample(shape, options.pop("init", "he"), seed=11, name="layer3.weight", dtype=dtype, **options)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 96 bytes, so every test tensor is written in many regions (and some regions cut axis 1)."""
    monkeypatch.setattr(_sample, "CHUNK_BYTES", 96)


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
    regions = _sample.regions

    def failing(*args):
        for count, region in enumerate(regions(*args)):
            if count == 3:
                raise error
            yield region

    monkeypatch.setattr(_sample, "regions", failing)
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

    regions, calls = _sample.regions, []

    def failing(*args):
        calls.append(args)
        if len(calls) > 1:  # validation computes the first region; the write is interrupted at once
            raise KeyboardInterrupt
        yield from regions(*args)

    monkeypatch.setattr(_sample, "regions", failing)
    assert main(["sample", "5,5", *KEY, "--out", str(target), "--force"]) == 130
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert _listing(tmp_path) == ["w.npy"]


def test_written_file_has_ordinary_permissions(tmp_path):
    target = tmp_path / "w.npy"
    assert main(["sample", "2,2", "--name", "w", "--out", str(target)]) == 0
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
    pieces = [flat[region].reshape(-1) for region in _sample.regions(shape, itemsize, budget)]
    joined = np.concatenate(pieces) if pieces else np.array([], dtype=flat.dtype)
    np.testing.assert_array_equal(joined, flat.reshape(-1))
    for region in _sample.regions(shape, itemsize, budget):
        assert math.prod(s.stop - s.start for s in region) * itemsize <= max(budget, itemsize)  # bounded memory


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = _sample.Progress(4 * 2**20, "berry sample w.npy", stream=stream)
        for _ in range(4):
            progress.update(2**20)
        progress.close()
    assert "100.0%" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert pipe.getvalue() == ""


# --- every initializer, validated before the disk is touched (issue 10, items 15-17) ----------------


@pytest.mark.parametrize(
    ("init", "shape", "options"),
    [
        ("eye", (6, 4), []),
        ("identity", (4, 6), []),
        ("orthogonal", (40, 30), []),
        ("zeros", (5, 7), []),
        ("ones", (5, 7), []),
        ("dirac", (3, 3, 4, 4), []),
        ("delta_orthogonal", (3, 3, 4, 8), []),
        ("sparse", (20, 9), ["--sparsity", "0.3"]),
        ("constant", (4, 5), ["--value", "0.25"]),
    ],
)
def test_structural_initializers_write_the_tensor_berry_sample_gives(tmp_path, small_chunks, capsys, init, shape,
                                                                     options):
    target = tmp_path / "w.npy"
    argv = ["sample", ",".join(map(str, shape)), "--init", init, "--seed", "11", "--name", "layer3.weight",
            *options, "--out", str(target), "--json"]
    assert main(argv) == 0
    extra = {"sparsity": 0.3} if init == "sparse" else {"value": 0.25} if init == "constant" else {}
    expected = _expected(shape, init=init, **extra)
    if init in ("orthogonal", "delta_orthogonal"):
        np.testing.assert_allclose(np.load(target), expected, atol=1e-6)  # BLAS products: 1e-6, not bits
    else:
        np.testing.assert_array_equal(np.load(target), expected)
    payload = json.loads(capsys.readouterr().out)
    assert payload["init"] == ("eye" if init == "identity" else init)
    assert (payload["std"] is None) == (init not in ("sparse",))


def test_whole_matrix_initializers_are_computed_once(tmp_path, small_chunks, monkeypatch):
    from berry import distributions

    calls = []
    original = distributions.orthogonal_matrix

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(distributions, "orthogonal_matrix", counting)
    target = tmp_path / "q.npy"
    assert main(["sample", "64,48", "--init", "orthogonal", "--name", "q", "--out", str(target)]) == 0
    assert len(calls) == 1  # 96-byte chunks: 128 regions, one orthogonal matrix
    q = np.load(target)
    np.testing.assert_allclose(q.T @ q, np.eye(48), atol=1e-5)


def test_init_normal_is_pointed_at_distribution_and_std(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "8,8", "--init", "normal", "--std", "0.02", "--name", "w", "--out", "w.npy"]) == 2
    assert "--distribution normal" in capsys.readouterr().err
    assert main(["sample", "8,8", "--std", "0.02", "--name", "w", "--out", "w.npy"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), sample((8, 8), std=0.02, name="w"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-5", "--name", "w", "--out", "n.npy"], "negative dimension"),
        (["0,-3", "--name", "w", "--out", "n.npy"], "negative dimension"),
        (["3,,4", "--name", "w", "--out", "n.npy"], "integers"),
        (["3,3", "--init", "zeros", "--seed", "-1", "--out", "n.npy"], "seed"),
        (["3,3", "--init", "ones", "--seed", str(2**64), "--out", "n.npy"], "seed"),
        (["3,3", "--seed", "-1", "--name", "w", "--out", "n.npy"], "seed"),
        (["3,3", "--out", "n.npy"], "--name is required"),
        (["3,3", "--init", "dirac", "--name", "w", "--out", "n.npy"], "rank 3, 4 or 5"),
        (["3,3", "--init", "constant", "--out", "n.npy"], "value"),
        (["3,3", "--name", "__metadata__", "--out", "n.safetensors"], "reserves"),
        (["3,3", "--name", "w", "--bounds=-3", "--out", "n.npy"], "--bounds"),
        (["3,3", "--name", "w", "--bounds=-3,3", "--out", "n.npy"], "truncated_normal"),
        (["3,3", "--name", "w", "--out", "n.npy", "--bogus"], "unrecognized arguments: --bogus"),
        # Tracebacks before: a ZeroDivisionError (bounds a subnormal apart), an OverflowError (a fan beyond float64).
        (["3,3", "--name", "w", "--distribution", "truncated_normal", "--bounds=-5e-324,5e-324", "--out", "n.npy"],
         "too narrow or too far in the tail"),
        (["3,3", "--name", "w", "--fan-in", "1" + "0" * 400, "--out", "n.npy"], "beyond float64's range"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(["sample", *argv])
    except SystemExit as exit_info:  # argparse's own errors (the shape's type, unknown options)
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert _listing(tmp_path) == []


def test_the_metadata_name_is_an_ordinary_name_in_npy(tmp_path):
    target = tmp_path / "w.npy"
    assert main(["sample", "3,3", "--name", "__metadata__", "--out", str(target)]) == 0
    np.testing.assert_array_equal(np.load(target), sample((3, 3), name="__metadata__"))


def test_a_name_that_is_not_utf8_is_refused(tmp_path, capsys):
    name = b"w\xff".decode("utf-8", "surrogateescape")  # what Python makes of such bytes in argv
    assert main(["sample", "3,3", "--name", name, "--out", str(tmp_path / "w.npy")]) == 2
    assert "UTF-8" in capsys.readouterr().err
    assert _listing(tmp_path) == []


def test_a_disk_too_small_is_refused_before_writing(tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    assert main(["sample", "100,100", "--name", "w", "--out", str(tmp_path / "w.npy")]) == 2
    assert "39.2 KiB" in capsys.readouterr().err
    assert _listing(tmp_path) == []


# --- files: paths, links, signals, pipes (issue 10, item 18) -----------------------------------------


def test_missing_directory_and_too_long_names_are_clear_errors(tmp_path, capsys):
    assert main(["sample", "3,3", "--name", "w", "--out", str(tmp_path / "no" / "w.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sample", "3,3", "--name", "w", "--out", str(tmp_path / ("a" * 300 + ".npy"))]) == 2
    assert "longer than" in capsys.readouterr().err
    (tmp_path / "d.npy").mkdir()
    assert main(["sample", "3,3", "--name", "w", "--out", str(tmp_path / "d.npy")]) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "d.npy").rmdir()
    longest = tmp_path / ("a" * 251 + ".npy")  # 255 bytes: the temporary file's name must not be longer
    assert main(["sample", "3,3", "--name", "w", "--out", str(longest)]) == 0
    assert _listing(tmp_path) == [longest.name]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_directory_is_a_clear_error(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["sample", "3,3", "--name", "w", "--out", str(locked / "w.npy")]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_an_io_error_while_writing_is_one_line_and_leaves_nothing(tmp_path, small_chunks, monkeypatch, capsys):
    def full_disk(stream):
        raise OSError(errno.ENOSPC, "No space left on device")

    original = _files.write_atomically
    monkeypatch.setattr(_sample, "write_atomically", lambda target, write: original(target, full_disk))
    assert main(["sample", "3,3", "--name", "w", "--out", str(tmp_path / "w.npy")]) == 1
    err = capsys.readouterr().err
    assert err == f"berry sample: error: cannot write {tmp_path / 'w.npy'}: No space left on device\n"
    assert _listing(tmp_path) == []


def test_out_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path, capsys):
    real = tmp_path / "real.npy"
    link = tmp_path / "link.npy"
    link.symlink_to(real)  # dangling: the file does not exist yet
    assert main(["sample", "4,4", "--name", "w", "--out", str(link), "--json"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(np.load(real), sample((4, 4), name="w"))
    assert json.loads(capsys.readouterr().out)["file"] == str(real)
    assert main(["sample", "4,4", "--name", "w", "--out", str(link)]) == 2  # it exists now: --force
    assert main(["sample", "4,4", "--name", "v", "--out", str(link), "--force"]) == 0
    assert link.is_symlink()
    np.testing.assert_array_equal(np.load(real), sample((4, 4), name="v"))


def test_overwriting_keeps_the_files_permissions(tmp_path):
    target = tmp_path / "w.npy"
    target.write_bytes(b"old")
    target.chmod(0o640)
    assert main(["sample", "2,2", "--name", "w", "--out", str(target), "--force"]) == 0
    assert target.stat().st_mode & 0o777 == 0o640


_SLOW_WRITE = """
import sys, time
import berry.cli as cli
from berry.cli import _files, _sample, main
_sample.CHUNK_BYTES = 4096
original = _sample.Progress.update
def slow(self, count):
    original(self, count)
    print("writing", flush=True)
    time.sleep(0.05)
_sample.Progress.update = slow
sys.exit(main(["sample", "1000,1000", "--name", "w", "--out", sys.argv[1]]))
"""


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_during_the_write_leaves_no_partial_file(tmp_path, signum, status):
    target = tmp_path / "w.npy"
    process = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(target)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=_env(), text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "writing\n"  # the temporary file exists and is being written
    assert any(name.endswith(".partial") for name in _listing(tmp_path))
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert f"interrupted by {signal.Signals(signum).name}; nothing was written to {target}" in err
    assert "Traceback" not in err
    assert _listing(tmp_path) == []


def test_a_closed_pipe_ends_quietly(tmp_path):
    # The reader (think `| head -1`) leaves after one line of a table far larger than the pipe's buffer:
    # berry exits 141 (128 + SIGPIPE, as a shell reports it) without a traceback.
    command = [sys.executable, "-m", "berry", "probe", "--inits", "he", "--layers", "--no-plot", "--depth", "1200",
               "--width", "4", "--batch-size", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"berry probe: 1200-layer MLP")
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 141, err
    assert err == b""


def test_a_broken_pipe_exits_141(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(_sample, "emit", broken)
    monkeypatch.setattr(cli, "_silence_stdout", lambda: None)  # pytest's captured stdout has no file descriptor
    assert main(["sample", "2,2", "--init", "zeros", "--out", str(tmp_path / "z.npy")]) == 141
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), np.zeros((2, 2), np.float32))  # written before


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
