"""The CUDA-graph fast path (issue #12): each method's update captured once as a CUDA graph and replayed.

With `runner=cuda_graphs` on a CUDA device, the method's update runner is `GraphedUpdates` (the variant of
runners.EagerUpdates): the first `warmup` updates of each phase run eagerly (on a side stream, as CUDA graph
capture requires), the next one is captured (forward, backward, every optimiser step of the method's update
rule) and every later one replays it, so a step costs a few kernel launches from the host instead of
hundreds. A phase is what `Method.graph_phase()` returns (ADDA: its stage; CLAN: the preheat), one graph each.

What an update reads that changes from step to step lives on the device, so that a replay sees it:
- the batch: copied into static buffers before each update;
- progress p (`Method.schedule_progress`, which asks the runner): a 0-d tensor written before each update;
  the GRL and damping schedules read it;
- the learning rates: 0-d tensors in the param groups, written by the lr schedulers outside the graph
  (Adam runs `capturable`, SGD `fused`, the forms that read a tensor lr without a host sync);
- the logged train/* values: the graph's output tensors, handed to Lightning after the step's updates.
The host per update: copy the batch, write p, replay, step the lr schedulers, count the global step.

Not on the fast path (each says why in the log and trains eagerly): a precision with a gradient scaler, DDP,
and a CPU (no graphs; `runner.rehearse=true` runs the same discipline eagerly, which is how the tests check it: the
update that would be captured runs under `no_host_reads`, so an update rule that reads a device value on the
host fails there as a capture would). A parameter whose memory moved since the capture makes the graph be
captured again.
Unmeasured on a GPU so far: off by default until `scripts/gpu_check.sh` has compared it with the eager path
(steps/s, target accuracy over seeds).
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from da_bench.compat import count_manual_update
from da_bench.runners import EagerUpdates

log = logging.getLogger(__name__)
PACKAGE = str(Path(__file__).resolve().parent)
HOST_READS = ("__bool__", "item", "tolist", "__float__", "__int__")


class HostReadError(RuntimeError):
    """An update rule syncs with the host (reads a tensor's value, copies host data in, sizes a result by its
    values): a host sync every step, and no CUDA graph can hold it."""


def _is_mask(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(torch.is_tensor(part) and part.dtype == torch.bool for part in parts)


@contextmanager
def no_host_reads():
    """Inside the block, da_bench code that would make a capture fail raises HostReadError naming the line:
    reading a tensor's value on the host (`if tensor:`, .item(), float()), building a tensor from host data
    (torch.tensor / torch.as_tensor: a host-to-device copy each step) or indexing with a boolean mask (its
    result's size needs a host sync). Found without CUDA; torch's and Lightning's own calls pass (on CUDA the
    capturable optimisers avoid theirs)."""
    guards = [(torch.Tensor, name, f"reads a tensor's value on the host (Tensor.{name})", None) for name in HOST_READS]
    guards += [(torch, name, f"copies host data to the device each update (torch.{name})", None)
               for name in ("tensor", "as_tensor")]
    guards.append((torch.Tensor, "__getitem__", "indexes with a boolean mask (sizing the result is a host sync)",
                   lambda tensor, index, *rest: _is_mask(index)))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _, _ in guards]

    def guarded(original, what, applies):
        def call(*args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(PACKAGE) and (applies is None or applies(*args)):
                raise HostReadError(f"{caller.f_code.co_filename}:{caller.f_lineno} {what}: a CUDA graph cannot "
                                    "capture that update")
            return original(*args, **kwargs)
        return call

    for (owner, name, what, applies), (_, _, original) in zip(guards, originals):
        setattr(owner, name, guarded(original, what, applies))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def prepare_optimizer(optimizer: torch.optim.Optimizer, device: torch.device, capture: bool) -> None:
    """Learning rates as device tensors (a scheduler then writes them in place); on CUDA, the capturable
    forms of Adam(W) and SGD. A scheduler built earlier keeps its float base_lrs, so it never reads a tensor."""
    for group in optimizer.param_groups:
        if not torch.is_tensor(group["lr"]):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
        if capture and "capturable" in group:
            group["capturable"] = True
        elif capture and isinstance(optimizer, torch.optim.SGD):
            group["fused"], group["foreach"] = True, False
    if capture:
        for state in optimizer.state.values():
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(device)


class GraphedUpdates(EagerUpdates):
    """Runs each update under the fast-path discipline and captures it on CUDA (see module). Whether it can is
    known when training starts (the device, the precision, DDP); until then, and where it cannot, updates run
    eagerly. `rehearse`: without CUDA, the same discipline without the capture (the tests' check)."""

    def __init__(self, updates_per_step: int = 1, warmup: int = 3, rehearse: bool = False):
        super().__init__(updates_per_step)
        self.warmup, self.rehearse = warmup, rehearse
        self.on_path = False  # whether updates go through the discipline below (set when training starts)
        self.capture = False
        self.progress_value: torch.Tensor | None = None  # p on the device, written before each update
        self.inputs: dict[str, torch.Tensor] = {}
        self.phases: dict = {}  # phase -> {"eager": updates run eagerly, "graph", "params": data_ptrs, "values"}
        self.stream = None

    def on_train_start(self, method) -> None:
        trainer = method.trainer
        on_cuda = method.device.type == "cuda"
        why_not = None
        if not on_cuda and not self.rehearse:
            why_not = f"the device is {method.device.type}; CUDA graphs need a CUDA device"
        if trainer.precision not in ("32-true", "32", "bf16-mixed", "bf16-true"):
            why_not = why_not or f"precision {trainer.precision} (a gradient scaler syncs with the host each step)"
        if trainer.world_size > 1:
            why_not = why_not or "DDP's gradient all-reduce hooks are not captured here"
        if why_not:
            log.warning("cuda_graphs: %s trains eagerly: %s", type(method).__name__, why_not)
            return
        for optimizer in trainer.optimizers:
            prepare_optimizer(optimizer, method.device, capture=on_cuda)
        self.on_path, self.capture = True, on_cuda
        self.progress_value = torch.zeros((), device=method.device)
        self.stream = torch.cuda.Stream() if on_cuda else None
        log.info("cuda_graphs: %s updates %s", type(method).__name__,
                 "captured and replayed" if on_cuda else "rehearsed eagerly (no CUDA)")

    def on_train_end(self, method) -> None:
        self.phases.clear()  # the graphs' memory, before validation and test

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The optimisers as the eager path stores them (float lrs, not capturable), so that any run resumes."""
        for state in checkpoint.get("optimizer_states", []) if self.on_path else []:
            for group in state["param_groups"]:
                group["lr"] = float(group["lr"])  # a host sync, once per checkpoint
                if group.get("capturable"):
                    group["capturable"] = False
                if group.get("fused"):
                    group["fused"], group["foreach"] = None, None

    def progress(self, method) -> float | torch.Tensor:
        return self.progress_value if self.on_path else method.progress

    def _static(self, batch: dict) -> dict:
        for key, value in batch.items():
            if key not in self.inputs or self.inputs[key].shape != value.shape:
                self.inputs[key] = value.clone()  # a new shape (the first batch): a new buffer, a new graph
                self.phases.clear()
            else:
                self.inputs[key].copy_(value, non_blocking=True)
        return self.inputs

    @staticmethod
    def _pointers(method) -> list[int]:
        return [p.data_ptr() for p in method.parameters()]

    def update(self, method, batch: dict) -> None:
        if not self.on_path:
            super().update(method, batch)
            return
        trainer = method.trainer
        before = trainer.global_step
        inputs = self._static(batch)
        self.progress_value.fill_(before / max(1, trainer.max_steps))
        phase = self.phases.setdefault(method.graph_phase(), {"eager": 0, "graph": None, "params": None, "values": {}})
        if phase["graph"] is not None and phase["params"] != self._pointers(method):
            log.info("cuda_graphs: a parameter moved in memory since the capture; capturing again")
            phase.update(eager=0, graph=None)
        if phase["graph"] is not None:
            self.values = phase["values"]  # the graph's outputs, rewritten by each replay
            phase["graph"].replay()
        elif not self.capture or phase["eager"] < self.warmup:
            with no_host_reads() if phase["eager"] == self.warmup else nullcontext():  # rehearsing the capture
                self._eagerly(method, inputs)
            phase["eager"] += 1
        else:
            phase["graph"] = self._captured(method, inputs)
            phase["params"], phase["values"] = self._pointers(method), self.values
            phase["graph"].replay()  # the capture only recorded the update; this runs it
        if trainer.global_step == before:  # a replay: Lightning's optimiser wrapper did not count it
            count_manual_update(trainer)

    def _autocast(self):
        """No autocast weight cache across the capture: a cached cast would be a copy of old weights."""
        if self.capture and torch.is_autocast_enabled("cuda"):
            return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)
        return nullcontext()

    def _eagerly(self, method, inputs: dict) -> None:
        if not self.capture:
            method.run_update(inputs)
            return
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream), self._autocast():
            method.run_update(inputs)
        torch.cuda.current_stream().wait_stream(self.stream)

    def _captured(self, method, inputs: dict) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph), self._autocast():
                method.run_update(inputs)
        except Exception:
            log.error("cuda_graphs: capturing %s's update failed (below); runner=eager trains it eagerly",
                      type(method).__name__)
            raise
        return graph
