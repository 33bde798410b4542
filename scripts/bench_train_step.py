"""PyTorch side of scripts/bench-train-step: one training step (forward + Dice/CE loss + backward
+ Adam) of the same U-Nets as crates/medas-nn/benches/train_step.rs, timed the same way.

usage: bench_train_step.py CASE STEPS WARMUP THREADS   (CASE: unet2d | unet3d)

Prints `RESULT CASE params=... median_s=... steps=... cpu=... peak_mib=... start_mib=...` like the
Rust bench (cpu: process CPU seconds per timed step, all threads); one case per process, so VmHWM is that case's peak resident memory.
"""
import sys
import time

import torch
from torch import nn

CASES = {
    # name: (spatial dims, input shape [N, C, spatial...])
    "unet2d": (2, [8, 1, 256, 256]),
    "unet3d": (3, [2, 1, 96, 96, 96]),
}
CLASSES = 3
DEPTH, BASE, MAX_CHANNELS = 4, 32, 320


def status_mib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


class Unit(nn.Sequential):
    """Convolution (no bias: a norm follows), instance norm (affine), leaky ReLU 0.01."""

    def __init__(self, dims, c_in, c_out):
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d
        super().__init__(conv(c_in, c_out, 3, padding=1, bias=False),
                         norm(c_out, eps=1e-5, affine=True),
                         nn.LeakyReLU(0.01))


def block(dims, c_in, c_out):
    return nn.Sequential(Unit(dims, c_in, c_out), Unit(dims, c_out, c_out))


class UNet(nn.Module):
    """medas-nn's `unet`: DEPTH poolings, channels BASE * 2^level capped at MAX_CHANNELS."""

    def __init__(self, dims, c_in, classes):
        super().__init__()
        channels = [min(BASE << level, MAX_CHANNELS) for level in range(DEPTH + 1)]
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.pool = (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(2)
        self.encoder = nn.ModuleList()
        previous = c_in
        for c in channels:
            self.encoder.append(block(dims, previous, c))
            previous = c
        self.ups, self.decoder = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(DEPTH)):
            self.ups.append(up(channels[level + 1], channels[level], 2, stride=2))
            self.decoder.append(block(dims, 2 * channels[level], channels[level]))
        self.head = conv(channels[0], classes, 1)

    def forward(self, x):
        skips = []
        x = self.encoder[0](x)
        for blk in self.encoder[1:]:
            skips.append(x)
            x = blk(self.pool(x))
        for up, blk in zip(self.ups, self.decoder):
            x = blk(torch.cat([skips.pop(), up(x)], 1))
        return self.head(x)


def dice_ce(logits, labels):
    """medas-nn's `dice_ce` defaults: soft Dice per (image, class) without background, smooth
    1e-5, plus mean cross-entropy; weights 1 and 1 (nnU-Net's DC_and_CE_loss)."""
    n, c = logits.shape[:2]
    flat = logits.reshape(n, c, -1)
    target = labels.reshape(n, -1)
    masks = torch.nn.functional.one_hot(target, c).permute(0, 2, 1).to(flat.dtype)
    probabilities = torch.softmax(flat, 1)[:, 1:]
    masks_fg = masks[:, 1:]
    intersection = (probabilities * masks_fg).sum(2)
    denominator = probabilities.sum(2) + masks_fg.sum(2)
    dice = (2 * intersection + 1e-5) / (denominator + 1e-5).clamp_min(1e-8)
    cross_entropy = torch.nn.functional.cross_entropy(flat, target)
    return 1 - dice.mean() + cross_entropy


def main():
    name, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    dims, shape = CASES[name]
    start_mib = status_mib("VmRSS")
    torch.manual_seed(1)
    net = UNet(dims, shape[1], CLASSES)
    params = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    x = torch.rand(*shape) * 2 - 1
    labels = torch.randint(0, CLASSES, [shape[0], 1, *shape[2:]])
    times, cpus = [], []
    for step in range(warmup + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = dice_ce(net(x), labels)
        scalar = loss.item()
        loss.backward()
        optimizer.step()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        print(f"{name} step {step}: {seconds:.3f} s (CPU {cpu:.2f} s), loss {scalar:.4f}"
              f"{' (warm-up)' if step < warmup else ''}", flush=True)
        if step >= warmup:
            times.append(seconds)
            cpus.append(cpu)
    median = sorted(times)[len(times) // 2]
    peak = status_mib("VmHWM")
    print(f"RESULT {name} params={params} median_s={median:.3f} steps={','.join(f'{t:.3f}' for t in times)} "
          f"cpu={','.join(f'{t:.3f}' for t in cpus)} "
          f"warmup={warmup} peak_mib={peak:.0f} start_mib={start_mib:.0f} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")


if __name__ == "__main__":
    main()
