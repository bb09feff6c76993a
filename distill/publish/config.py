"""Options of `distill publish`: what to upload (adapter, trace dataset), where, and the run records for the cards.

Usage:
    cfg = load_config(PublishConfig, None, ["adapter=out/adapter", "repo_id=me/smollm2-distill", "dry_run=true"])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distill.config import option
from distill.errors import ConfigError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


@dataclass
class PublishConfig:
    """Upload an adapter and/or kept traces with cards from the run records; token: HF_TOKEN or `hf auth login`."""

    adapter: str | None = option(None, "adapter folder from distill finetune (adapter files + distill.json)")
    repo_id: str | None = option(None, "model repo for the adapter, as NAMESPACE/NAME")
    merged_repo_id: str | None = option(
        None, "also upload the merged full model (adapter/merged, from finetune merge=true) to this model repo")
    dataset: str | None = option(
        None, "data to publish as a dataset: kept.jsonl from distill filter, or the chat records finetune trained on "
        "(published as given; without dataset= no dataset is published)")
    dataset_repo_id: str | None = option(None, "dataset repo for the traces, as NAMESPACE/NAME")
    eval: str | None = option(None, "eval folder (report.json) whose results go into the model card")
    outputs_repo_id: str | None = option(
        None, "also publish eval='s raw answers (outputs.jsonl, with verdicts) to this dataset repo, as NAMESPACE/NAME")
    stats: str | None = option(
        None, "filter stats.json of the data (default: the one beside it, when it is the filter's record of that file)")
    traces: str | None = option(None, "generate's traces.jsonl, for tokens and cost (default: found beside dataset=)")
    generate_config: str | None = option(None, "generate's resolved config (default: found beside the traces)")
    base_model: str | None = option(None, "Hub id of the base model for the card (default: from the adapter's records)")
    license: str = option("apache-2.0", "licence of the adapter (respect the base model's and teacher's terms)")
    dataset_license: str | None = option(None, "licence of the dataset (default: license=; respect the problem source's)")
    tags: list[str] = option([], "extra Hub tags")
    private: bool = option(False, "create the repos private")
    revision: str | None = option(None, "branch to upload to (created if missing; default main)")
    commit_message: str | None = option(None, "commit message (default: a summary of what is uploaded)")
    out: str = option("publish", "local staging folder where the upload is built (kept for inspection)")
    dry_run: bool = option(False, "build the folders and cards and list what would be uploaded; upload nothing")
    force: bool = option(False, "overwrite a repo whose existing adapter was trained on another base model")
    allow_regression: bool = option(
        False, "publish even when held-out accuracy fell (paired interval below zero) or guard problems show forgetting")
    guard_eval: str | None = option(None, "eval folder of the guard problems (general skills), scored before and after")
    guard_max_drop: float = option(0.05, "guard accuracy may fall at most this much (absolute) before it is forgetting")

    def __post_init__(self) -> None:
        if not self.adapter and not self.dataset and not self.outputs_repo_id:
            raise ConfigError("give adapter= (and repo_id=) and/or dataset= (and dataset_repo_id=)")
        if self.outputs_repo_id and not self.eval:
            raise ConfigError("outputs_repo_id= needs eval= (the eval folder whose outputs.jsonl is published)")
        if self.adapter and not self.repo_id:
            raise ConfigError("adapter= needs repo_id=NAMESPACE/NAME")
        if self.dataset and not self.dataset_repo_id:
            raise ConfigError("dataset= needs dataset_repo_id=NAMESPACE/NAME")
        if self.merged_repo_id and not self.adapter:
            raise ConfigError("merged_repo_id= needs adapter= (the merged model is adapter/merged)")
        if not 0 <= self.guard_max_drop <= 1:
            raise ConfigError(f"guard_max_drop must be in [0, 1], got {self.guard_max_drop}")
        for key in ("repo_id", "merged_repo_id", "dataset_repo_id", "outputs_repo_id"):
            value = getattr(self, key)
            if value and not _REPO_ID.match(value):
                raise ConfigError(f"{key}={value!r}: expected NAMESPACE/NAME (letters, digits, '-', '_', '.')")
