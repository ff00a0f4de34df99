"""Stage configs: one dataclass per stage, loadable from YAML (``configs/``) or a JSON sidecar.

Precedence, lowest first: the dataclass defaults, the ``--config`` file, the CLI flags.
A JSON sidecar written by a stage holds its settings under ``"config"``, so passing the
sidecar back as ``--config`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .errors import DimensionXError
from .videofiles import check_sidecar

T = TypeVar("T")
MAX_SEED = 2**63 - 1  # largest seed of any stage: torch.Generator.manual_seed takes 64-bit seeds


def check_seed(seed: int) -> None:
    """``--seed`` of any stage: 0 to :data:`MAX_SEED`."""
    if not 0 <= seed <= MAX_SEED:
        raise DimensionXError(f"--seed {seed}: use 0 to {MAX_SEED} (a torch generator's seed is 64-bit)")


def load_config(cls: type[T], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> T:
    """Builds a ``cls`` instance from its defaults, an optional YAML/JSON file and overrides.

    Overrides whose value is ``None`` are ignored, so unset CLI flags do not mask the file.
    """
    from omegaconf import OmegaConf  # here: writing a sidecar (config_to_dict) needs no omegaconf
    from omegaconf.errors import OmegaConfBaseException

    layers = [OmegaConf.structured(cls)]
    if path is not None:
        layers.append(_read_file(cls, Path(path)))
    if overrides:
        layers.append(OmegaConf.create({k: v for k, v in overrides.items() if v is not None}))
    try:
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as exc:
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        raise DimensionXError(
            f"invalid setting for {cls.__name__}{f' in {path}' if path else ''}: {exc.msg if hasattr(exc, 'msg') else exc}. "
            f"Known settings: {known}."
        ) from None
    return OmegaConf.to_object(merged)


def config_from_args(cls: type[T], args: Any) -> T:
    """``cls`` from its defaults, ``args.config`` (a file, or None) and the parsed flags named like its fields."""
    names = [f.name for f in dataclasses.fields(cls)]
    return load_config(cls, getattr(args, "config", None), {n: getattr(args, n, None) for n in names})


def default_help(cls: type, field: str, text: str) -> str:
    """``text`` + `` (default VALUE)``, VALUE read from ``cls``'s dataclass field: a flag's help states the
    default that really applies, from its one home, instead of a copy typed by hand."""
    (spec,) = [f for f in dataclasses.fields(cls) if f.name == field]
    value = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
    return f"{text} (default {value:g})" if isinstance(value, float) else f"{text} (default {value})"


def read_mapping(path: Path, what: str = "config file"):
    """The mapping of settings in the YAML/JSON file ``path`` (an OmegaConf DictConfig); errors name the file in one line."""
    from omegaconf import DictConfig, OmegaConf

    try:
        data = OmegaConf.load(path)
    except Exception as exc:  # YAML and JSON parse errors have many types
        raise DimensionXError(f"{what} {path} is not valid YAML/JSON ({' '.join(str(exc).split())}): "
                              "fix it or pass another file") from None
    if not isinstance(data, DictConfig):
        raise DimensionXError(f"{what} {path} holds a list or a single value, not a mapping of settings: "
                              "write one `name: value` per line (see configs/)")
    return data


def _read_file(cls: type, path: Path):
    if not path.is_file():
        raise DimensionXError(f"config file {path} does not exist: pass a YAML file from configs/ or a JSON sidecar")
    data = read_mapping(path)
    if "config" in data and isinstance(data["config"], Mapping):  # a sidecar: its mp4 must be the run's
        check_sidecar(path, data)
        data = data["config"]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data.keys()) - names)
    if unknown:
        raise DimensionXError(
            f"config file {path} has settings that {cls.__name__} does not know: {', '.join(map(str, unknown))}. "
            f"Known settings: {', '.join(sorted(names))}."
        )
    return data


def config_to_dict(config: Any) -> dict:
    """Plain-JSON view of a stage config (paths as strings)."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
