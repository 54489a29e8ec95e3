"""The `hcl-study` command line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hcl_study.commands import command
from hcl_study.config import (
    TrainConfig,
    flatten,
    parse_train_config,
    read_yaml_file,
    with_assignments,
)
from hcl_study.errors import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    Interrupted,
    TrackingError,
    TrainingInterrupted,
    UserError,
)

if TYPE_CHECKING:
    from analysis.report import Report

app = typer.Typer(
    help="Hyperparameter studies of hard-negative contrastive learning (NC vs DC).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
FLAG = ""  # the metavar of a flag: typer would show `<bool>`, as if it took a value


VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        metavar=FLAG,
        help="Also show the libraries' logs (Ray, Tune, MLflow at INFO), the trials' own "
        "output and failed trials' tracebacks, besides the line per ended trial.",
    ),
]


@app.callback()
def _group() -> None:
    """Hyperparameter studies of hard-negative contrastive learning (NC vs DC)."""


def user_errors_exit_2(command: F) -> F:
    """Print a `UserError` as one paragraph and exit with code 2 (a `TrackingError`, MLflow
    failing after the checks, as one paragraph too, with code 1)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            # Escaped: messages quote user input and ranges like [low, high], not markup.
            err_console.print(
                f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(EXIT_USER_ERROR) from None
        except TrackingError as error:
            message = " ".join(str(error).split())
            err_console.print(
                f"[bold red]tracking error:[/] {escape(message)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def interrupted_exit_130(command: F) -> F:
    """Print how to continue `Interrupted` work and exit with code 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as interrupted:
            err_console.print(
                f"[bold yellow]interrupted:[/] {escape(str(interrupted))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


ConfigOption = Annotated[
    Path | None, typer.Option(help="YAML training config (defaults apply to missing keys).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set loss.beta=5 (repeatable).",
    ),
]


@app.command()
@user_errors_exit_2
@interrupted_exit_130
def train(
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: metrics.jsonl, class_means.npy, spectrum.npy, checkpoint.pt, "
            "config.yaml."
        ),
    ],
    config: ConfigOption = None,
    set_: SetOption = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", metavar=FLAG, help="Continue from OUT/checkpoint.pt if it exists."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            metavar=FLAG,
            help="Replace the run already in OUT (without it or --resume, such an OUT is refused).",
        ),
    ] = False,
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Write a checkpoint (and the .npy files) every N epochs.")
    ] = 10,
) -> None:
    """Run one training run (no Ray, no MLflow) and write its metrics and class means."""
    from hcl_study.train import CHECKPOINT_FILE
    from hcl_study.train.outputs import CONFIG_FILE, RUN_FILES, RunOutputs

    if resume and overwrite:
        raise UserError(
            "--resume, --overwrite: give one of them (continue the run, or replace it)."
        )
    train_config = _load_train_config(config, set_ or [])
    _check_writable_folder(out, "--out")
    _check_device(train_config.device)
    resuming = resume and (out / CHECKPOINT_FILE).exists()
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not (resume or overwrite):
        raise UserError(
            f"--out: {out} holds a run already ({', '.join(held)}); continue it with --resume, "
            "replace it with --overwrite, or give another --out."
        )
    outputs = RunOutputs(out)
    diverged = outputs.diverged_epoch() if resume else None
    if resuming or diverged is not None:
        _require_same_run(out, train_config)
    if diverged is not None:
        console.print(
            f"Nothing to do: the run in {out} diverged in epoch {diverged + 1} (non-finite "
            "values), and with the same config and seed it would diverge there again. Start it "
            "over with other settings (e.g. a smaller optimizer.lr) and --overwrite, or in "
            "another --out.",
            soft_wrap=True,
        )
        return
    trainer = _new_trainer(train_config)
    total = train_config.epochs
    if resuming:
        _restore(trainer, out, total)
        outputs.truncate(trainer.epoch)
        console.print(f"Resuming {out} after epoch {trainer.epoch} of {total}.", soft_wrap=True)
    else:
        if resume:
            console.print(f"No checkpoint in {out}: the run starts at epoch 1.", soft_wrap=True)
        outputs.start()  # a fresh run never resumes, nor keeps the files of, an older one
    (out / CONFIG_FILE).write_text(_dump_yaml(train_config.model_dump(mode="json")))
    saved = [trainer.epoch]  # the epochs of the checkpoint in OUT, as it is written
    try:
        results = _train_with_progress(trainer, train_config, outputs, out, checkpoint_every, saved)
    except KeyboardInterrupt:
        again = f"{command('hcl-study')} train --config {out / CONFIG_FILE} --out {out}"
        last = saved[0]
        raise TrainingInterrupted(
            f"training stopped after {trainer.epoch} of {total} epochs; "
            + (
                f"{out} holds its checkpoint after epoch {last} (one every {checkpoint_every} "
                f"epochs; the files agree with it). Continue it with: {again} --resume"
                if last
                else "no checkpoint was written yet (the first comes after epoch "
                f"{min(checkpoint_every, total)}). Start it again with: {again} --overwrite"
            )
        ) from None
    outputs.flush()
    _print_train_summary(results, out, total, saved[0])


def _train_with_progress(
    trainer: Any,
    config: TrainConfig,
    outputs: Any,
    out: Path,
    checkpoint_every: int,
    saved: list[int],
) -> list[Any]:
    """Train to `config.epochs` with a progress bar (a line per epoch when the output is not
    a terminal), writing the files and a checkpoint every `checkpoint_every` epochs; `saved`
    holds the epochs of the latest checkpoint written."""
    from hcl_study.train import train as run_training

    total = config.epochs
    with Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("train", total=total, completed=trainer.epoch, status="")

        def on_epoch(result: Any) -> None:
            outputs.append(result)
            due = trainer.epoch % checkpoint_every == 0 or trainer.epoch == total
            if due and not result.diverged:  # the checkpoint keeps the last finite state
                outputs.flush()  # first: a checkpoint must never be ahead of the arrays
                trainer.save(out)
                saved[0] = trainer.epoch
            status = f"loss {result.metrics['loss']:.4f} · {result.regime}"
            progress.update(task, advance=1, status=status)
            if not console.is_terminal:  # a log file: rich draws the bar only at the end
                console.print(f"epoch {trainer.epoch}/{total}: {status}", highlight=False)

        return run_training(config, on_epoch=on_epoch, trainer=trainer)


def _new_trainer(config: TrainConfig) -> Any:
    """The run's data and model; sizes beyond this machine's memory are refused."""
    import torch

    from hcl_study.train import Trainer

    try:
        return Trainer(config)
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "can't allocate memory" not in str(error):
            raise
        raise UserError(
            f"out of memory while loading the data and building the model "
            f"({str(error).splitlines()[0]}): the config asks for more memory than this "
            "machine has; reduce model.width, model.depth, model.head_hidden, "
            "model.feature_dim or the data sizes (data.num_train, data.num_test, "
            "data.input_dim)."
        ) from None


def _restore(trainer: Any, out: Path, epochs: int) -> None:
    """Load OUT/checkpoint.pt into `trainer`; a damaged one, or one past `epochs`, is refused."""
    try:
        trainer.restore(out)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise UserError(
            f"--resume: {out}/checkpoint.pt cannot be read ({type(error).__name__}: {error}); "
            "start the run over with --overwrite."
        ) from None
    if epochs < trainer.epoch:
        raise UserError(
            f"epochs: the run in {out} has trained {trainer.epoch} epochs; --resume can only "
            f"extend it (epochs >= {trainer.epoch}), not shorten it to {epochs}."
        )


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "device: 'cuda' is asked, but torch sees no CUDA GPU on this machine; allowed here: "
            "'auto' (the GPU when there is one) or 'cpu'."
        )


def _load_train_config(config: Path | None, assignments: list[str]) -> TrainConfig:
    """The validated `TrainConfig` of a YAML file plus `--set` overrides.

    Raises:
        UserError: On a missing or invalid file, a malformed `--set` or an invalid field.
    """
    raw = with_assignments(read_yaml_file(config) if config else {}, assignments)
    source = f"config {config or '(defaults)'}" + "".join(f" --set {text}" for text in assignments)
    return parse_train_config(raw, source=source)


@app.command("config")
@user_errors_exit_2
def show_config(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the training config `train` would run: every default filled in, validated
    (docs/config.md says what each field means)."""
    train_config = _load_train_config(config, set_ or [])
    print(_dump_yaml(train_config.model_dump(mode="json")), end="")


def _print_train_summary(results: list[Any], out: Path, total: int, checkpoint_epoch: int) -> None:
    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    if not results:
        say(f"Nothing to do: {out} is already complete.")
        return
    last = results[-1]
    m = last.metrics
    if last.diverged:
        say(f"[bold red]Diverged[/] in epoch {last.epoch + 1} of {total} (non-finite values).")
    else:
        say(
            f"Epoch {last.epoch + 1}/{total}: regime [bold]{last.regime}[/] · "
            f"loss {m['loss']:.4f} · "
            f"erank_means {m['erank_means']:.2f}/{m['rank_bound']:.0f} · "
            f"etf_distance {m['etf_distance']:.3f} · dc_count {m['dc_count']:.0f} · "
            f"NCM test {m['ncm_accuracy_test']:.3f}"
        )
    checkpoint = (
        f"checkpoint.pt (after epoch {checkpoint_epoch})"
        if checkpoint_epoch
        else "no checkpoint.pt (none was due before the divergence)"
    )
    say(
        f"Wrote {out.resolve()}/: metrics.jsonl, class_means.npy, spectrum.npy, config.yaml, "
        f"{checkpoint}"
    )


def _require_same_run(out: Path, config: TrainConfig) -> None:
    """`--resume` continues the run in `out`: only `epochs` may differ from its config.yaml.

    Raises:
        UserError: Another field differs (the checkpoint holds a run of another config).
    """
    saved_file = out / "config.yaml"
    if not saved_file.exists():
        return
    source = f"config of the run in {out}"
    saved = flatten(
        parse_train_config(read_yaml_file(saved_file), source=source).model_dump(mode="json")
    )
    asked = flatten(config.model_dump(mode="json"))
    changed = [
        f"{key}: {saved.get(key)!r} -> {asked.get(key)!r}"
        for key in sorted(saved.keys() | asked.keys())
        if key != "epochs" and saved.get(key) != asked.get(key)
    ]
    if changed:
        raise UserError(
            f"--resume: {out} holds a run of another config ({'; '.join(changed)}); only "
            "epochs may change when a run is resumed. Give the run's config, or another --out "
            "to start a new run."
        )


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


@app.command()
@user_errors_exit_2
@interrupted_exit_130
def study(
    spec: Annotated[Path, typer.Argument(help="Study spec (YAML), e.g. search_spaces/quick.yaml.")],
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join ('auto', HOST:PORT, ray://HOST:10001); "
            "default: RAY_ADDRESS, else local Ray."
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI; default: the spec's, else MLFLOW_TRACKING_URI, else "
            "studies/NAME/mlflow.db."
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Tune storage path (shared folder or s3:// URI on a cluster); default: the "
            "spec's storage_path, else studies/NAME/ray."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a spec key, e.g. --set base.data.root=/data/cifar100 (repeatable).",
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run a hyperparameter study: Ray Tune trials, every one logged to MLflow.

    A spec whose study already exists (studies/NAME) continues it where it stopped, or
    reports it again when it is complete.
    """
    from hcl_study.study.runner import run_study

    summary = run_study(
        spec,
        address=address,
        tracking_uri=tracking_uri,
        storage=storage,
        assignments=set_ or [],
        verbose=verbose,
    )
    _print_study_summary(summary)


@app.command()
@user_errors_exit_2
@interrupted_exit_130
def resume(
    name_or_path: Annotated[
        str, typer.Argument(help="Study name (under studies/) or study folder.")
    ],
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join; default: RAY_ADDRESS, else the cluster the study ran "
            "on (local Ray if it ran there)."
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            metavar=FLAG,
            help="Also run the trials that failed (used up max_failures, e.g. while a node or "
            "the tracking server was down) again, from their last checkpoints, in their MLflow "
            "runs.",
        ),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Finish an interrupted study where it stopped (same trials, same MLflow runs)."""
    from hcl_study.study.runner import resume_study

    summary = resume_study(
        name_or_path, address=address, verbose=verbose, retry_failed=retry_failed
    )
    _print_study_summary(summary)


def _print_study_summary(summary: Any) -> None:
    from rich.table import Table

    from hcl_study.study.callbacks import format_params
    from hcl_study.study.runner import STUDIES_DIR
    from hcl_study.tracking import redacted_uri

    def say(text: str) -> None:  # one line each, whatever the width: paths and ids copy whole
        console.print(text, soft_wrap=True, highlight=False)

    say(f"[bold]Study {summary.name}[/]: {summary.num_trials} trials")
    table = Table()
    table.add_column("regime")
    table.add_column("trials", justify="right")
    for regime, count in sorted(summary.regimes.items()):
        table.add_row(regime, str(count))
    console.print(table)
    if summary.best:
        best = summary.best
        params = format_params(best["params"])
        say(
            f"Best trial for {best['metric']}: {best['value']:.4g} ({best['regime']}) with "
            f"{escape(params)}; MLflow run {best['mlflow_run_id']}"
        )
    say(
        f"MLflow: {escape(redacted_uri(summary.tracking_uri))} · experiment "
        f"{summary.experiment_id} · parent run {summary.parent_run_id}"
    )
    say(f"Open the UI: [bold]{escape(summary.ui_command())}[/]")
    say(
        f"Study folder: {Path(STUDIES_DIR, summary.name).resolve()} · report: "
        f"{command('hcl-study')} analyze {summary.name}"
    )
    failed = summary.regimes.get("failed", 0)
    if failed:
        say(
            f"{failed} trial{'s' if failed > 1 else ''} failed (the error is in the trial's "
            f"MLflow run and Tune's error.txt); once the cause is fixed, "
            f"{command('hcl-study')} resume {summary.name} --retry-failed runs "
            f"{'them' if failed > 1 else 'it'} again, from the last checkpoint where there "
            "is one."
        )


def _check_writable_folder(out: Path, option: str) -> Path:
    """A folder that is or can be created at `out`, refused before any work when it cannot
    be one (created later)."""
    import os

    existing = next(folder for folder in (out, *out.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise UserError(f"{option}: {existing} is a file; give a folder (created when missing).")
    if not os.access(existing, os.W_OK):
        raise UserError(f"{option}: {existing} is not writable; give a folder you can write to.")
    return out


@app.command()
@user_errors_exit_2
def analyze(
    study: Annotated[str, typer.Argument(help="Study name (its MLflow experiment).")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI; default: studies/STUDY/study.json's, else "
            "MLFLOW_TRACKING_URI, else studies/STUDY/mlflow.db."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder; default: studies/STUDY/report.")
    ] = None,
) -> None:
    """Write the study's HTML report (figures, phase boundary, trials) and log it to MLflow."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from analysis.loading import study_tracking_uri
    from analysis.report import ARTIFACT_PATH, write_report
    from hcl_study.study.runner import STUDIES_DIR

    uri = tracking_uri or study_tracking_uri(study)
    folder = _check_writable_folder(out, "--out") if out else Path(STUDIES_DIR, study, "report")
    with console.status(f"Reading study {study}, fitting its boundaries, drawing its figures"):
        report = write_report(uri, study, folder)
    _print_report_location(report, ARTIFACT_PATH, study)


def _print_report_location(report: Report, artifact_path: str, study: str) -> None:
    if report.unfinished:
        console.print(f"[yellow]{escape(report.unfinished)}[/yellow]", soft_wrap=True)
    for line in report.summary:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"Report: {report.path.resolve()}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"Logged under {artifact_path}/ on the parent run {report.parent_run_id} of {study}.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
@user_errors_exit_2
@interrupted_exit_130
def reproduce(
    study: Annotated[
        str,
        typer.Argument(
            help="Study name (its MLflow experiment), or a study spec (YAML) to run first, "
            "e.g. search_spaces/paper_claims_cpu.yaml."
        ),
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI; default: studies/STUDY/study.json's, else "
            "MLFLOW_TRACKING_URI, else studies/STUDY/mlflow.db (for a spec: the spec's, else "
            "MLFLOW_TRACKING_URI, else studies/NAME/mlflow.db)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder; default: studies/STUDY/claims.")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="With a spec: the Ray cluster to join; default: RAY_ADDRESS, else local Ray."
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="With a spec: Tune storage path (shared folder or s3:// URI)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="With a spec: override a spec key, e.g. --set base.data.root=/data/cifar100 "
            "(repeatable).",
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Test the paper's claims on a study: figures, phase diagram, claims table with verdicts."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import json

    from rich.table import Table

    from analysis.claims import ARTIFACT_PATH, CLAIMS_FILE, write_claims_report
    from analysis.loading import study_tracking_uri
    from hcl_study.study.runner import STUDIES_DIR

    spec_path = Path(study)
    folder = _check_writable_folder(out, "--out") if out is not None else None
    if spec_path.suffix in (".yaml", ".yml"):
        from hcl_study.study.runner import run_study

        if not spec_path.is_file():
            raise UserError(
                f"STUDY: no spec file at {spec_path}; give an existing study spec (YAML) or the "
                "name of a study."
            )
        summary = run_study(
            spec_path,
            address=address,
            tracking_uri=tracking_uri,
            storage=storage,
            assignments=set_ or [],
            verbose=verbose,
        )
        _print_study_summary(summary)
        study, uri = summary.name, summary.tracking_uri
    else:
        if set_:
            raise UserError(
                "--set: overrides apply to a study spec (STUDY ending in .yaml) that is run "
                f"first; {study!r} names a study that exists already."
            )
        uri = tracking_uri or study_tracking_uri(study)
    with console.status(f"Reading study {study}, testing the claims, drawing the figures"):
        report = write_claims_report(uri, study, folder or Path(STUDIES_DIR, study, "claims"))
    claims = json.loads((report.path.parent / CLAIMS_FILE).read_text())["claims"]
    table = Table(title=f"Paper claims on {study}", show_lines=True)
    for column in ("claim", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for claim in claims:
        table.add_row(str(claim["number"]), claim["verdict"], escape(claim["reason"]))
    console.print(table)
    _print_report_location(report, ARTIFACT_PATH, study)


@app.command()
@user_errors_exit_2
def hardness(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN", help="Run folders of `hcl-study train` (config + checkpoint)."
        ),
    ],
    samples: Annotated[
        int,
        typer.Option(metavar="N", help="Batch of the first N training samples to weigh.", min=2),
    ] = 512,
) -> None:
    """Share of each anchor's hardness weight on its own class, for trained runs (HUCL's DC)."""
    from rich.table import Table

    from analysis.hardness import LOW_QUANTILE, run_own_class_weight

    table = Table(title=f"Hardness weight on the anchor's own class ({samples} training samples)")
    low = f"q{LOW_QUANTILE * 100:02.0f}"
    for column in ("run", "loss", "beta", "self_negative", "epoch", "mean", low, "min"):
        table.add_column(column, overflow="fold")
    with console.status("Embedding the runs' training samples"):
        for run in runs:
            share = run_own_class_weight(run, samples)
            table.add_row(
                escape(str(run)),
                share.loss,
                f"{share.beta:g}",
                str(share.self_negative).lower() if share.loss == "ucl" else "-",
                str(share.epoch),
                *(f"{value:.4f}" for value in (share.mean, share.low, share.min)),
            )
    console.print(table)
    console.print(
        f"{low}: the {LOW_QUANTILE:.0%} quantile over the anchors.", highlight=False, soft_wrap=True
    )
