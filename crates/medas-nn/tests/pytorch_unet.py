"""PyTorch-layout U-Net weights and their reference output, for tests/pytorch_import.rs.

Usage: python pytorch_unet.py OUT_DIR NORM DIMS   (NORM: batch or instance; DIMS: 2 or 3)

Writes OUT_DIR/weights.safetensors (random weights under PyTorch's state_dict names of the
`UNet` class below), the same weights as OUT_DIR/weights.pt in `torch.save`'s layout written
with the standard library (`save_torch_zip`), and OUT_DIR/reference.safetensors (`input`, and `output` computed with
plain numpy: convolution as an einsum over shifted windows, normalisation in eval mode, leaky
ReLU, max pooling, transposed convolution, concatenation, 1x1 head). When torch is importable
the same weights are also loaded into `UNet`, its output is stored as `torch_output` and its
`torch.save(model.state_dict())` as OUT_DIR/weights_torch.pt.

`UNet` is the PyTorch module MEDAS's "unet" corresponds to, layer for layer, so weights
trained with it load into MEDAS (medas_nn::store::pytorch::import_unet). Save them with
`safetensors.torch.save_file(model.state_dict(), "weights.safetensors")`. The MEDAS config
for `UNet(1, 2, depth=2, base_channels=4, norm="batch", dims=2)` is
    {"name": "unet", "spatial": "2d", "in_channels": 1, "classes": 2, "depth": 2,
     "base_channels": 4, "norm": "batch"}
(`dims=3` is "spatial": "3d"; the tensor names are the same in 2-D and 3-D).
"""
import sys

import numpy as np
from safetensors.numpy import save_file

TORCH_UNET = '''
import torch
from torch import nn

def layers(dims):
    """(Conv, BatchNorm, InstanceNorm, MaxPool, ConvTranspose) for 2-D or 3-D."""
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.MaxPool2d, nn.ConvTranspose2d
    return nn.Conv3d, nn.BatchNorm3d, nn.InstanceNorm3d, nn.MaxPool3d, nn.ConvTranspose3d

class ConvNormAct(nn.Module):
    def __init__(self, cin, cout, kernel, norm, dims):
        super().__init__()
        Conv, BatchNorm, InstanceNorm, _, _ = layers(dims)
        self.conv = Conv(cin, cout, kernel, padding=kernel // 2, bias=norm == "none")
        self.norm = {"batch": lambda: BatchNorm(cout),           # eps 1e-5, momentum 0.1
                     "instance": lambda: InstanceNorm(cout, affine=True),
                     "none": nn.Identity}[norm]()
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))

class Block(nn.Module):
    def __init__(self, cin, cout, kernel, norm, dims, convs=2):
        super().__init__()
        self.convs = nn.ModuleList([ConvNormAct(cin if i == 0 else cout, cout, kernel, norm, dims) for i in range(convs)])

    def forward(self, x):
        for unit in self.convs:
            x = unit(x)
        return x

class UNet(nn.Module):
    """MEDAS's "unet": channels base * 2**level (capped at max_channels) for levels 0..depth."""
    def __init__(self, in_channels=1, classes=2, depth=4, base_channels=32, max_channels=320, kernel=3, norm="instance", convs=2, dims=3):
        super().__init__()
        Conv, _, _, MaxPool, ConvTranspose = layers(dims)
        c = [min(base_channels << level, max_channels) for level in range(depth + 1)]
        self.encoder = nn.ModuleList([Block(in_channels if l == 0 else c[l - 1], c[l], kernel, norm, dims, convs) for l in range(depth + 1)])
        self.pool = MaxPool(2)
        levels = list(reversed(range(depth)))  # decoder goes deepest first
        self.ups = nn.ModuleList([ConvTranspose(c[l + 1], c[l], 2, stride=2) for l in levels])
        self.decoder = nn.ModuleList([Block(2 * c[l], c[l], kernel, norm, dims, convs) for l in levels])
        self.head = Conv(c[0], classes, 1)

    def forward(self, x):
        skips = []
        x = self.encoder[0](x)
        for block in self.encoder[1:]:
            skips.append(x)
            x = block(self.pool(x))
        for up, block in zip(self.ups, self.decoder):
            x = block(torch.cat([skips.pop(), up(x)], 1))  # skip first, then the up-sampled
        return self.head(x)
'''

DEPTH, BASE, IN, CLASSES, KERNEL, SIZE = 2, 4, 1, 2, 3, 16
CHANNELS = [BASE << level for level in range(DEPTH + 1)]


def random_weights(norm, dims, rng):
    weights = {}
    k = (KERNEL,) * dims

    def block(prefix, cin, cout):
        for i in range(2):
            fan_in = (cin if i == 0 else cout) * KERNEL**dims
            weights[f"{prefix}.convs.{i}.conv.weight"] = rng.uniform(-1, 1, (cout, cin if i == 0 else cout) + k) / np.sqrt(fan_in)
            weights[f"{prefix}.convs.{i}.norm.weight"] = rng.uniform(0.5, 1.5, cout)
            weights[f"{prefix}.convs.{i}.norm.bias"] = rng.uniform(-0.5, 0.5, cout)
            if norm == "batch":
                weights[f"{prefix}.convs.{i}.norm.running_mean"] = rng.uniform(-0.5, 0.5, cout)
                weights[f"{prefix}.convs.{i}.norm.running_var"] = rng.uniform(0.2, 2.0, cout)
                weights[f"{prefix}.convs.{i}.norm.num_batches_tracked"] = np.array(7, dtype=np.int64)

    for level in range(DEPTH + 1):
        block(f"encoder.{level}", IN if level == 0 else CHANNELS[level - 1], CHANNELS[level])
    for n, level in enumerate(reversed(range(DEPTH))):
        cin, cout = CHANNELS[level + 1], CHANNELS[level]
        weights[f"ups.{n}.weight"] = rng.uniform(-1, 1, (cin, cout) + (2,) * dims) / np.sqrt(cout * 2**dims)
        weights[f"ups.{n}.bias"] = rng.uniform(-0.5, 0.5, cout)
        block(f"decoder.{n}", 2 * cout, cout)
    weights["head.weight"] = rng.uniform(-1, 1, (CLASSES, CHANNELS[0]) + (1,) * dims) / np.sqrt(CHANNELS[0])
    weights["head.bias"] = rng.uniform(-0.5, 0.5, CLASSES)
    # Stored as float32 (what the file holds); the reference computes in float64 from those.
    return {k: (v if v.dtype == np.int64 else v.astype(np.float32)) for k, v in weights.items()}


def channel(v, dims):
    """A per-channel vector shaped to broadcast over (N, C, spatial...)."""
    return v.reshape((1, -1) + (1,) * dims)


def conv(x, w, bias=None):
    """Cross-correlation with zero padding k // 2 (PyTorch's Conv2d/3d), x (N, C, spatial...)."""
    k, dims = w.shape[-1], w.ndim - 2
    p = k // 2
    padded = np.pad(x, ((0, 0), (0, 0)) + ((p, p),) * dims)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k,) * dims, axis=tuple(range(2, 2 + dims)))
    space, taps = "dhw"[3 - dims:], "ijk"[:dims]  # windows: N C spatial... taps...
    y = np.einsum(f"nc{space}{taps},oc{taps}->no{space}", windows, w)
    return y if bias is None else y + channel(bias, dims)


def norm(x, weights, prefix, kind):
    dims = x.ndim - 2
    g, b = weights[prefix + ".weight"], weights[prefix + ".bias"]
    if kind == "batch":
        mean, var = channel(weights[prefix + ".running_mean"], dims), channel(weights[prefix + ".running_var"], dims)
    else:
        axes = tuple(range(2, x.ndim))
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * channel(g, dims) + channel(b, dims)


def leaky_relu(x):
    return np.where(x >= 0, x, 0.01 * x)


def block(x, weights, prefix, kind):
    for i in range(2):
        x = leaky_relu(norm(conv(x, weights[f"{prefix}.convs.{i}.conv.weight"]), weights, f"{prefix}.convs.{i}.norm", kind))
    return x


def max_pool(x):
    halves = [s for size in x.shape[2:] for s in (size // 2, 2)]
    return x.reshape(x.shape[:2] + tuple(halves)).max(axis=tuple(range(3, 2 * x.ndim - 1, 2)))


def up(x, w, bias):
    """Transposed convolution, kernel = stride = 2: every input voxel spreads into a 2x2(x2) patch."""
    dims = x.ndim - 2
    space, taps = "dhw"[3 - dims:], "ijk"[:dims]
    interleaved = "".join(s + t for s, t in zip(space, taps))
    y = np.einsum(f"nc{space},co{taps}->no{interleaved}", x, w)
    return y.reshape(x.shape[:1] + (w.shape[1],) + tuple(2 * s for s in x.shape[2:])) + channel(bias, dims)


def forward(x, weights, kind):
    w = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype != np.int64}
    skips = []
    x = block(x, w, "encoder.0", kind)
    for level in range(1, DEPTH + 1):
        skips.append(x)
        x = block(max_pool(x), w, f"encoder.{level}", kind)
    for n in range(DEPTH):
        x = block(np.concatenate([skips.pop(), up(x, w[f"ups.{n}.weight"], w[f"ups.{n}.bias"])], axis=1), w, f"decoder.{n}", kind)
    return conv(x, w["head.weight"], w["head.bias"])


def save_torch_zip(weights, path):
    """`torch.save(state_dict, path)`'s file with the standard library only: a zip (stored
    entries) of `archive/data.pkl` (protocol-2 pickle of an OrderedDict whose tensors reduce to
    `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`,
    storages as persistent ids `("storage", torch.FloatStorage, key, "cpu", numel)`, and the
    `_metadata` attribute), `archive/data/KEY` (raw little-endian elements) and
    `archive/version`. `head.weight` is stored transposed (a non-contiguous stride) and the
    biases of `ups.*` share one storage at offsets, as views do in real state_dicts."""
    import collections
    import io
    import pickle
    import types
    import zipfile

    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    storage_types = {}
    for dtype, name in ((np.float32, "FloatStorage"), (np.int64, "LongStorage")):
        storage_types[np.dtype(dtype)] = type(name, (), {"__module__": "torch"})
        setattr(fake_torch, name, storage_types[np.dtype(dtype)])

    def _rebuild_tensor_v2(*args):
        raise RuntimeError("only pickled here")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    fake_torch._utils = fake_utils

    class Storage:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, storage, offset, shape, stride):
            self.args = (storage, offset, tuple(shape), tuple(stride), False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", storage_types[obj.array.dtype], obj.key, "cpu", obj.array.size)
            return None

    storages, state = [], collections.OrderedDict()

    def storage(array):
        storages.append(Storage(str(len(storages)), np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"))))
        return storages[-1]

    shared_biases = [k for k in weights if k.startswith("ups.") and k.endswith(".bias")]
    shared = storage(np.concatenate([weights[k] for k in shared_biases]))
    offset = 0
    for key, value in weights.items():
        if key in shared_biases:
            state[key] = Tensor(shared, offset, value.shape, (1,))
            offset += value.size
        elif key == "head.weight":
            transposed = value.transpose()
            strides = [s // value.itemsize for s in np.ascontiguousarray(transposed).strides]
            state[key] = Tensor(storage(transposed), 0, value.shape, reversed(strides))
        else:
            state[key] = Tensor(storage(value), 0, value.shape, [s // value.itemsize for s in value.strides])
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        buffer = io.BytesIO()
        Writer(buffer, protocol=2).dump(state)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for s in storages:
            archive.writestr(f"archive/data/{s.key}", s.array.tobytes())
        archive.writestr("archive/version", "3\n")


def main():
    out_dir, kind, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng((20261124 if kind == "batch" else 7) + dims)
    weights = random_weights(kind, dims, rng)
    shape = (2, IN, SIZE, SIZE) if dims == 2 else (1, IN, 8, SIZE, 8)
    x = rng.normal(0.0, 1.0, shape).astype(np.float32)
    reference = {"input": x, "output": forward(x.astype(np.float64), weights, kind).astype(np.float32)}
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
    if torch is not None:
        scope = {}
        exec(TORCH_UNET, scope)
        model = scope["UNet"](IN, CLASSES, DEPTH, BASE, norm=kind, dims=dims).eval()
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
        with torch.no_grad():
            reference["torch_output"] = model(torch.from_numpy(x)).numpy()
        torch.save(model.state_dict(), f"{out_dir}/weights_torch.pt")
    save_file(weights, f"{out_dir}/weights.safetensors")
    save_torch_zip(weights, f"{out_dir}/weights.pt")
    save_file(reference, f"{out_dir}/reference.safetensors")
    print("torch" if torch is not None else "numpy only")


main()
