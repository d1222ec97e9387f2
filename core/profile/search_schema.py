"""The profile's ``[search]`` section: what ``tunedeck search`` tries (its own module so that
schema.py stays one screen a section). The space's keys and bounds are checked against the rest
of the schema by ``tunedeck.core.runs.drivers.search_space`` (a key names another section's
field, so a field validator here cannot see it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SearchSection(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              strict=True)

    strategy: Literal["grid", "random", "bayes"] = Field(
        "bayes",
        description="'grid' (every combination of the listed values; Optuna's GridSampler), "
        "'random' (RandomSampler) or 'bayes' (TPESampler). The sampler is seeded with "
        "search.seed: the same profile tries the same values in the same order.",
    )
    trials: int = Field(
        0, ge=0, le=100_000,
        description="Trials to run in all (every driver sharing the study counts). 0 = every "
        "grid point with strategy 'grid'; random and bayes need a number.",
    )
    partial_grid: bool = Field(
        False, description="With strategy 'grid': allow fewer trials than grid points (a "
        "seeded random subset of the grid). Off: more points than trials is an error.",
    )
    metric: str = Field(
        "eval_loss", min_length=1,
        description="What the search optimises: a validation metric of the task ('eval_loss', "
        "'accuracy', 'f1_macro' for classification; 'eval_loss', 'perplexity' for language "
        "models). A trial's value is its best validation evaluation.",
    )
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="'auto': minimise losses and perplexity, maximise the rest.",
    )
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median",
        description="Stop unpromising trials after a validation evaluation: 'median' "
        "(MedianPruner: worse than the median of earlier trials at the same step), "
        "'hyperband' (HyperbandPruner) or 'none'. A pruned trial's run ends 'pruned'.",
    )
    parallel: int = Field(
        0, ge=0, le=64,
        description="Trials in flight at once, each in its own worker process. 0 (or \"auto\"): "
        "one per visible GPU (CUDA_VISIBLE_DEVICES), 1 on a CPU. On GPUs each trial gets its "
        "own GPU (never shared), so at most the number of GPUs; on a CPU, N processes share "
        "the cores. Several boxes or drivers share one study through search.storage.",
    )

    @field_validator("parallel", mode="before")
    @classmethod
    def _auto_parallel(cls, v: Any) -> Any:
        return 0 if v == "auto" else v  # "auto" reads better in a profile; 0 is its number

    storage: str | None = Field(
        None,
        description="Optuna storage the study lives in. Empty: a journal file in the study "
        "directory. An RDB URL (e.g. 'sqlite:////abs/path/study.db', 'postgresql://...') or a "
        "journal file path shares one study between several drivers (each runs its own trials; "
        "none is run twice; 'trials' counts them all).",
    )
    study_name: str | None = Field(
        None, description="The study's name in the storage. Empty: the profile's name with "
        "'-search' (drivers sharing a storage join the study of that name).",
    )
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Seed of the sampler. Empty: training.seed."
    )
    space: dict[str, Any] = Field(
        {},
        description="What to try, per profile key: a list of values "
        "(training.batch_size = [16, 32]) or a range ({low = 1e-5, high = 1e-4, log = true}; "
        "'step' for a grid of an integer range). Keys are hyperparameters of [training] "
        "(learning_rate, batch_size, epochs, dropout, weight_decay, warmup_ratio ...) or "
        "model.name. 'tunedeck search PROFILE --space FILE' reads it from a TOML file instead.",
    )
