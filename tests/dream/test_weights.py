import io
import os
import pickle
import time

import numpy as np
import pytest

from gdtools.dream import weights
from gdtools.errors import InputError


def _legacy_header() -> bytes:
    out = io.BytesIO()
    pickle.dump(weights.LEGACY_MAGIC_NUMBER, out, protocol=2)
    pickle.dump(weights.LEGACY_PROTOCOL_VERSION, out, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, out, protocol=2)
    return out.getvalue()


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_reads_the_shipped_state_dict_without_torch():
    state = weights.read_legacy_state_dict(weights.default_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert np.all(np.isfinite(state["_bn0.running_var"])) and np.all(state["_bn0.running_var"] >= 0)


@pytest.mark.parametrize("where", ["state dict", "first pickle"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "ran"
    evil = pickle.dumps(_RunsCode(f"touch {marker}"), protocol=2)
    blob = _legacy_header() + evil if where == "state dict" else evil
    path = tmp_path / "evil.pth"
    path.write_bytes(blob)
    with pytest.raises(InputError, match="system"):
        weights.read_legacy_state_dict(path)
    assert not marker.exists()


def test_globals_beyond_a_state_dict_are_refused_by_name():
    blob = _legacy_header() + pickle.dumps({"x": np.float32(1)}, protocol=2)  # numpy scalar: a global
    with pytest.raises(InputError, match="numpy"):
        weights.read_legacy_state_dict(io.BytesIO(blob))


def test_truncated_or_foreign_files_are_input_errors(tmp_path):
    data = weights.default_weights_path().read_bytes()
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        weights.read_legacy_state_dict(truncated)
    with pytest.raises(InputError):
        weights.read_legacy_state_dict(io.BytesIO(b"not a pickle at all"))
    with pytest.raises(InputError, match="magic"):
        weights.read_legacy_state_dict(io.BytesIO(pickle.dumps(12345, protocol=2)))


def test_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    first = weights.load_state_dict(cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.npz"))
    assert len(cached) == 1 and weights._file_sha256(weights.default_weights_path())[:16] in cached[0].name

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again instead of reading the cache")

    monkeypatch.setattr(weights, "read_legacy_state_dict", must_not_convert)
    second = weights.load_state_dict(cache_dir=tmp_path)
    assert first.keys() == second.keys()
    np.testing.assert_array_equal(first["_fc.bias"], second["_fc.bias"])


def test_the_weights_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    source = tmp_path / "weights.pth"
    source.write_bytes(weights.default_weights_path().read_bytes())
    cache = tmp_path / "cache"
    hashed = []
    real = weights._file_sha256
    monkeypatch.setattr(weights, "_file_sha256", lambda path: hashed.append(path) or real(path))
    first = weights.load_state_dict(path=source, cache_dir=cache)
    weights.load_state_dict(path=source, cache_dir=cache)
    assert len(hashed) == 1  # the second start read the remembered digest
    # the same size, another content and time: hashed again, and converted again under a new name
    data = bytearray(source.read_bytes())
    data[-1] ^= 1  # one bit of the last stored weight
    source.write_bytes(bytes(data))
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    second = weights.load_state_dict(path=source, cache_dir=cache)
    assert len(hashed) == 2 and len(list(cache.glob("*.npz"))) == 2
    assert first.keys() == second.keys()
    # replaced by a file of the same size with its modification time set back (cp -p, rsync -a):
    # its change time differs, so it is hashed again
    mtime = source.stat().st_mtime_ns
    data[-1] ^= 1
    time.sleep(0.01)
    source.write_bytes(bytes(data))
    os.utime(source, ns=(source.stat().st_atime_ns, mtime))
    weights.load_state_dict(path=source, cache_dir=cache)
    assert len(hashed) == 3
    # an unreadable record is no error: the file is hashed again
    (cache / weights._DIGESTS_FILE).write_text("{not json")
    weights.load_state_dict(path=source, cache_dir=cache)
    assert len(hashed) == 4


def test_cache_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert weights.user_cache_dir() == tmp_path / "gdtools"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.user_cache_dir() == weights.Path(os.path.expanduser("~")) / ".cache" / "gdtools"


def test_batch_norm_is_folded_into_the_convolution():
    state = weights.load_state_dict()
    params = weights.params_from_state_dict(state)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 16)).astype(np.float32)  # seven pixels of block 1's 16 input channels
    w = state["_blocks.1._expand_conv.weight"][:, :, 0, 0]
    bn = {k: state[f"_blocks.1._bn0.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
    reference = (x @ w.T - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
    folded = x @ params["blocks"][1]["expand"]["w"] + params["blocks"][1]["expand"]["b"]
    np.testing.assert_allclose(folded, reference, rtol=1e-4, atol=1e-4)
    assert "expand" not in params["blocks"][0]  # expansion ratio 1: no expansion convolution
    assert params["blocks"][3]["depthwise"]["w"].shape == (5, 5, 144)
