"""`distill publish` end to end: stage folders with cards, scan for secrets, guard the base model, upload.

Usage:
    from distill.publish.stage import run
    run(cfg)             # cfg: PublishConfig; returns the staging folder (dry run) or the repo URL(s)

The upload is built in ``out/model`` and ``out/dataset`` first, so a dry run shows exactly the
files that would go, and the secret scan reads exactly those bytes. Each repo gets one commit
(``upload_folder``); the dataset is Parquet shards written by ``datasets``' writer in the layout
``push_to_hub`` uses (``data/train-*.parquet`` + a README whose ``configs`` point at it), streamed
from the file a block at a time, so ``load_dataset`` reads it back. A publish interrupted
mid-upload is run again as it was: the shards come out byte for byte the same, the Hub already
holds the LFS objects (and, with hf_xet, the chunks) that were sent, and ``upload_folder`` skips
files whose hash it already has, so only what is missing is sent. The token is whatever huggingface_hub finds (HF_TOKEN or ``hf auth login``).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from distill.errors import ConfigError, HubError, InputError, RegressionBlocked
from distill.adapters import AdapterBase, read_base
from distill.paths import check_outputs
from distill.progress import human_count, show_table
from distill.publish.cards import (check_outputs_publishable, dataset_card, model_card, outputs_card,
                                   write_eval_results)
from distill.publish.config import PublishConfig
from distill.publish.provenance import gather
from distill.publish.secrets import scan_folder
from distill.publish import shards
from distill.publish.shards import write_shards
from distill.redact import redact


log = logging.getLogger(__name__)
# Training leftovers that do not belong in a published adapter repo.
SKIP = ("optimizer.pt", "scheduler.pt", "training_args.bin", "trainer_state.json", "loss.jsonl")


def run(cfg: PublishConfig, api=None) -> Path | str:
    """Build, scan and (unless dry_run) upload; ``api`` is an HfApi (tests may pass one)."""
    _check_inputs(cfg)
    facts = gather(cfg)
    facts["outputs_repo_id"] = cfg.outputs_repo_id  # the model card links the raw outputs
    if cfg.adapter:
        facts["gate"] = _gate(cfg)
    out = Path(cfg.out)
    staged: list[tuple[str, str, Path]] = []  # (repo_type, repo_id, folder)
    if cfg.adapter:
        staged.append(("model", cfg.repo_id, stage_model(cfg, facts, out / "model")))
    if cfg.merged_repo_id:
        staged.append(("model", cfg.merged_repo_id, stage_merged(cfg, facts, out / "merged")))
    if cfg.dataset:
        staged.append(("dataset", cfg.dataset_repo_id, stage_dataset(cfg, facts, out / "dataset")))
    if cfg.outputs_repo_id:
        staged.append(("dataset", cfg.outputs_repo_id, stage_outputs(cfg, facts, out / "outputs")))
    for _, _, folder in staged:
        scan_folder(folder)
    _show(staged, cfg)
    if cfg.dry_run:
        log.info("dry run: nothing uploaded; the folders are in %s", out)
        return out
    if api is None:
        from huggingface_hub import HfApi, get_token

        if get_token() is None:
            raise ConfigError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (distill never stores it)")
        api = HfApi()
    urls = []
    for repo_type, repo_id, folder in staged:
        try:
            urls.append(upload(api, repo_type, repo_id, folder, cfg))
        except OSError as exc:  # HfHubHTTPError and connection errors; the message may echo the token
            raise HubError(f"{repo_type}s/{repo_id}: the Hub refused the upload ({_first_line(exc)})"
                           + (f"; already uploaded: {' '.join(urls)}" if urls else "")) from None
    return " ".join(urls)


def _check_inputs(cfg: PublishConfig) -> None:
    """Every named input exists and the staging folder writes over none of them, before anything is built."""
    if cfg.eval and not (Path(cfg.eval) / "report.json").is_file():
        raise InputError("no report.json here: eval= needs an eval folder (from distill eval)", path=cfg.eval,
                         field="eval")
    if cfg.dataset and not Path(cfg.dataset).is_file():  # (stats=, traces= only add to the card: optional)
        raise InputError("file not found", path=cfg.dataset, field="dataset")
    if cfg.adapter and not Path(cfg.adapter).is_dir():
        raise InputError("adapter folder not found", path=cfg.adapter, field="adapter")
    if cfg.guard_eval and not (Path(cfg.guard_eval) / "report.json").is_file():
        raise InputError("no report.json here: guard_eval= needs an eval folder (from distill eval)",
                         path=cfg.guard_eval, field="guard_eval")
    check_outputs("publish", inputs={k: getattr(cfg, k) for k in ("adapter", "dataset", "eval", "stats", "traces",
                                                                    "generate_config", "guard_eval")},
                  outputs={"out": cfg.out}, folders={"out": ("model", "merged", "dataset")})


def _gate(cfg: PublishConfig) -> list[str]:
    """Refuse an adapter that made the student worse, before anything is staged; the card's sentences."""
    from distill.gate import judge_folders

    verdict = judge_folders(cfg.eval, cfg.guard_eval, cfg.guard_max_drop, cfg.allow_regression)
    if verdict.blocked:
        raise RegressionBlocked(" ".join(verdict.lines()))
    if verdict.regressed or verdict.forgetting:
        log.warning("publishing a regressed adapter (allow_regression=true): %s", " ".join(verdict.lines()))
    return verdict.lines()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return redact(text[:300] or type(exc).__name__)


def stage_model(cfg: PublishConfig, facts: dict, folder: Path) -> Path:
    """Copy the adapter's top-level files (no checkpoints, merged model or optimizer state) + README.md."""
    adapter = Path(cfg.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise InputError("not an adapter folder (no adapter_config.json)", path=adapter, field="adapter")
    _fresh(folder)
    for item in sorted(adapter.iterdir()):
        if item.is_file() and item.name not in SKIP and not item.name.startswith(".") and item.name != "README.md":
            shutil.copy2(item, folder / item.name)
    if facts["base_model"]:  # the Hub id, so AutoPeftModel finds the base anywhere, not a local path
        config = json.loads((folder / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = facts["base_model"]
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    else:
        log.warning("the base model is only known as a local path (%s): pass base_model=<Hub id> so the card's "
                    "metadata and adapter_config.json name it", facts["base_model_recorded"])
    card = model_card(facts, cfg.repo_id, cfg.dataset_repo_id, cfg.license, cfg.tags)
    (folder / "README.md").write_text(card, encoding="utf-8")
    write_eval_results(facts, folder)  # a benchmark eval's results in the Hub's .eval_results format
    return folder


def stage_merged(cfg: PublishConfig, facts: dict, folder: Path) -> Path:
    """The merged full model finetune wrote to adapter/merged, with a card of its own."""
    source = Path(cfg.adapter) / "merged"
    if not (source / "config.json").is_file():
        raise InputError("no merged model here (run finetune with merge=true)", path=source, field="merged_repo_id")
    _fresh(folder)
    for item in sorted(source.iterdir()):
        if item.is_file() and not item.name.startswith(".") and item.name != "README.md":
            shutil.copy2(item, folder / item.name)
    card = model_card(facts, cfg.merged_repo_id, cfg.dataset_repo_id, cfg.license, cfg.tags, merged_from=cfg.repo_id)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def stage_dataset(cfg: PublishConfig, facts: dict, folder: Path, max_shard_bytes: int | None = None) -> Path:
    """data/train-0000i-of-0000N.parquet (streamed from the file by distill.publish.shards) + README.md.

    Only when ``dataset=`` names the data: kept traces, or the plain chat records an adapter was
    trained on (published as given, and the card says that is all it knows of them).
    """
    _fresh(folder)
    try:
        summary = write_shards(Path(cfg.dataset), folder / "data", max_shard_bytes or shards.MAX_SHARD_BYTES,
                               is_traces=(facts.get("data") or {}).get("kind") != "chat")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-built is left to upload
        raise
    license = cfg.dataset_license or cfg.license
    card = dataset_card(facts, cfg.dataset_repo_id, license, summary.rows, summary.columns, cfg.tags)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def stage_outputs(cfg: PublishConfig, facts: dict, folder: Path) -> Path:
    """The eval's raw answers (the record that counts per (id, sample)) as a Parquet dataset + README.md."""
    from datasets import Dataset

    from distill.artifacts import read_latest
    from distill.layout import EvalFiles

    check_outputs_publishable(facts)
    path = EvalFiles(Path(cfg.eval)).outputs
    rows = [r for r in read_latest(path).values() if not r.get("error")] if path.is_file() else []
    if not rows:
        raise InputError("no answers to publish in outputs.jsonl", path=path, field="eval")
    columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c not in ("schema", "error")]
    # One type per column: a gold kept as its digest (distill.evaluate.stage) becomes JSON text like the rest.
    table = [{c: json.dumps(row.get(c)) if c == "gold" and not isinstance(row.get(c), str) else row.get(c)
              for c in columns} for row in rows]
    _fresh(folder)
    (folder / "data").mkdir()
    Dataset.from_list(table).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    license = cfg.dataset_license or cfg.license
    (folder / "README.md").write_text(outputs_card(facts, cfg.outputs_repo_id, license, len(rows), columns, cfg.tags,
                                                   cfg.repo_id), encoding="utf-8")
    return folder


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def upload(api, repo_type: str, repo_id: str, folder: Path, cfg: PublishConfig) -> str:
    """create_repo (+ branch), refuse a base-model clash unless force, then one upload_folder commit."""
    if (folder / "adapter_config.json").is_file() and api.repo_exists(repo_id, repo_type="model"):
        _guard_base(api, repo_id, folder, cfg)
    url = api.create_repo(repo_id, repo_type=repo_type, private=cfg.private, exist_ok=True)
    if cfg.revision:
        api.create_branch(repo_id, branch=cfg.revision, repo_type=repo_type, exist_ok=True)
    message = cfg.commit_message or f"distill publish: {'adapter' if repo_type == 'model' else 'traces'}"
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, revision=cfg.revision,
                      commit_message=message)
    log.info("uploaded %s to %s", folder, url)
    return str(url)


def _guard_base(api, repo_id: str, folder: Path, cfg: PublishConfig) -> None:
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        remote = api.hf_hub_download(repo_id, "adapter_config.json", revision=cfg.revision)
    except (EntryNotFoundError, RevisionNotFoundError):
        return
    theirs = AdapterBase(None, json.loads(Path(remote).read_text())).peft_base
    staged = read_base(folder)  # what is uploaded: its record, and the config stage_model wrote
    ours = staged.peft_base or (staged.refs or [None])[0]
    if theirs and ours and not staged.is_for(theirs):
        if cfg.force:
            log.warning("%s holds an adapter for %s; replacing it with one for %s (force=true)", repo_id, theirs, ours)
            return
        raise InputError(f"{repo_id} already holds an adapter trained on {theirs!r}, this one is for {ours!r}; "
                         "use another repo_id, or force=true to overwrite", field="repo_id")


def _show(staged: list[tuple[str, str, Path]], cfg: PublishConfig) -> None:
    rows = []
    for repo_type, repo_id, folder in staged:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rows.append((f"{repo_type}s/{repo_id}", str(path.relative_to(folder)), human_count(path.stat().st_size) + "B"))
    title = "would upload (dry run)" if cfg.dry_run else "uploading"
    if cfg.revision:
        title += f" to branch {cfg.revision}"
    show_table(title + (" (private)" if cfg.private else ""), rows, header=("repo", "file", "size"))


