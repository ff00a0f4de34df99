"""Directors switched between denoising steps: LoRAs kept as peft adapters, re-weighted by a step callback.

Fusing (:func:`.lora.fuse_directors`) bakes one set of directors into the weights: exact and
the fastest, but fixed for the whole video. Here each LoRA file stays a peft adapter beside
its layer (diffusers' ``load_lora_weights``), so a layer computes::

    W x + sum_i multiplier_i * B_i (A_i x)

with the multipliers of the adapters that are active. ``set_adapters`` changes which adapters
run and with what multiplier, and :class:`DirectorSwitch`, a diffusers
``callback_on_step_end``, calls it between two steps. A schedule is a list of
:class:`Phase`: from step ``start`` on, these adapters with these multipliers. The paper's
Switch-Once composition (an S-Director for the first steps, then the T-Director) is two phases.

The base weights are never touched: ``unload_lora_weights`` gives the model back bit-exactly.
"""

from __future__ import annotations

import dataclasses

from .lora import LoraFile, load_adapter

ADAPTER_PREFIX = "director_"


@dataclasses.dataclass(frozen=True)
class Phase:
    start: int  # first denoising step (0-based) run with these adapters
    adapters: tuple[tuple[LoraFile, float], ...]  # (LoRA, multiplier of B @ A); empty: the base model


def adapter_name(lora: LoraFile) -> str:
    """One adapter per file content: the same file in two phases is loaded once."""
    return f"{ADAPTER_PREFIX}{lora.sha256[:16]}"


class DirectorSwitch:
    """``callback_on_step_end`` that gives each step the adapters of its phase.

    :meth:`load` puts every LoRA of the schedule on the transformer as an adapter; :meth:`start`
    activates the first phase before a video; the pipeline then calls the object after each step
    ``i`` and it activates the phase that begins at step ``i + 1``.
    """

    def __init__(self, phases: list[Phase]):
        if not phases or phases[0].start != 0:
            raise ValueError("a director schedule starts with a phase at step 0")
        starts = [p.start for p in phases]
        if starts != sorted(set(starts)):
            raise ValueError(f"phase starts must increase: {starts}")
        self.phases = phases

    def load(self, pipe) -> None:
        """Loads every LoRA of the schedule once (checked as in fusion: every tensor must land)."""
        loaded = set(getattr(pipe.transformer, "peft_config", {}))
        for phase in self.phases:
            for lora, _ in phase.adapters:
                name = adapter_name(lora)
                if name not in loaded:
                    load_adapter(pipe, lora, name)
                    loaded.add(name)

    def start(self, pipe) -> None:
        self.activate(pipe, self.phases[0])

    def activate(self, pipe, phase: Phase) -> None:
        """Only the phase's adapters run (others are skipped, not run at 0); none: the base model."""
        if not phase.adapters:
            pipe.disable_lora()
            return
        weights: dict[str, float] = {}
        for lora, multiplier in phase.adapters:  # one file listed twice: its multipliers add up
            weights[adapter_name(lora)] = weights.get(adapter_name(lora), 0.0) + multiplier
        pipe.enable_lora()
        pipe.set_adapters(list(weights), list(weights.values()))

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        for phase in self.phases:
            if phase.start == step + 1:
                self.activate(pipe, phase)
        return callback_kwargs
