"""save/load round trips (bit-exact), damaged files (always ValueError, never a crash or
another exception type), and copy.deepcopy / pickle."""
from __future__ import annotations

import copy
import pickle
import zipfile

import numpy as np
import pytest
from conftest import DTYPES

import fastnet


def _trained_net(dtype, bias, layers=(4, 6, 3), activation="tanh", output="sigmoid",
                 threshold=0.0):
    net = fastnet.Network(list(layers), activation=activation, output_activation=output,
                          bias=bias, dtype=dtype, seed=7, step_threshold=threshold)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, layers[0]))
    Y = rng.uniform(0, 1, (20, layers[-1]))
    net.fit(X, Y, epochs=3, learning_rate=0.3, batch_size=6, seed=1)
    return net, X, Y


def _same_config(a, b):
    return (a.layers == b.layers and a.activations == b.activations and a.bias == b.bias
            and a.dtype == b.dtype and a.step_threshold == b.step_threshold
            and a.activation == b.activation and a.output_activation == b.output_activation)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_save_load_round_trip_is_bit_exact(tmp_path, dtype, bias):
    net, X, _ = _trained_net(dtype, bias)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = fastnet.load(path)
    assert _same_config(loaded, net)
    assert repr(loaded) == repr(net)
    assert len(loaded.weights) == len(net.weights)
    for a, b in zip(loaded.weights + loaded.biases, net.weights + net.biases):
        assert a.dtype == b.dtype == dtype
        assert np.array_equal(a, b)
    assert len(loaded.biases) == (2 if bias else 0)
    assert loaded == net
    assert np.array_equal(loaded.predict(X), net.predict(X))


@pytest.mark.parametrize("layers,activation,output,threshold", [
    ((1, 1), "identity", "identity", 0.0),
    ((3, 5, 4, 2, 1), "relu", "step", 2.0),
    ((2, 3, 2), "step", "sigmoid", -0.5),
])
def test_save_load_keeps_every_setting(tmp_path, layers, activation, output, threshold):
    net, X, _ = _trained_net(np.float64, True, layers, activation, output, threshold)
    net.save(str(tmp_path / "a.npz"))  # a str path too
    loaded = fastnet.load(str(tmp_path / "a.npz"))
    assert _same_config(loaded, net) and loaded == net
    assert np.array_equal(loaded.predict(X), net.predict(X))


def test_save_writes_exactly_the_given_name(tmp_path):
    net = fastnet.Network([2, 2], seed=0)
    net.save(tmp_path / "model.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]
    assert fastnet.load(tmp_path / "model.bin") == net


@pytest.fixture
def saved(tmp_path):
    net, _, _ = _trained_net(np.float32, True)
    path = tmp_path / "good.npz"
    net.save(path)
    return path


def _rewrite(saved, tmp_path, compressed=False, **changes):
    """A valid .npz with some fields replaced (None: removed)."""
    with np.load(saved) as f:
        data = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "changed.npz"
    (np.savez_compressed if compressed else np.savez)(path, **data)
    return path


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_load_of_truncated_file_raises_value_error(saved, tmp_path, fraction):
    data = saved.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError):
        fastnet.load(path)


@pytest.mark.parametrize("content", [
    b"",
    b"\x00" * 100,
    np.random.default_rng(0).bytes(3000),
    b"PK\x03\x04" + np.random.default_rng(1).bytes(3000),  # looks like a zip, is not
    b"\x93NUMPY garbage",
], ids=["empty", "zeros", "random", "zip-magic-random", "npy-magic-garbage"])
def test_load_of_random_bytes_raises_value_error(tmp_path, content):
    path = tmp_path / "random.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        fastnet.load(path)


@pytest.mark.parametrize("member", ["format.npy", "layers.npy", "W0.npy", "b1.npy"])
def test_load_of_file_with_a_corrupted_member_raises_value_error(saved, tmp_path, member):
    """One bit flipped in the last stored byte of a member (the zip CRC no longer matches)."""
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo(member)
    start = info.header_offset
    name_len = int.from_bytes(data[start + 26:start + 28], "little")
    extra_len = int.from_bytes(data[start + 28:start + 30], "little")
    data[start + 30 + name_len + extra_len + info.compress_size - 1] ^= 0x01
    path = tmp_path / "corrupt.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        fastnet.load(path)


@pytest.mark.parametrize("missing", ["format", "format_version", "layers", "activation",
                                     "output_activation", "bias", "dtype", "step_threshold",
                                     "W0", "W1", "b0", "b1"])
def test_load_of_npz_missing_a_key_raises_value_error(saved, tmp_path, missing):
    path = _rewrite(saved, tmp_path, **{missing: None})
    with pytest.raises(ValueError, match=missing):
        fastnet.load(path)


@pytest.mark.parametrize("changes", [
    dict(format=np.array("something.else")),
    dict(format=np.array(["fastnet.Network", "x"])),
    dict(format_version=np.array(2, np.int64)),
    dict(format_version=np.array("one")),
    dict(format_version=np.array([1, 1])),
    dict(layers=np.array([4, 7, 3])),
    dict(layers=np.array([4, 0, 3])),
    dict(layers=np.array("abc")),
    dict(activation=np.array("softmax")),
    dict(dtype=np.array("int32")),
    dict(bias=np.array([True, False])),
    dict(step_threshold=np.array(np.nan)),
    dict(W0=np.zeros((6, 4), np.float32)),
    dict(W1=np.full((6, 3), np.nan, np.float32)),
    dict(b0=np.zeros(5, np.float32)),
    dict(W0=np.array([["a"] * 6] * 4)),
], ids=lambda c: ",".join(f"{k}={v!r}"[:40] for k, v in c.items()))
def test_load_of_npz_with_wrong_fields_raises_value_error(saved, tmp_path, changes):
    path = _rewrite(saved, tmp_path, **changes)
    with pytest.raises(ValueError):
        fastnet.load(path)


def test_load_of_a_single_npy_array_raises_value_error(tmp_path):
    path = tmp_path / "single.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError):
        fastnet.load(path)


def test_load_of_a_zip_that_is_not_npz_raises_value_error(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError):
        fastnet.load(path)


def test_load_of_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastnet.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "pickle-5-out-of-band"])
def test_copies_are_equal_and_train_independently(dtype, bias, how):
    """Copies own writable parameters on cache lines (as every network's are), also from
    pickle protocol 5's out-of-band buffers, which arrive as read-only bytes: fit had
    written into those."""
    net, X, Y = _trained_net(dtype, bias)
    buffers = []
    if how == "deepcopy":
        clone = copy.deepcopy(net)
    elif how == "pickle":
        clone = pickle.loads(pickle.dumps(net))
    else:
        data = pickle.dumps(net, protocol=5, buffer_callback=buffers.append)
        buffers = [bytes(b.raw()) for b in buffers]
        assert buffers, "the parameters travel out of band"
        clone = pickle.loads(data, buffers=buffers)
    sent = [bytearray(b) for b in buffers]  # copies (bytes(b) of bytes is b itself)
    assert all(p.flags.writeable and p.flags.c_contiguous and p.ctypes.data % 64 == 0
               for p in clone.weights + clone.biases)
    assert clone == net and _same_config(clone, net)
    assert np.array_equal(clone.predict(X), net.predict(X))
    original = [p.copy() for p in net.weights + net.biases]
    clone.fit(X, Y, epochs=2, learning_rate=0.5)
    assert clone != net
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, original))
    trained_clone = [p.copy() for p in clone.weights + clone.biases]
    net.fit(X, Y, epochs=1, learning_rate=0.1)
    assert all(np.array_equal(a, b) for a, b in zip(clone.weights + clone.biases, trained_clone))
    assert [bytearray(b) for b in buffers] == sent  # immutable bytes stay so


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_parameters_are_read_but_not_trained(dtype):
    """Parameters a user froze (``flags.writeable = False`` on the network's own arrays)
    still predict; fit and step refuse them, naming the array, and change nothing."""
    net, X, Y = _trained_net(dtype, True)
    want = net.predict(X)
    net.biases[1].flags.writeable = False
    before = [p.copy() for p in net.weights + net.biases]
    assert np.array_equal(net.predict(X), want)
    assert net.loss(X, Y) > 0
    for train in (lambda: net.fit(X, Y, epochs=2, learning_rate=0.5),
                  lambda: net.step(X, Y, 0.5)):
        with pytest.raises(ValueError, match=r"biases\[1\] is read-only"):
            train()
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before))


def test_copy_shares_parameters_and_keeps_them_frozen(tmp_path):
    """copy.copy shares the arrays (a frozen one too: fit of the copy refuses it as fit
    of the original does, instead of updating the others); deepcopy owns writable ones."""
    net, X, Y = _trained_net(np.float64, True)
    net.weights[0].flags.writeable = False
    before = [p.copy() for p in net.weights + net.biases]
    shallow = copy.copy(net)
    assert all(a is b for a, b in zip(shallow.weights + shallow.biases,
                                      net.weights + net.biases))
    with pytest.raises(ValueError, match=r"weights\[0\] is read-only"):
        shallow.fit(X, Y, epochs=1, learning_rate=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before))
    deep = copy.deepcopy(net)
    deep.fit(X, Y, epochs=1, learning_rate=0.5)
    assert deep != net
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before))


def _refused_cheaply(bad):
    """Loads ``bad`` (a file of at most 1 MB), which must raise ValueError without
    allocating for what it declares; returns the message, which names the file once and
    quotes no long value."""
    import tracemalloc

    assert bad.stat().st_size < 10**6
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            fastnet.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10**7
    message = str(info.value)
    assert message.count(str(bad)) == 1
    assert len(message) < 1000
    return message


@pytest.mark.parametrize("changes", [
    dict(layers=np.array([8000, 8000, 3])),
    dict(layers=np.array([4, 10**12, 3])),
    dict(junk=np.zeros(10**8, np.uint8)),  # a member that inflates to 100 MB
    dict(activation=np.zeros(10**8, np.uint8)),  # a field that does
    dict(activation=np.array("\0" * 10**8)),  # a single string of 400 MB
    dict(format=np.array("x" * 10**6)),  # quoted in the message, had it been read
    dict(W1=np.zeros((6, 3), np.complex64)),
], ids=["layers of 8000", "layers of 10^12", "inflating member", "inflating field",
        "inflating string", "long format", "complex weights"])
def test_hostile_small_files_are_refused_before_anything_is_read_or_built(saved, tmp_path,
                                                                          changes):
    """A file of a few KB that declares huge layers, or holds a member that inflates to
    100 MB, raises ValueError at once, without allocating for what it declares (a
    network of the declared layers had been built first: 767 MB for [8000, 8000, 2],
    MemoryError for larger); the message names the file once."""
    _refused_cheaply(_rewrite(saved, tmp_path, compressed=True, **changes))


@pytest.mark.parametrize("layers", [[8000, 8000, 3], [200_000, 200_000, 1]])
def test_members_holding_less_than_their_headers_declare_are_refused_before_building(
        saved, tmp_path, layers):
    """Layers and W headers that agree, each W member holding 16 bytes of data: refused
    from the members' sizes, before any array is read or a network is built (the
    network of the declared layers had been built first: 768 MB for [8000, 8000, 3],
    MemoryError for [200000, 200000, 1])."""
    with np.load(saved) as f:
        fields = {k: f[k] for k in f.files if k[0] not in "Wb"}
    fields["layers"] = np.array(layers, np.int64)
    fields["bias"] = np.array(False)
    bad = tmp_path / "headers-only.npz"
    with zipfile.ZipFile(bad, "w") as z:
        for name, value in fields.items():
            with z.open(name + ".npy", "w") as member:
                np.save(member, value)
        for i in range(len(layers) - 1):
            with z.open(f"W{i}.npy", "w") as member:
                np.lib.format.write_array_header_1_0(
                    member, {"descr": "<f4", "fortran_order": False,
                             "shape": (layers[i], layers[i + 1])})
                member.write(bytes(16))
    assert "W0 declares shape" in _refused_cheaply(bad)
    # the same members, their zip headers claiming all the bytes the headers declare
    # (where 4 bytes can say so): refused from their packed sizes, which cannot hold them
    # (NumPy had allocated all of W0 before its read ended early, in an EOFError whose
    # empty message left the error ending in "W0: ")
    data = bytearray(bad.read_bytes())
    for i in range(len(layers) - 1):
        name = f"W{i}.npy".encode()
        with zipfile.ZipFile(bad) as z:
            info = z.getinfo(name.decode())
        claimed = info.file_size + 4 * (layers[i] * layers[i + 1] - 4)
        if claimed >= 1 << 32:
            return
        data[info.header_offset + 22:info.header_offset + 26] = claimed.to_bytes(4, "little")
        central = data.index(b"PK\x01\x02")  # the central directory's entries, to W{i}'s
        while data[central + 46:central + 46 + len(name)] != name:
            central = data.index(b"PK\x01\x02", central + 4)
        data[central + 24:central + 28] = claimed.to_bytes(4, "little")
    lying = tmp_path / "lying-sizes.npz"
    lying.write_bytes(bytes(data))
    assert "W0 declares shape" in _refused_cheaply(lying)


def test_save_refuses_parameters_set_to_nan_in_place_and_writes_nothing(tmp_path):
    """In-place edits can put NaN into the network's own arrays; save raises as load
    would refuse the file, instead of writing one that cannot be read back."""
    net = fastnet.Network([2, 3, 1], bias=True, seed=0)
    net.biases[1][0] = np.inf
    with pytest.raises(ValueError, match=r"cannot save .* biases\[1\] contains NaN or inf"):
        net.save(tmp_path / "net.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_network_of_more_layers_than_65536_round_trips(tmp_path):
    """Network takes any depth, and load reads any depth a file's members hold (it had
    refused more than 65536 sizes)."""
    net = fastnet.Network([1] * 70_001, "identity", seed=0)
    net.save(tmp_path / "deep.npz")
    assert fastnet.load(tmp_path / "deep.npz") == net
