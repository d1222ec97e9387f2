"""The loop's side of checkpoints: save the run's state (never non-finite weights; a write error
becomes one clear message), resume from a checkpoint, put the best evaluation's weights back.
The crash-safe file format itself is ``checkpoint``. ``TrainingCheckpoints`` is a part of
``loop.TrainingLoop``."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from tunedeck.core.engine import checkpoint as C
from tunedeck.core.engine.optim_step import DIVERGED_CAUSES
from tunedeck.core.engine.state import CheckpointWriteError, Diverged, TrainState


class TrainingCheckpoints:
    def _inner_optimizer(self) -> Any:
        return self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer

    def _position(self) -> tuple[int, ...]:
        st = self.state
        return (st.step, st.epoch, st.batch_in_epoch, st.last_eval_step)

    def resume_from(self, path: Path) -> None:
        total = self.state.total_steps
        fsdp = getattr(self, "fsdp", False)  # its shards: every rank, in RankGroup.restore
        d = C.load_checkpoint(path, None if fsdp else self.accelerator.unwrap_model(self.model),
                              None if fsdp else self._inner_optimizer(), self.scheduler)
        self.state = TrainState.from_dict(d)
        if self._scaler is not None and self.state.grad_scaler:
            self._scaler.load_state_dict(self.state.grad_scaler)
        self.state.total_steps = self.state.total_steps or total
        self._last_saved = self._position()

    def save_checkpoint(self, reason: str) -> Path | None:
        st = self.state
        self._refuse_non_finite_weights()
        group = getattr(self, "rank_group", None)  # distributed: every rank comes here together
        if self._last_saved == self._position() and (
                group is not None or (self.run.checkpoints_dir / f"step-{st.step}").is_dir()):
            return None  # nothing changed since (e.g. a stop right after a periodic save)
        if self._scaler is not None:
            st.grad_scaler = self._scaler.state_dict()
        extra = group.gather_rng() if group is not None else None
        sharded = self._save_shards() if getattr(self, "fsdp", False) else None
        if group is not None and not group.is_main:
            group.barrier()  # rank 0 writes the checkpoint, with this rank's RNG state in it
            self._last_saved = self._position()
            return None
        boundary = self.hooks.checkpoint_boundary(st.step)
        try:
            path = C.save_checkpoint(self.run.checkpoints_dir, st.step,
                                     self.accelerator.unwrap_model(self.model),
                                     self._inner_optimizer(), self.scheduler, st.to_dict(),
                                     boundary=boundary, extra=extra, sharded=sharded)
            best = self.run.checkpoints_dir / f"step-{st.best_step}" if st.best_step else None
            C.rotate(self.run.checkpoints_dir, self.t.keep_checkpoints, protect=best,
                     boundary=boundary)
        except OSError as e:
            raise self._write_error(e) from None
        self._last_saved = self._position()
        if group is not None:
            group.barrier()  # every rank's part is in: the ranks go on together
        self.events.emit("checkpoint", step=st.step, path=str(path), reason=reason)
        return path

    def _save_shards(self) -> Path:
        """FSDP: every rank writes its shards (DCP) into a directory rank 0 then moves into the
        checkpoint before its COMPLETE marker; DCP returns once every rank's part is written."""
        from tunedeck.core.engine.fsdp import save_sharded

        where = self.run.checkpoints_dir / f".tmp-dcp-step-{self.state.step}"
        if self.rank_group.is_main:
            import shutil

            shutil.rmtree(where, ignore_errors=True)
            where.mkdir(parents=True)
        self.rank_group.barrier()
        try:
            save_sharded(self.model, self.optimizer, where)
        except OSError as e:
            raise self._write_error(e) from None
        self.rank_group.barrier()
        return where

    def _refuse_non_finite_weights(self) -> None:
        """Read the last step's flag, then look at the weights themselves."""
        import torch

        self.check_pending()
        for name, prm in self.accelerator.unwrap_model(self.model).named_parameters():
            if not torch.isfinite(prm).all():
                raise Diverged(f"weights became NaN/Inf at step {self.state.step} ({name}); "
                               f"{DIVERGED_CAUSES.format(lr=self.t.learning_rate)}")

    def _write_error(self, e: OSError) -> CheckpointWriteError:
        root = self.run.checkpoints_dir
        last = C.list_complete(root)
        keep = f"; the last complete checkpoint ({last[-1].name}) is intact" if last else ""
        hint = ("free disk space" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else "check the directory's permissions and free space")
        return CheckpointWriteError(
            f"cannot write checkpoint step-{self.state.step} in {root}: {e.strerror or e}"
            f"{keep}; {hint}, then 'tunedeck resume {self.run.id}'")

    def load_best_weights(self) -> int | None:
        """Put the best validation evaluation's weights back (training.load_best_model_at_end);
        returns its step, or None when the final weights stay (already the best, or no
        checkpoint of the best step)."""
        st = self.state
        if st.best_step is None or st.best_step == st.step:
            return None
        path = self.run.checkpoints_dir / f"step-{st.best_step}"
        if not C.is_complete(path):
            self.events.emit("log", level="warning", message=(
                f"load_best_model_at_end: the best evaluation (step {st.best_step}) has no "
                f"checkpoint (save_every_steps = {self.t.save_every_steps} does not save at "
                "evaluations; 0 does): model/ holds the final weights"))
            return None
        try:
            if getattr(self, "fsdp", False):  # every rank reads its shards of the best weights
                from tunedeck.core.engine.fsdp import SHARDED_DIR, load_sharded_model

                load_sharded_model(self.model, path / SHARDED_DIR)
            else:
                C.load_weights(path, self.accelerator.unwrap_model(self.model))
        except C.CheckpointError as e:  # a damaged best checkpoint must not cost the run
            self.events.emit("log", level="warning", message=(
                f"load_best_model_at_end: {e}; model/ holds the final weights"))
            return None
        self.events.emit("log", level="info", message=(
            f"model/ and the test metrics use the best validation weights: step {st.best_step} "
            f"({self.p.task.metric_for_best} {st.best_metric:.4f}), not the last step {st.step}"))
        return st.best_step
