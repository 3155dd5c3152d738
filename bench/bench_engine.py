"""Engine overhead: seconds per epoch of the training engine against a minimal PyTorch loop.

Both loops train the same model (same initial weights) on the same random tensors with the
same batch size, optimiser and flood level, and evaluate on train, validation and test after
every epoch; they run in the same process, alternately, after a warm-up. The engine also
records what the minimal loop skips: clean-label metrics, gradient norms, flooded fractions.
The ratio engine / minimal is the engine's overhead; the target on CPU is <= 1.05.

    python bench/bench_engine.py                                  # small MLP, CPU
    python bench/bench_engine.py --mlp-width 500                  # the authors' MLP
    python bench/bench_engine.py --arch resnet18 --dataset-shape 3x32x32 --device cuda \\
        --train-size 45000 --val-size 5000 --test-size 10000 --batch-size 128 [--no-bf16]

Engine seconds are its `epoch_seconds` (training plus evaluation of one epoch, as written
to metrics.parquet); minimal seconds are timed around the same work, with a device
synchronisation before each clock reading.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from flooding.checkpoint import SignalFlag
from flooding.config import RunConfig
from flooding.data import DataBundle
from flooding.data.sampling import stream_seed
from flooding.models import build_model
from flooding.runtime import Runtime, resolve_device
from flooding.train import train_run

EVAL_BATCH = 1024


def random_bundle(args: argparse.Namespace, device: torch.device) -> DataBundle:
    """Random inputs and labels of the requested shape, already on the device."""
    gen = torch.Generator().manual_seed(0)
    shape = tuple(int(s) for s in args.dataset_shape.split("x"))

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, *shape, generator=gen)
        y = torch.randint(0, args.num_classes, (n,), generator=gen)
        return x.to(device), y.to(device)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        split(args.train_size),
        split(args.val_size),
        split(args.test_size),
    )
    return DataBundle(
        x_train=x_train,
        y_train=y_train,
        y_train_clean=y_train,
        x_val=x_val,
        y_val=y_val,
        y_val_clean=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=args.num_classes,
        input_shape=shape,
        augmentation="none",
        bayes_error=None,
        name="random",
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def minimal_loop(
    cfg: RunConfig,
    data: DataBundle,
    device: torch.device,
    bf16: bool,
    channels_last: bool,
    foreach: bool | None = None,
) -> list[float]:
    """The same work written as plainly as possible, torch's SGD as it comes (foreach
    None: one tensor at a time on the CPU, all at once on CUDA); seconds of each epoch."""
    images = len(data.input_shape) == 3
    fmt = torch.channels_last if channels_last and images else torch.contiguous_format
    torch.manual_seed(stream_seed(cfg.seed, "init"))  # the engine's initial weights
    model = build_model(cfg, data.input_shape, data.num_classes).to(device, memory_format=fmt)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        foreach=foreach,
    )
    x_train = data.x_train.contiguous(memory_format=fmt)
    splits = [
        (x_train, data.y_train),
        (data.x_val.contiguous(memory_format=fmt), data.y_val),
        (data.x_test.contiguous(memory_format=fmt), data.y_test),
    ]
    n, b = len(data.y_train), cfg.flood_level
    times = []
    for _ in range(cfg.epochs):
        sync(device)
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n).to(device)
        for lo in range(0, n, cfg.batch_size):
            index = order[lo : lo + cfg.batch_size]
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                logits = model(x_train[index])
            loss = F.cross_entropy(logits.float(), data.y_train[index])
            loss = (loss - b).abs() + b
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        results = []
        with torch.inference_mode():
            for x, y in splits:
                total = torch.zeros((), dtype=torch.float64, device=device)
                correct = torch.zeros((), dtype=torch.int64, device=device)
                for lo in range(0, len(x), EVAL_BATCH):
                    with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                        logits = model(x[lo : lo + EVAL_BATCH]).float()
                    total += F.cross_entropy(logits, y[lo : lo + EVAL_BATCH], reduction="sum")
                    correct += (logits.argmax(1) == y[lo : lo + EVAL_BATCH]).sum()
                results.append((total.item() / len(x), correct.item() / len(x)))
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def engine_loop(
    cfg: RunConfig, data: DataBundle, device: torch.device, bf16: bool, channels_last: bool
) -> list[float]:
    """flooding.train's engine on the same data; seconds of each epoch from its metrics."""
    with tempfile.TemporaryDirectory() as out:
        runtime = Runtime(
            out=Path(out), device=str(device), bf16=bf16, channels_last=channels_last,
            checkpoint_every=0,
        )  # fmt: skip
        with SignalFlag() as stop:
            code = train_run(cfg, runtime, lambda _: data, stop)
        if code != 0:
            raise RuntimeError("the engine run did not complete")
        frame = pd.read_parquet(Path(out) / "metrics.parquet")
    return list(frame.loc[frame["epoch"] >= 1, "epoch_seconds"])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", default="mlp", help="mlp, resnet_tiny, resnet18, ... (default: mlp)")
    p.add_argument("--dataset-shape", default="2", help="input shape, e.g. 2 or 3x32x32")
    p.add_argument("--num-classes", type=int, default=2)
    p.add_argument("--train-size", type=int, default=800)
    p.add_argument("--val-size", type=int, default=200)
    p.add_argument("--test-size", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--mlp-depth", type=int, default=4)
    p.add_argument("--mlp-width", type=int, default=64)
    p.add_argument("--flood-level", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=10, help="timed epochs per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed epochs at the start of each")
    p.add_argument("--repeats", type=int, default=30, help="engine/minimal alternations")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--minimal-foreach",
        action="store_true",
        help="the minimal loop's SGD steps all tensors at once, as the engine's does: the "
        "overhead of the engine's bookkeeping alone, without its faster update on the CPU",
    )
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    bf16, channels_last = args.bf16 and cuda, args.channels_last and cuda
    cfg = RunConfig(
        arch=args.arch,
        mlp_depth=args.mlp_depth,
        mlp_width=args.mlp_width,
        epochs=args.warmup + args.epochs,
        batch_size=args.batch_size,
        flood_level=args.flood_level,
    )
    data = random_bundle(args, device)
    foreach = True if args.minimal_foreach else None
    engine: list[list[float]] = []
    minimal: list[list[float]] = []
    for _ in range(args.repeats):
        engine.append(engine_loop(cfg, data, device, bf16, channels_last)[args.warmup :])
        minimal.append(minimal_loop(cfg, data, device, bf16, channels_last, foreach)[args.warmup :])
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {args.threads} thread(s)"
    print(f"device: {name}; arch {args.arch}, input {args.dataset_shape}, batch {args.batch_size}")
    print(f"train/val/test {args.train_size}/{args.val_size}/{args.test_size}; bf16 {bf16}, "
          f"channels_last {channels_last}; minimal SGD foreach {foreach}")  # fmt: skip
    e = statistics.median(t for times in engine for t in times)
    m = statistics.median(t for times in minimal for t in times)
    print(f"engine  s/epoch: {e:.4f} (median of {args.repeats} x {args.epochs} epochs)")
    print(f"minimal s/epoch: {m:.4f}")
    # Each repeat's engine epochs against the minimal ones run right after them: a machine
    # whose speed drifts moves both sides of a pair alike.
    pairs = [
        statistics.median(e_r) / statistics.median(m_r)
        for e_r, m_r in zip(engine, minimal, strict=True)
    ]
    print(f"paired ratios: {min(pairs):.3f} to {max(pairs):.3f}")
    print(f"ratio engine/minimal: {statistics.median(pairs):.3f} (median of {len(pairs)} pairs)")


if __name__ == "__main__":
    main()
