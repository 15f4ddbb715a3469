"""The cascade's second stage: a one-pass 4x upsampler from the model's 64x64 to 256x256.

Why a cascade and not a latent or 256-pixel model: the distilled 64x64 student already runs in
2 evaluations and is what the show dissolves into (its noise is the block mean of the wall's
noise, see firmware/render/noise.py), so the seed's core stays exact and untouched. The wall then
needs detail the 64x64 image cannot carry; a small residual network trained on the footage itself
adds it in one pass (the issue's budget: at most one decoder or upsampler pass per image).

The network predicts a residual over bilinear upsampling, so an untrained one is already the plain
upscale the box falls back to when this stage fails. It is fully convolutional: it trains on
random 32 -> 128 crops (cheap on a CPU) and runs on the whole 64 -> 256 image.

Training pairs come from the footage at the output resolution (``humus-export footage
--resolution 256``): low-resolution inputs are made by the same area downsampling that made the
64x64 training images, with a little noise and blur jitter so that the stage also accepts the
student's slightly imperfect images. Subjects (footage sources) are drawn in equal proportion, so
the 180 banana photographs and the 98 melon frames count as much as the 5,000 tomatoes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .footage import load_cache
from .loop import Objective, RunBudget, dist_setup, run
from .train import SubjectTable, subject_ids, subject_names, to_tensor, to_uint8

SCALE = 4


@dataclass(kw_only=True)
class UpsamplerConfig(RunBudget):
    """Network and optimisation settings (and RunBudget's: a shorter run, checkpointed more often).

    Args:
        width: channels of the residual trunk (at input resolution).
        blocks: residual blocks in the trunk.
        batch: crops per step.
        crop: side of the high-resolution training crop (input crop = crop / 4).
        lr: Adam learning rate, cosine-decayed to 10% over ``steps``.
        input_noise: std (in [-1, 1] units) of the noise added to the inputs, at most.
        blur: conditioning augmentation: a Gaussian blur of the low-resolution input with a standard
            deviation drawn up to this many of its pixels (0 = none).
        student_share: share of the inputs replaced by what the shipped student makes of the same
            photograph (noised to sigma 0.3-1.5, then one student step): trained on what it will see.
        student_model: the model folder whose student makes those inputs.
        perceptual: weight of the L1 in random-weight conv features (export/adversarial.py; never
            Inception, the judge).
        adversarial: weight of the patch discriminator's term; 0 = no GAN.
        discriminator: which one (`DISCRIMINATORS`): "detail" judges only the detail the stage adds, "image"
            the whole crop through DiffAugment with spectral norm and R1 (it never left chance here).
        adversarial_after: steps of L1 and perceptual only before the discriminator joins.
        init_onnx: a model folder whose shipped stage (its `stages.upsampler` ONNX file), or such an
            .onnx file itself, a fresh run starts from, e.g. to add the perceptual and adversarial terms
            to an L1-trained stage ("" = random initialisation). The width and blocks are read from its
            weights.
    """

    steps: int = 20_000
    ckpt_every: float = 120.0
    width: int = 48
    blocks: int = 6
    batch: int = 16
    crop: int = 128
    lr: float = 5e-4
    input_noise: float = 0.03
    blur: float = 0.0
    student_share: float = 0.0
    student_model: str = "models/default"
    perceptual: float = 0.0
    adversarial: float = 0.0
    adversarial_after: int = 500
    discriminator: str = "detail"
    init_onnx: str = ""
    extra: dict = field(default_factory=dict)


# The patch discriminator's settings by what it sees (export/adversarial.py). "image" is the one every
# stage until 2026-12-04 trained with (D at chance throughout); "detail" is the one a D-alone probe
# against the shipped stage's crops showed learning (README, "A discriminator that learns").
DISCRIMINATORS = {
    "image": dict(sees="image", spectral="all", r1=1.0, lr=2e-4),
    "detail": dict(sees="detail", spectral="inner", r1=0.0, lr=1e-3),
}


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + 0.2 * self.c2(F.relu(self.c1(x)))  # residual scaling: stable without norm layers


class Upsampler(nn.Module):
    """x [N, 3, h, w] in [-1, 1] -> [N, 3, 4h, 4w] in [-1, 1]: bilinear plus a learnt residual.

    ``detail_gain`` scales the detail of the result (what it holds beyond a plain enlargement of its own
    4x area-downsampled copy, `adversarial.smooth`). A network trained with L1 adds that detail too
    faintly: unsure where an edge or a speck falls, it hedges towards the mean. The gain is not trained;
    it is chosen after training by KID on the validation half (export/detail_gain.py) and exported
    inside the stage's graph. It is a plain attribute, not in the state dict, so every checkpoint and
    stage file reads back the same network whatever gain it shipped with."""

    def __init__(self, width: int = 48, blocks: int = 6, detail_gain: float = 1.0):
        super().__init__()
        self.width, self.blocks, self.detail_gain = width, blocks, float(detail_gain)
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.trunk = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        # Two 2x pixel-shuffle stages; the second works at a narrower width (it runs on 16x the pixels).
        self.up1 = nn.Conv2d(width, 32 * 4, 3, padding=1)
        self.up2 = nn.Conv2d(32, 16 * 4, 3, padding=1)
        self.tail = nn.Conv2d(16, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x):
        base = F.interpolate(x, scale_factor=SCALE, mode="bilinear", align_corners=False)
        h = self.head(x)
        h = h + self.trunk(h)
        h = F.leaky_relu(F.pixel_shuffle(self.up1(h), 2), 0.1)
        h = F.leaky_relu(F.pixel_shuffle(self.up2(h), 2), 0.1)
        y = base + self.tail(h)
        if self.detail_gain != 1.0:  # traced as a constant: a stage without a gain has no extra nodes
            from .adversarial import smooth

            low = smooth(y, SCALE)
            y = low + self.detail_gain * (y - low)
        return y.clamp(-1.0, 1.0)


def area_down(x: torch.Tensor, factor: int = SCALE) -> torch.Tensor:
    """The low-resolution twin of a high-resolution batch, made as the 64x64 footage is made."""
    return F.avg_pool2d(x, factor)


def blur_each(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian blur of each image with its own standard deviation (pixels; 0 = untouched)."""
    n, c = x.shape[:2]
    t = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    k = torch.exp(-t[None] ** 2 / (2 * sigmas.clamp(min=1e-3)[:, None] ** 2))
    k = torch.where(sigmas[:, None] > 1e-3, k, (t[None] == 0).to(x.dtype))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)             # [n*c, 5]
    y = x.reshape(1, n * c, *x.shape[2:])
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), k[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), k[:, None, :, None], groups=n * c)
    return y.reshape_as(x)


def draw_pairs(images: torch.Tensor, subjects: SubjectTable, cfg: UpsamplerConfig, gen: torch.Generator,
               student_bank: torch.Tensor | None = None):
    """A batch of (low-res input, high-res target) crops in [-1, 1], subjects balanced as in `train`.
    ``images``: the uint8 training images as a N x H x W x 3 tensor; ``student_bank``: the student's
    version of each at low resolution (N x 3 x H/4 x W/4, float), or None. Every draw comes from ``gen``,
    on the device the images live on (a GPU run keeps the whole split there: the crops are one gather)."""
    dev = images.device
    idx = subjects.draw(cfg.batch, gen)
    side = images.shape[1]
    c = min(cfg.crop, side) // SCALE * SCALE
    ys = torch.randint(0, (side - c) // SCALE + 1, (cfg.batch,), generator=gen, device=dev) * SCALE
    xs = torch.randint(0, (side - c) // SCALE + 1, (cfg.batch,), generator=gen, device=dev) * SCALE
    span = torch.arange(c, device=dev)
    crops = images[idx[:, None, None], (ys[:, None] + span)[:, :, None], (xs[:, None] + span)[:, None, :]]
    hr = crops.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    flip = torch.rand(cfg.batch, generator=gen, device=dev) < 0.5
    lr = area_down(hr)
    use_student = torch.rand(cfg.batch, generator=gen, device=dev) < cfg.student_share
    if student_bank is not None and bool(use_student.any()):
        low = torch.arange(c // SCALE, device=dev)
        rows, cols = (ys // SCALE)[:, None] + low, (xs // SCALE)[:, None] + low
        theirs = student_bank[idx[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None],
                              rows[:, None, :, None], cols[:, None, None, :]]
        lr = torch.where(use_student[:, None, None, None], theirs, lr)
    hr = torch.where(flip[:, None, None, None], hr.flip(3), hr)
    lr = torch.where(flip[:, None, None, None], lr.flip(3), lr)
    if cfg.blur > 0:
        lr = blur_each(lr, torch.rand(cfg.batch, generator=gen, device=dev) * cfg.blur)
    # Jitter: the student's images are a little noisier/softer than real downsampled footage.
    amount = torch.rand(cfg.batch, generator=gen, device=dev)[:, None, None, None] * cfg.input_noise
    lr = lr + amount * torch.randn(lr.shape, generator=gen, device=dev)
    return lr.clamp(-1, 1), hr


def student_versions(images: np.ndarray, decay: np.ndarray, subjects: list[str], model_dir: str | Path,
                     seed: int = 0) -> torch.Tensor:
    """What the model's student makes of each photograph: area-downsampled to its resolution, noised to a
    sigma drawn in 0.3-1.5 and denoised in one step, through the firmware's own runtime (onnxruntime).
    The upsampler then learns to enlarge the student's kind of image, with the photograph as the answer."""
    from firmware.generate.conditions import Conditions

    from .sample import Generator

    g = Generator(model_dir, "student", upsample=False)
    rng = np.random.default_rng(seed)
    hr = to_tensor(images)
    low = area_down(hr).numpy()
    out = np.empty_like(low)
    for i in range(len(low)):
        sigma = np.float32(rng.uniform(0.3, 1.5))
        x = low[i:i + 1] + sigma * rng.standard_normal(low[i:i + 1].shape).astype(np.float32)
        d = np.float32(decay[i] if np.isfinite(decay[i]) else 0.5)
        subject = g.info.subjects.index(subjects[i]) if subjects[i] in g.info.subjects else None
        out[i] = g.engine.denoise(x, sigma, Conditions(d, subject))[0]
    return torch.from_numpy(out).clamp(-1, 1)


def student_bank(ds, cfg: UpsamplerConfig, path: Path) -> torch.Tensor:
    """`student_versions` of a training split, kept in ``path`` (uint8, as images are) and reused while the
    same student (its ONNX file's sha256 in the model's manifest), seed and photographs ask for it: a
    resumed run does not pay for the student again (minutes on a CPU), and a run can start on a machine
    that has the bank but not the student's ONNX file. Every run uses the stored uint8 version, so a run
    from a fresh bank and one from a kept bank are the same run."""
    import hashlib

    try:    # the recorded digest is enough here: the student's file itself is read only to make a bank
        student = json.loads((Path(cfg.student_model) / "manifest.json").read_text())["networks"]["student"]["sha256"]
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{Path(cfg.student_model) / 'manifest.json'}: no networks.student.sha256 "
                         f"to make the upsampler's student inputs with ({e})") from e
    key = json.dumps({"student_sha256": student, "seed": cfg.seed,
                      "images_sha256": hashlib.sha256(np.ascontiguousarray(ds.images).data).hexdigest()})
    bank = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    bank = z["bank"]
        except (OSError, KeyError, ValueError):
            pass    # unreadable: made again below
    if bank is None:
        made = student_versions(ds.images, ds.decay, [str(v) for v in ds.source], cfg.student_model, cfg.seed)
        bank = np.ascontiguousarray(to_uint8(made).transpose(0, 3, 1, 2))    # kept as the network reads it
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, bank=bank, key=np.array(key))
        tmp.replace(path)
    return torch.from_numpy(bank).float().div(127.5).sub(1.0)


class UpsamplerObjective(Objective):
    """L1 between the upsampled low-resolution crop and the high-resolution one, plus (when weighted) L1
    in random-weight features and a patch discriminator's term."""

    name = "upsampler"

    def __init__(self, ds, cfg: UpsamplerConfig, model: Upsampler, student_bank: torch.Tensor | None = None,
                 device: torch.device | str = "cpu"):
        from .adversarial import Adversary, RandomFeatures

        self.cfg, self.ds, self.model, self.batch = cfg, ds, model, cfg.batch
        # The split, the draws and the loss terms all live on the training device (see draw_pairs).
        self.images = torch.from_numpy(ds.images).to(device)
        self.subjects = SubjectTable(subject_ids(ds, subject_names(ds)), device)
        self.student_bank = None if student_bank is None else student_bank.to(device)
        self.features = RandomFeatures().to(device) if cfg.perceptual > 0 else None
        if cfg.discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator={cfg.discriminator!r}: one of {sorted(DISCRIMINATORS)}")
        self.adversary = (Adversary(device=device, **DISCRIMINATORS[cfg.discriminator]) if cfg.adversarial > 0
                          else None)
        self.last = {}

    def lr(self, step: int) -> float:     # cosine decay to 10%
        return self.cfg.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * min(step / self.cfg.steps, 1.0))))

    def loss(self, net, step, gen):
        cfg = self.cfg
        lr_img, hr_img = draw_pairs(self.images, self.subjects, cfg, gen, self.student_bank)
        out = net(lr_img).float()
        loss = (out - hr_img).abs().mean()
        self.last = {"l1": float(loss.detach())}
        if self.features is not None:
            from .adversarial import perceptual_l1

            p = perceptual_l1(self.features, out, hr_img)
            self.last["perceptual"] = float(p.detach())
            loss = loss + cfg.perceptual * p
        if self.adversary is not None and step >= cfg.adversarial_after:
            g = self.adversary.step(hr_img, out, step, gen)
            self.last.update(gan=float(g.detach()), d=self.adversary.last_d)
            loss = loss + cfg.adversarial * g
        return loss

    def postfix(self, step: int) -> dict:
        return {k: f"{v:.3f}" for k, v in self.last.items()}

    def extra_state(self) -> dict:
        return ({} if self.adversary is None
                else {"adversary": self.adversary.state_dict(), "discriminator": self.cfg.discriminator})

    def load_extra_state(self, st: dict) -> None:
        # A run that trained another kind of discriminator (states before 2026-12-05 name none: "image")
        # goes on with a fresh one of the kind asked for: the generator's own state is unaffected.
        if (self.adversary is not None and "adversary" in st
                and st.get("discriminator", "image") == self.cfg.discriminator):
            self.adversary.load_state_dict(st["adversary"])

    def meta(self) -> dict:
        return {"net": {"width": self.model.width, "blocks": self.model.blocks}, "data": self.ds.summary}


def train_upsampler(cache: str | Path, out: str | Path, cfg: UpsamplerConfig, resume: bool = True,
                    progress: bool = True, state_dir: str | Path | None = None) -> Path:
    """Train on the training split of a high-resolution cache; returns out/upsampler.pt."""
    out = Path(out)
    ds = load_cache(cache).split(heldout=False)
    if len(ds) == 0:
        raise ValueError(f"{cache}: training split is empty")
    if ds.images.shape[1] < cfg.crop:
        raise ValueError(f"{cache}: images are {ds.images.shape[1]} px, smaller than the {cfg.crop} px crop")
    ckpt_path = out / "upsampler.pt"
    _, _, device = dist_setup(cfg.device)
    width, blocks, init = cfg.width, cfg.blocks, None
    if resume and ckpt_path.exists():
        net = torch.load(ckpt_path, map_location="cpu", weights_only=False)["net"]
        width, blocks = net["width"], net["blocks"]
    elif cfg.init_onnx:
        # The network alone: a shipped stage's detail gain is re-chosen after this run (detail_gain.py).
        init = weights_from_onnx(cfg.init_onnx)
        width, blocks = shape_of(init)
    bank = student_bank(ds, cfg, out / "student_bank.npz") if cfg.student_share > 0 else None
    torch.manual_seed(cfg.seed)
    model = Upsampler(width, blocks)
    if init is not None:
        model.load_state_dict(init)     # strict: every tensor named and shaped as the network's
    obj = UpsamplerObjective(ds, cfg, model, bank, device)
    run(obj, out, cfg, resume=resume, progress=progress, state_dir=state_dir)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    (out / "upsampler_record.json").write_text(json.dumps(run_record(state), indent=1))
    return ckpt_path


def run_record(state: dict) -> dict:
    """How a stage trained, from its checkpoint alone (the loop saves the config it ran under with the
    weights): the same for a run that just ended and for one brought back by `state restore`, which
    keeps no record file. The manifest's `stages.upsampler.training` starts from it."""
    tail = [v for _, v in state["history"][-100:]]
    return {"steps": state["step"], "wall_seconds": round(state.get("elapsed", 0.0)),
            "final_loss": float(np.mean(tail)) if tail else None, "amp": state.get("run", {}).get("amp"),
            "config": state.get("config", {}), "params": sum(v.numel() for v in state["model"].values())}


def weights_from_onnx(source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an upsampler stage, read back from its ONNX initialisers (the export keeps the
    network's parameter names). ``source``: a model folder (its checked `stages.upsampler`) or the stage's
    .onnx file itself (where the rest of the model did not travel, e.g. to a rented GPU).
    Raises ValueError naming the file when it has none."""
    import onnx
    from onnx import numpy_helper

    from firmware.generate.manifest import load_model_dir

    if Path(source).is_file():
        path = Path(source)
    else:
        info = load_model_dir(source)
        if info.upsampler is None:
            raise ValueError(f"{source}: manifest.json has no stages.upsampler to start from")
        path = info.upsampler.path
    try:
        graph = onnx.load(str(path)).graph
    except Exception as e:  # noqa: BLE001  (onnx raises DecodeError and others for a damaged file)
        raise ValueError(f"{path}: not an ONNX file ({e})") from e
    state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer
             if i.name.startswith(("head.", "trunk.", "up1.", "up2.", "tail."))}
    if "head.weight" not in state:
        raise ValueError(f"{path}: no 'head.weight' initialiser; not an export/upsampler.py network")
    return state


def shape_of(weights: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(width, blocks) of the Upsampler these weights belong to."""
    return weights["head.weight"].shape[0], sum(1 for k in weights if k.endswith(".c1.weight"))


def stage_network(source: str | Path, detail_gain: float = 1.0) -> Upsampler:
    """The network of a shipped stage (`weights_from_onnx`'s ``source``), at ``detail_gain``, for inference."""
    weights = weights_from_onnx(source)
    net = Upsampler(*shape_of(weights), detail_gain=detail_gain)
    net.load_state_dict(weights)
    return net.eval()


def stage_to_copy(source_dir: str | Path) -> tuple[Path, dict]:
    """Another model's upsampler stage, checked (manifest, sha256, reference pair present) before
    anything is written: (the folder, its manifest entry). Raises ValueError naming the file."""
    from firmware.digest import sha256_file
    from firmware.generate.manifest import ModelError, load_model_dir

    from .onnx import read_manifest

    source_dir = Path(source_dir)
    try:
        info = load_model_dir(source_dir)
    except ModelError as e:
        raise ValueError(str(e)) from e
    if info.upsampler is None:
        raise ValueError(f"{source_dir / 'manifest.json'}: no stages.upsampler to copy")
    stage = dict(read_manifest(source_dir)["stages"]["upsampler"])
    if sha256_file(info.upsampler.path) != stage["sha256"]:
        raise ValueError(f"{info.upsampler.path}: sha256 differs from {source_dir / 'manifest.json'}")
    if not (source_dir / stage["reference"]["output"]).is_file():
        raise ValueError(f"{source_dir / stage['reference']['output']}: the stage's reference pair is missing")
    return source_dir, stage


def copy_stage(source: tuple[Path, dict], model_dir: str | Path) -> dict:
    """Give a freshly exported model folder another model's upsampler stage as it is (file, reference
    pair, manifest entry; `source` from stage_to_copy): a new generator keeps the shipped stage."""
    import shutil

    from .onnx import read_manifest, write_manifest

    (source_dir, stage), model_dir = source, Path(model_dir)
    manifest = read_manifest(model_dir)
    if list(manifest["resolution"]) != list(stage["inputs"]["image"][2:]):
        raise ValueError(f"{source_dir / 'manifest.json'}: the stage takes {stage['inputs']['image'][2:]}, "
                         f"the model makes {manifest['resolution']}")
    shutil.copyfile(source_dir / stage["file"], model_dir / stage["file"])
    shutil.copyfile(source_dir / stage["reference"]["output"], model_dir / stage["reference"]["output"])
    stage = {**stage, "training": {**stage.get("training", {}), "copied_from": str(source_dir)}}
    manifest["stages"] = {"upsampler": stage}
    write_manifest(model_dir, manifest)
    return stage


def load_upsampler(path: str | Path) -> Upsampler:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = Upsampler(state["net"]["width"], state["net"]["blocks"])
    model.load_state_dict(state["model"])
    return model.eval()


@torch.no_grad()
def l1_on(model: nn.Module, images: np.ndarray, n: int = 64) -> dict:
    """Mean absolute error on held-out images (uint8 N x H x W x 3), learnt vs plain bilinear."""
    hr = to_tensor(images[:n])
    lr = area_down(hr)
    base = F.interpolate(lr, scale_factor=SCALE, mode="bilinear", align_corners=False)
    return {"upsampler_l1": float((model(lr) - hr).abs().mean()), "bilinear_l1": float((base - hr).abs().mean()),
            "images": int(hr.shape[0])}


def recipe(cfg: dict) -> str:
    """The manifest's one-line account of how a stage was trained, from its run's config."""
    terms = ["L1"]
    if cfg.get("perceptual"):
        terms.append(f"{cfg['perceptual']:g} x random-feature L1")
    if cfg.get("adversarial"):
        on = " on the detail" if cfg.get("discriminator", "image") == "detail" else ""
        terms.append(f"{cfg['adversarial']:g} x patch GAN{on} (from step {cfg.get('adversarial_after', 0)})")
    inputs = []
    if cfg.get("blur"):
        inputs.append(f"blurred up to {cfg['blur']:g} px")
    if cfg.get("student_share"):
        inputs.append(f"{cfg['student_share']:.0%} made by the student of {cfg.get('student_model', '?')}")
    start = f", started from {cfg['init_onnx']}'s stage" if cfg.get("init_onnx") else ""
    return (f"{SCALE}x residual CNN over bilinear, {' + '.join(terms)} on footage crops, subjects balanced"
            + (f"; inputs {', '.join(inputs)}" if inputs else "") + start + " (export/upsampler.py)")


def add_stage(ckpt: str | Path, model_dir: str | Path, threads: int = 1) -> dict:
    """Export a trained upsampler (detail gain 1) into a model directory: `write_stage`."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    # From the checkpoint, not the exporting command: with --minutes 0 it carries only the CLI's defaults.
    training = {**run_record(state), "data": state.get("data", {}).get("sources")}
    return write_stage(load_upsampler(ckpt), model_dir, training, threads)


def write_stage(model: Upsampler, model_dir: str | Path, training: dict, threads: int = 1,
                extra: dict | None = None) -> dict:
    """Export ``model`` to ONNX into a model directory and describe it in the manifest
    (`stages.upsampler`, models/MANIFEST.md): parity with torch, a reference pair, the latency, the
    ``training`` record and any ``extra`` keys (the detail gain's search)."""
    import warnings

    import onnx

    from firmware.digest import sha256_file
    from .onnx import OPSET, REFERENCE_ATOL, median_run_ms, ort_session, read_manifest, write_manifest

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    h, w = manifest["resolution"]
    model = model.eval()
    path = model_dir / "upsampler.onnx"
    x = torch.zeros(1, 3, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["upsampled"],
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort_session(path, threads)
    g = np.random.default_rng(0)
    # A reference input with structure at every scale (smooth blobs plus grain), not flat noise.
    ref_in = np.clip(F.interpolate(torch.from_numpy(g.standard_normal((1, 3, h // 8, w // 8)).astype(np.float32)),
                                   size=(h, w), mode="bilinear").numpy() * 0.6
                     + 0.1 * g.standard_normal((1, 3, h, w)), -1, 1).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(ref_in)).numpy()
    got = sess.run(["upsampled"], {"image": ref_in})[0]
    err = float(np.abs(want - got).max())
    if err > 1e-3:
        raise RuntimeError(f"{path}: onnxruntime differs from torch by {err:.3g} (> 1e-3)")
    np.savez(model_dir / "reference_upsampler.npz", image=ref_in, upsampled=got)
    lat = median_run_ms(sess, {"image": np.zeros((1, 3, h, w), np.float32)}, runs=30, warmup=3)
    gain = f"; detail x{model.detail_gain:g} (export/detail_gain.py)" if model.detail_gain != 1.0 else ""
    stage = {"file": path.name, "sha256": sha256_file(path),
             "inputs": {"image": [1, 3, h, w]}, "outputs": {"upsampled": list(want.shape)},
             "reference": {"output": "reference_upsampler.npz", "atol": REFERENCE_ATOL},
             "method": recipe(training.get("config", {})) + gain,
             "params": sum(p.numel() for p in model.parameters()),
             "detail_gain": model.detail_gain,
             "latency_ms_ort_cpu": round(lat, 2),
             "training": {**training, "parity_max_abs_diff": err}, **(extra or {})}
    manifest["stages"] = {"upsampler": stage}
    write_manifest(model_dir, manifest)
    return stage
