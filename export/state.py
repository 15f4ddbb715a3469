"""A training run's state as it lives in the repository (``models/default/train/``), so that training goes
on from any clean checkout, a session or a rented GPU later, with the same command.

The local checkpoint (RUN/NAME.pt, written by loop.py) is exact but large: fp32 weights, fp32 Adam moments,
fp32 EMAs. The repository copy keeps what continuing needs at a size git can carry (at most 64 MB a
version): weights in fp32, Adam's moments in bf16, the EMAs in fp16, the RNG streams, the step, the
images seen, the loss history (thinned) and the stage's metadata. Restored, it continues the run: not
bit-identical to a run that never stopped (the moments were rounded), but the same run.

Files: NAME.safetensors (tensors) and NAME.json (everything else).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

MAX_BYTES = 64 * 2**20


class StateError(ValueError):
    """A repository state that cannot be read or written; the message names the file and key."""


def _flat(prefix: str, sd: dict, dtype=None) -> dict:
    return {f"{prefix}/{k}": (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
            for k, v in sd.items()}


def _pack(value, path: str, tensors: dict):
    """A nested structure -> JSON, its tensors moved to ``tensors`` under their path (an objective's own
    state: a discriminator, its optimiser, kept as they are). Non-string keys (an optimiser's parameter
    indices) survive as pairs."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.contiguous()
        return {"__tensor__": path}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__map__": {k: _pack(v, f"{path}/{k}", tensors) for k, v in value.items()}}
        return {"__pairs__": [[k, _pack(v, f"{path}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_pack(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    return value


def _unpack(value, tensors: dict, where: str):
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        if value["__tensor__"] not in tensors:
            raise StateError(f"{where}: tensor {value['__tensor__']!r} missing")
        return tensors[value["__tensor__"]]
    if "__map__" in value:
        return {k: _unpack(v, tensors, where) for k, v in value["__map__"].items()}
    if "__pairs__" in value:
        return {k: _unpack(v, tensors, where) for k, v in value["__pairs__"]}
    if "__list__" in value:
        return [_unpack(v, tensors, where) for v in value["__list__"]]
    return value


def save(ckpt_path: Path, dest: Path) -> dict:
    """RUN/NAME.pt -> dest/NAME.safetensors + dest/NAME.json; returns the json part. Refuses (StateError)
    a state over MAX_BYTES, leaving any earlier one in place."""
    from safetensors.torch import save

    from firmware.appliance.atomic import write_atomic

    ckpt_path, dest = Path(ckpt_path), Path(dest)
    st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    name = ckpt_path.stem
    tensors = _flat("model", st["model"])
    for i, avg in enumerate(st["emas"]["avgs"]):
        tensors.update(_flat(f"ema{i}", avg, torch.float16))
    opt_meta = {"param_groups": st["opt"]["param_groups"], "steps": {}}
    for idx, s in st["opt"]["state"].items():
        tensors[f"opt/{idx}/exp_avg"] = s["exp_avg"].to(torch.bfloat16).contiguous()
        tensors[f"opt/{idx}/exp_avg_sq"] = s["exp_avg_sq"].to(torch.bfloat16).contiguous()
        opt_meta["steps"][str(idx)] = float(s["step"])
    for k, v in st["rng"].items():
        tensors[f"rng/{k}"] = v.contiguous()
    objective = _pack(st.get("objective") or {}, "objective", tensors)
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    if size > MAX_BYTES:
        raise StateError(f"{ckpt_path}: the state would be {size / 2**20:.1f} MiB, over the "
                         f"{MAX_BYTES // 2**20} MiB a repository version may carry")
    history = st["history"]
    thin = max(1, len(history) // 5000)
    meta = {k: v for k, v in st.items() if k not in ("model", "ema", "emas", "opt", "rng", "history", "objective")}
    meta.update(objective=objective, emas_stds=st["emas"]["stds"], opt=opt_meta, history=history[::thin], history_thinned_by=thin,
                format=1, run={**st["run"], "history": history[::thin]})
    dest.mkdir(parents=True, exist_ok=True)
    write_atomic(dest / f"{name}.safetensors", save(tensors))
    write_atomic(dest / f"{name}.json", json.dumps(meta, indent=1, default=str))
    return meta


def read_meta(dest: Path, name: str) -> dict | None:
    """The json part of a stored state, or None when there is none. StateError when it is unreadable."""
    p = Path(dest) / f"{name}.json"
    if not p.exists() or not (Path(dest) / f"{name}.safetensors").exists():
        return None
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise StateError(f"{p}: unreadable state ({e})") from e
    for key in ("run", "net", "emas_stds", "opt", "format"):
        if key not in meta:
            raise StateError(f"{p}: missing key {key!r}")
    if meta["format"] != 1:
        raise StateError(f"{p}: key 'format' is {meta['format']!r}; this code reads format 1")
    return meta


def matches(meta: dict, want: dict) -> str | None:
    """Why a stored state cannot continue a run that wants ``want`` (an objective's meta), or None."""
    if meta.get("net") != want.get("net"):
        return f"it is another network ({meta.get('net')} against {want.get('net')})"
    have = (meta.get("data") or {}).get("sources")
    need = (want.get("data") or {}).get("sources")
    if have != need:
        return f"it was trained on other footage (sources {have} against {need})"
    return None


def restore(dest: Path, name: str, ckpt_path: Path) -> dict:
    """dest/NAME.* -> a checkpoint at ckpt_path that loop.run resumes; returns the json part."""
    from safetensors.torch import load_file

    from .loop import save_atomic

    meta = read_meta(dest, name)
    if meta is None:
        raise StateError(f"{dest}: no stored state named {name!r}")
    try:
        t = load_file(str(Path(dest) / f"{name}.safetensors"))
    except Exception as e:  # noqa: BLE001  (safetensors raises its own types for a damaged file)
        raise StateError(f"{Path(dest) / f'{name}.safetensors'}: unreadable ({e})") from e

    def group(prefix: str, dtype=None) -> dict:
        n = len(prefix) + 1
        return {k[n:]: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
                for k, v in t.items() if k.startswith(prefix + "/")}

    model = group("model")
    emas = [group(f"ema{i}", torch.float32) for i in range(len(meta["emas_stds"]))]
    opt_state = {int(idx): {"step": torch.tensor(step), "exp_avg": t[f"opt/{idx}/exp_avg"].float(),
                            "exp_avg_sq": t[f"opt/{idx}/exp_avg_sq"].float()}
                 for idx, step in meta["opt"]["steps"].items()}
    rest = {k: v for k, v in meta.items() if k not in ("emas_stds", "opt", "history_thinned_by", "format", "objective")}
    objective = meta.get("objective") or {}
    if "__map__" not in objective:
        # States saved before 2026-12-05 wrote the objective's tensors into the JSON as their printed text:
        # not restorable. The discriminator (the only such state) starts afresh; the networks do not.
        objective = {"__map__": {}}
    ckpt = {**rest, "objective": _unpack(objective, t, str(Path(dest) / f"{name}.json")),
            "model": model, "ema": {k: v.to(model[k].dtype) for k, v in emas[0].items()},
            "emas": {"stds": meta["emas_stds"], "avgs": emas},
            "opt": {"state": opt_state, "param_groups": meta["opt"]["param_groups"]},
            "rng": group("rng")}
    Path(ckpt_path).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(ckpt, Path(ckpt_path))
    return meta
