"""Train the ERD network: ``smart-scan-train`` (``python -m steering.tools.train``; under ``torchrun`` too).

1. Training images: scikit-image's bundled images (those the benchmark does not use) and synthetic
   particles, grains, flakes, domains and Bragg-like peaks. Nothing from ``shared/data`` is used.
2. Sampling states: random and low-discrepancy masks at fractions from 1% to 80%; then states the
   sampler itself visits when driven by a first model (so the network learns the states it meets).
3. Labels (`steering.labels`): by default the realised reduction of the squared error of the
   linear reconstruction that measuring each pixel brings (exact Delaunay insertion against the
   true image); ``--label gaussian`` takes SLADS' Gaussian-window approximation instead (window
   ``sigma = d / c``), which the realised label beat by 0.1-0.2 dB PSNR at 5-10% measured on the
   benchmark and most on noisy scans, where the window credits a measurement with the noise of
   its neighbours.
4. Training: an image-wise train/validation split (scikit-learn ``GroupShuffleSplit``), Adam on the
   smooth-L1 loss of ``log(max(label, 0) + floor)`` (a realised reduction can be negative: a noisy
   value can spoil its neighbours; an ``asinh`` target that keeps the sign scored 0.6 dB worse, and
   for the Gaussian label a Poisson deviance, which fits the mean instead of the geometric mean,
   also scored 0.6 dB worse); the validation figures go into the model card.

Writes ``<out>.safetensors`` and ``<out>.json`` (the model card).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from scipy.stats import spearmanr
from sklearn.model_selection import GroupShuffleSplit
from tqdm import tqdm

from ..erd import ERDNet, default_model_path, save_model
from ..features import FEATURE_NAMES
from ..labels import realised_reduction, reduction_in_distortion
from ..loop import run
from ..metrics import psnr
from ..sampler import Sampler
from ..stopping import StopCriteria
from ..synthetic import KINDS, synthetic_image

__all__ = ["TRAIN_SKIMAGE", "training_images", "state_samples", "main"]

TRAIN_SKIMAGE = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "clock",
    "text", "page", "horse", "moon", "brick", "gravel", "grass", "cell", "retina",
)  # fmt: skip
RANDOM_FRACTIONS = (0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.25, 0.4, 0.6, 0.8)
VISITED_FRACTIONS = (0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3)
_LABEL_FLOOR = 1e-5
_GAIN_FLOOR = 1e-6


def training_images(
    n_synthetic: int, size: int, seed: int, max_skimage: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """scikit-image training images (grey, at most ``size`` a side) and synthetic ones, in [0, 1]."""
    import skimage.data
    from skimage.transform import resize

    from ..images import as_image

    out = []
    for name in TRAIN_SKIMAGE[:max_skimage]:
        img = as_image(getattr(skimage.data, name)())
        f = size / max(img.shape)
        if f < 1:
            img = resize(img, (round(img.shape[0] * f), round(img.shape[1] * f)), anti_aliasing=True)
        out.append((f"skimage/{name}", (img - img.min()) / max(np.ptp(img), 1e-12)))
    rng = np.random.default_rng(seed)
    for i in range(n_synthetic):
        kind = KINDS[i % len(KINDS)]
        out.append((f"synthetic/{kind}_{i}", synthetic_image(kind, size, rng=rng)))
    return out


def _state_rows(
    s: Sampler, truth: np.ndarray, c: float, n_pixels: int, rng, label: str = "realised"
) -> tuple[np.ndarray, np.ndarray]:
    """Features and log labels of up to ``n_pixels`` unmeasured pixels of the sampler's state."""
    unmeasured = np.flatnonzero(~s.measured_mask)
    if len(unmeasured) == 0:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.float32)
    err = np.abs(truth - s.reconstruction) / s.intensity_scale
    rd = reduction_in_distortion(err, s.distance, c).ravel()[unmeasured]
    # Half uniform, half the highest-RD pixels: the network must rank the top well. The Gaussian
    # RD of every pixel is cheap, so it picks the top half for the realised label too, which is
    # computed only at the pixels picked.
    k = min(n_pixels, len(unmeasured))
    top = np.argpartition(-rd, k // 2 - 1)[: k // 2] if k >= 2 else np.zeros(0, np.int64)
    uni = rng.choice(len(unmeasured), k - len(top), replace=False)
    pick = np.unique(np.concatenate([top, uni]))
    feats = s.features_at(unmeasured[pick])
    if label == "realised":
        pts = np.stack(np.divmod(unmeasured[pick], truth.shape[1]), axis=1)
        gain = realised_reduction(truth, s.measured_mask, s.reconstruction, pts, scale=s.intensity_scale)
        return feats, np.log(np.maximum(gain, 0.0) + _GAIN_FLOOR).astype(np.float32)
    return feats, np.log(rd[pick] + _LABEL_FLOOR).astype(np.float32)


def state_samples(
    truth: np.ndarray,
    *,
    c: float,
    n_pixels: int,
    seed: int,
    model: ERDNet,
    visited: bool,
    label: str = "realised",
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows from one image: random-mask states, or states visited by the sampler.

    ``label`` is ``"realised"`` (the realised reduction of squared error, the default of the command
    too) or ``"gaussian"`` (SLADS' Gaussian-window approximation).
    """
    rng = np.random.default_rng(seed)
    X, y = [], []
    N = truth.size
    if not visited:
        for i, f in enumerate(RANDOM_FRACTIONS):
            s = Sampler(truth.shape, model=model, initial_fraction=f, initial_pattern="halton" if i % 2 else "random",
                        stop=StopCriteria(max_fraction=1.0), seed=int(rng.integers(1 << 31)))  # fmt: skip
            pts = s.ask()
            s.tell(pts, truth[pts[:, 0], pts[:, 1]])
            a, b = _state_rows(s, truth, c, n_pixels, rng, label)
            X.append(a)
            y.append(b)
    else:
        cap = StopCriteria(max_fraction=max(VISITED_FRACTIONS))
        s = Sampler(truth.shape, model=model, batch_size=max(1, N // 200), stop=cap, seed=int(rng.integers(1 << 31)))
        due = list(VISITED_FRACTIONS)

        def sample_state(s: Sampler, points, values) -> bool:
            while due and s.fraction >= due[0]:
                a, b = _state_rows(s, truth, c, n_pixels, rng, label)
                X.append(a)
                y.append(b)
                due.pop(0)
            return not due

        run(s, lambda p: truth[p[:, 0], p[:, 1]], on_batch=sample_state)
    return np.concatenate(X), np.concatenate(y)


def _dist_info():
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(obj, world):
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _collect(images, idx, *, rank, world, visited, model, args):
    """Rows of the images ``idx`` (sharded over ranks, then gathered)."""
    mine = idx[rank::world]
    rows = {}
    for i in tqdm(mine, desc="visited states" if visited else "random states", disable=rank != 0, file=sys.stderr):
        rows[int(i)] = state_samples(images[i][1], c=args.c, n_pixels=args.pixels_per_state,
                                     seed=args.seed * 7919 + int(i) + (10_000 if visited else 0), model=model,
                                     visited=visited, label=args.label)  # fmt: skip
    merged = {}
    for part in _gather(rows, world):
        merged.update(part)
    return merged


def _fit(model, X, y, Xv, yv, *, epochs, lr, batch, rank, world, device, desc):
    model.to(device)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    sampler = torch.utils.data.DistributedSampler(ds, world, rank, shuffle=True, seed=0) if world > 1 else None
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=sampler is None, sampler=sampler, generator=g)
    steps = epochs * len(loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = torch.nn.SmoothL1Loss()
    bar = tqdm(total=steps, desc=desc, disable=rank != 0, file=sys.stderr)
    for ep in range(epochs):
        if sampler is not None:
            sampler.set_epoch(ep)
        net.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{_val_loss(model, Xv, yv, device):.3f}")
    bar.close()
    model.cpu().eval()
    return model


@torch.no_grad()
def _val_loss(model, Xv, yv, device) -> float:
    model.eval()
    pred = model(torch.from_numpy(Xv).to(device)).cpu()
    return float(torch.nn.functional.smooth_l1_loss(pred, torch.from_numpy(yv)))


def _end_to_end(model, images, idx, fraction=0.1) -> dict:
    """PSNR at ``fraction`` of the sampler on held-out training-set images (seed 0)."""
    out = {}
    for i in idx:
        name, truth = images[i]
        s = run(Sampler(truth.shape, model=model, stop=StopCriteria(max_fraction=fraction), seed=0),
                lambda p, truth=truth: truth[p[:, 0], p[:, 1]])
        out[name] = round(psnr(truth, s.reconstruction), 3)
    return out


def main(argv=None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="smart-scan-train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("erd_model.safetensors"),
                    help="weights file (.safetensors; the model card goes beside it as .json); never inside the "
                         "installed package, whose shipped model it would replace")
    ap.add_argument("--synthetic", type=int, default=40, help="number of synthetic training images")
    ap.add_argument("--size", type=int, default=160, help="largest side of a training image")
    ap.add_argument("--label", choices=("gaussian", "realised"), default="realised",
                    help="training label: Gaussian-window RD, or the realised reduction of squared error")
    ap.add_argument("--c", type=float, default=2.0, help="label window constant: sigma = d / c")
    ap.add_argument("--pixels-per-state", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--hidden", default="64,64,32", help="hidden layer widths")
    ap.add_argument("--max-skimage", type=int, default=None, help="use only the first K scikit-image images")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    shipped = default_model_path().parent.resolve()
    if args.out.resolve().parent == shipped:
        ap.error(f"--out {args.out} would overwrite the model shipped in the package ({shipped}); "
                 "write it elsewhere and load it with Sampler(model=PATH)")

    t0 = time.time()
    torch.manual_seed(args.seed)
    rank, world = _dist_info()
    device = (
        torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    hidden = tuple(int(h) for h in args.hidden.split(","))
    images = training_images(args.synthetic, args.size, args.seed, args.max_skimage)
    groups = np.arange(len(images))
    split = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=args.seed)
    train_idx, val_idx = next(split.split(groups, groups=groups))

    # Round 0: random-mask states; the sampler in them needs some model, any untrained one will do.
    scratch = ERDNet(hidden=hidden)
    all_idx = np.arange(len(images))
    rows = _collect(images, all_idx, rank=rank, world=world, visited=False, model=scratch, args=args)

    def stack(ids, *parts):
        X = np.concatenate([p[i][0] for p in parts for i in ids])
        y = np.concatenate([p[i][1] for p in parts for i in ids])
        return X, y

    X, y = stack(train_idx, rows)
    Xv, yv = stack(val_idx, rows)
    model = ERDNet(hidden=hidden)
    model.set_standardisation(X.mean(axis=0), X.std(axis=0))
    model = _fit(model, X, y, Xv, yv, epochs=args.epochs, lr=args.lr, batch=args.batch, rank=rank, world=world,
                 device=device, desc="train (random states)")  # fmt: skip

    # Round 1: add the states the sampler visits when steered by the round-0 model; train again.
    visited = _collect(images, all_idx, rank=rank, world=world, visited=True, model=model, args=args)
    X, y = stack(train_idx, rows, visited)
    Xv, yv = stack(val_idx, rows, visited)
    model = ERDNet(hidden=hidden)
    model.set_standardisation(X.mean(axis=0), X.std(axis=0))
    model = _fit(model, X, y, Xv, yv, epochs=args.epochs, lr=args.lr, batch=args.batch, rank=rank, world=world,
                 device=device, desc="train (random + visited states)")  # fmt: skip

    if rank == 0:
        with torch.no_grad():
            pred = model(torch.from_numpy(Xv)).numpy()
        rho = float(spearmanr(pred, yv).statistic)
        e2e = _end_to_end(model, images, val_idx)
        from .. import __version__

        card = {
            "name": args.out.stem,
            "package_version": __version__,
            "architecture": {"type": "ERDNet per-pixel MLP", "hidden": list(hidden), "features": list(FEATURE_NAMES)},
            "label": {
                "kind": "realised reduction of squared error (exact Delaunay insertion)"
                if args.label == "realised" else "approximate reduction in distortion, Gaussian window",
                "c": args.c if args.label == "gaussian" else None,
                "target": "log(max(gain, 0) + 1e-6), smooth-L1"
                if args.label == "realised" else "log(RD + 1e-5), smooth-L1",
                "random_fractions": list(RANDOM_FRACTIONS),
                "visited_fractions": list(VISITED_FRACTIONS),
            },  # fmt: skip
            "training_images": [images[i][0] for i in train_idx],
            "validation_images": [images[i][0] for i in val_idx],
            "training": {
                "epochs": args.epochs,
                "lr": args.lr,
                "batch": args.batch,
                "seed": args.seed,
                "rows_train": int(len(X)),
                "rows_validation": int(len(Xv)),
                "world_size": world,
                "seconds": round(time.time() - t0, 1),
                "torch": torch.__version__,
                "python": platform.python_version(),
            },  # fmt: skip
            "validation": {
                "smooth_l1_log_rd": round(_val_loss(model, Xv, yv, torch.device("cpu")), 4),
                "spearman_rho": round(rho, 4),
                "psnr_at_10pct": e2e,
                "mean_psnr_at_10pct": round(float(np.mean(list(e2e.values()))), 3),
            },  # fmt: skip
        }
        save_model(model, args.out, card)
        print(f"wrote {args.out} and {args.out.with_suffix('.json')} in {time.time() - t0:.0f} s")
        print(f"validation: smooth-L1(log label) {card['validation']['smooth_l1_log_rd']}, Spearman {rho:.3f}, "
              f"mean PSNR at 10% {card['validation']['mean_psnr_at_10pct']} dB on {len(val_idx)} images")  # fmt: skip
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
