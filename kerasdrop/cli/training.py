"""`kerasdrop train` (one run from a recipe and/or flags) and `kerasdrop sweep` (the dropout study)."""

from __future__ import annotations

import argparse
import sys

from kerasdrop.cli._options import (
    add_head_options,
    dropout_value,
    float_list,
    print_flushed,
    quiet_tensorflow,
    shape,
)

# Flag -> recipe key. Flags left unset do not override the recipe.
TRAINING_FLAGS = {
    "model": "model.name",
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "image_size": "data.image_size",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "dense_units": "model.dense_units",
    "dropout": "model.dropout",
    "dropout_kind": "model.dropout_kind",
    "optimizer": "training.optimizer",
    "lr": "training.learning_rate",
    "seed": "training.seed",
    "strategy": "training.strategy",
    "steps_per_execution": "training.steps_per_execution",
    "early_stopping": "training.early_stopping_patience",
    "precision": "training.precision",
    "offline": "data.offline",
    "image_mode": "data.image_mode",
    "skip_bad_images": "data.skip_bad_images",
}


def register(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train a zoo model from a recipe file and/or flags; saves a reproducible run directory",
        description="Train from RECIPE (e.g. models/lenet5_digits.toml) and/or flags; flags and --set override "
        "the recipe. With neither, trains lenet5 on digits.",
    )
    train.add_argument("recipe", nargs="?", help="recipe TOML file (default: none, flags and defaults only)")
    add_training_options(train)
    train.add_argument("--out", help="run directory (default: runs/<model>-<dataset>-<timestamp>)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its last completed epoch, with "
        "the settings and data split it started with (refused if its recipe.toml "
        "was edited since)",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out holds (default: refuse a directory that is not empty)",
    )
    train.add_argument(
        "--quiet",
        action="store_true",
        help="no per-epoch progress, only the result lines (for scripts; default: progress)",
    )
    train.set_defaults(handler=run_train)

    sweep = commands.add_parser(
        "sweep",
        help="the dropout study: train at several dropout rates and seeds, compare gaps",
        description="Train the same model at each rate (and seed); writes sweep.json, sweep.md and sweep.png.",
    )
    sweep.add_argument("recipe", nargs="?", help="recipe TOML file to start from (default: none)")
    add_training_options(sweep)
    sweep.add_argument(
        "--rates",
        type=float_list("--rates"),
        required=True,
        metavar="R,R,...",
        help="dropout rates after each hidden Dense, e.g. 0,0.25,0.5",
    )
    sweep.add_argument(
        "--seeds", type=int, default=1, help="runs per rate, seeds seed, seed+1, ... (default: 1)"
    )
    sweep.add_argument(
        "--out",
        required=True,
        help="sweep directory; runs in it of the same settings are reused (finished) or "
        "continued, runs of other settings refused",
    )
    sweep.add_argument(
        "--overwrite",
        action="store_true",
        help="train again the runs in --out whose settings differ (default: refuse, naming "
        "the first differing key)",
    )
    sweep.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines, only the result table (for scripts; default: a line per run and epoch)",
    )
    sweep.add_argument(
        "--train-sizes",
        type=train_sizes,
        metavar="N,N,...,all",
        help="the data-size study: train on stratified subsets of these sizes ('all': the whole "
        "training split), validate and test on the whole splits (default: off)",
    )
    sweep.set_defaults(handler=run_sweep)


def train_sizes(text: str) -> tuple[int | None, ...]:
    """`50,100,all` -> (50, 100, None): None is the whole training split."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            sizes.append(None)
        elif part.isdigit() and int(part) >= 1:
            sizes.append(int(part))
        else:
            raise argparse.ArgumentTypeError(
                f"Invalid value received for --train-sizes. Expected comma-separated integers >= 1 and/or 'all', "
                f"e.g. 50,100,all. Received: {text!r}"
            )
    return tuple(sizes)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    from kerasdrop.training.recipe import OPTIMIZERS, PRECISIONS, STRATEGIES

    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="set_values",
        help="override any recipe key, e.g. --set training.epochs=5 (repeatable)",
    )
    parser.add_argument(
        "--no-recipe",
        action="store_true",
        help="without RECIPE, start from the defaults even where models/<model>_<dataset>.toml "
        "exists (default: start from that recipe)",
    )
    parser.add_argument("--model", help="zoo model name (default: the recipe's, else lenet5)")
    parser.add_argument(
        "--dataset",
        help="digits | synthetic[:HxWxC[:classes]] | tfds:<name>[:<split>] | folder:<path> "
        "| mnist | fashion_mnist | cifar10 | cifar100 (TFDS's; default: the "
        "recipe's, else digits)",
    )
    parser.add_argument(
        "--data-dir",
        help="TFDS data directory; a data set not prepared there is downloaded into it "
        "on first use (default: TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    # store_const with default None: an unset flag must not override a recipe's `data.offline = true`.
    parser.add_argument(
        "--offline",
        action="store_const",
        const=True,
        default=None,
        help="never download: a TFDS data set must already be prepared in --data-dir "
        "(default: download on first use; recipe key data.offline)",
    )
    parser.add_argument(
        "--image-size",
        type=shape("--image-size", "H,W"),
        metavar="HxW",
        help="resize images to HxW or H,W, for models that need larger inputs; required for a "
        "folder whose images differ in size (default: native size)",
    )
    from kerasdrop.data.folder import IMAGE_MODES

    parser.add_argument(
        "--image-mode",
        choices=IMAGE_MODES,
        help="folder:<path> data sets: decode every image as this mode (default: the mode "
        "most of its files have; the others are converted, with a warning)",
    )
    # store_const with default None: an unset flag must not override a recipe's `data.skip_bad_images = true`.
    parser.add_argument(
        "--skip-bad-images",
        action="store_const",
        const=True,
        default=None,
        help="folder:<path> data sets: leave out unreadable image files, counted "
        "(default: stop at the first, naming it)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="epochs (default: the model family's, see the first line train prints; else 20)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="global batch size (default: the model family's; else 64)"
    )
    add_head_options(parser)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help=f"optimizer (default: {OPTIMIZERS[0]})")
    parser.add_argument("--lr", type=float, help="learning rate (default: the model family's; else 1e-3)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    parser.add_argument("--steps-per-execution", type=int, help="batches per compiled step (default: 32)")
    parser.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement (default: off)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=f"compute precision while training; saved models are float32 (default: {PRECISIONS[0]})",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help=f"tf.distribute strategy; multi_worker reads TF_CONFIG (default: {STRATEGIES[0]})",
    )


def recipe_or_shipped(args: argparse.Namespace):
    """The RECIPE argument; without one, the shipped recipe for --model on --dataset, which the flags override."""
    if args.recipe is not None:
        return args.recipe
    if args.no_recipe:
        _print_model_defaults(args.model or "lenet5", "--no-recipe")
        return None
    from kerasdrop.training.recipe import find_recipe

    model, dataset = args.model or "lenet5", args.dataset or "digits"
    found = find_recipe(model, dataset)
    if found is not None:
        print(
            f"starting from the recipe {found} for {model} on {dataset}; flags override it "
            "(--no-recipe: start from the defaults)",
            flush=True,
        )
    else:
        _print_model_defaults(model, f"no recipe for {model} on {dataset}")
    return found


def _print_model_defaults(model: str, why: str) -> None:
    from kerasdrop.zoo.registry import training_defaults

    try:
        defaults = training_defaults(model)
    except ValueError:
        return  # an unknown model: train's own error names the close matches
    if defaults:
        shown = ", ".join(f"{key.split('.')[-1]} {value:g}" for key, value in defaults.items())
        print(f"{why}: starting from {model}'s training defaults ({shown}); flags override them", flush=True)


def training_overrides(args: argparse.Namespace) -> list:
    from kerasdrop.training.recipe import parse_override

    overrides = [parse_override(text) for text in args.set_values]
    for flag, key in TRAINING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if flag == "dropout":
            value = dropout_value(value)
        elif isinstance(value, tuple):
            value = list(value)
        overrides.append((key, value))
    return overrides


def warnings_as_lines(handler):
    """`handler(args)` with each Python warning printed as one line, `kerasdrop <command>: warning: ...`
    (the default format adds the file, line number and source line of the code that warned)."""
    import functools
    import warnings

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        def show(message, category, filename, lineno, file=None, line=None):
            print(f"kerasdrop {args.command}: warning: {message}", file=sys.stderr, flush=True)

        with warnings.catch_warnings():  # restores showwarning afterwards
            warnings.showwarning = show
            return handler(args)

    return run


@warnings_as_lines
def run_train(args: argparse.Namespace) -> int:
    if args.dataset is not None and not args.resume and not args.offline:
        from kerasdrop.data.core import parse_dataset_spec
        from kerasdrop.data.download import check_can_download

        kind, options = parse_dataset_spec(args.dataset)
        if kind == "tfds":  # an offline machine hears it before TensorFlow loads
            check_can_download(options, args.data_dir)
    quiet_tensorflow()
    from kerasdrop.training import train
    from kerasdrop.training.loop import TrainingInterrupted

    overrides = training_overrides(args)
    verbose = keras_verbosity(args.quiet)
    try:
        if args.resume:
            run = train(
                args.recipe,
                out=args.out,
                resume=True,
                overrides=overrides,
                verbose=verbose,
                overwrite=args.overwrite,
            )
        else:
            from kerasdrop.training.recipe import resolve_recipe

            recipe = resolve_recipe(recipe_or_shipped(args), overrides)
            if (line := expectation_line(recipe)) is not None:
                print(line, flush=True)
            run = train(recipe, out=args.out, verbose=verbose, overwrite=args.overwrite)
    except TrainingInterrupted as interrupted:
        print(interrupted_line(interrupted), file=sys.stderr)
        return 128 + interrupted.signal_number  # as a shell reports a command ended by that signal
    from kerasdrop.training.distribute import is_chief

    if not is_chief():
        print(f"\nworker finished; the chief writes the run to {run.directory}/")
        return 0
    metrics = run.metrics
    print(f"\nrun saved to {run.directory}/  ({', '.join(sorted(p.name for p in run.directory.iterdir()))})")
    print(
        f"test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f}; "
        f"train {metrics['train_accuracy']:.4f} vs validation {metrics['validation_accuracy']:.4f} "
        f"(gap {metrics['generalization_gap']:+.4f}); {metrics['epochs_completed']} epochs in {metrics['seconds']:.1f}s"
    )
    expected = run.recipe.expect.test_accuracy
    if expected is not None:
        print(accuracy_verdict(metrics["test_accuracy"], expected))
    elif run.recipe.expect.reference_accuracy is not None:
        print(reference_line(metrics["test_accuracy"], run.recipe.expect))
    return 0


def keras_verbosity(quiet: bool) -> int:
    """0 with --quiet; Keras' live bar on a terminal; else one plain line per epoch (its bar writes ANSI codes)."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def accuracy_verdict(accuracy: float, expected: float) -> str:
    """Compares the 4-decimal figures it prints, so `0.9500 is BELOW 0.9500` cannot be printed."""
    shown, wanted = f"{accuracy:.4f}", f"{expected:.4f}"
    verdict = "meets" if float(shown) >= float(wanted) else "is BELOW"
    return f"test accuracy {shown} {verdict} the recipe's expected {wanted}"


def expectation_line(recipe) -> str | None:
    """What a recipe not run here leads a user to expect: its reference's accuracy and the time per epoch."""
    expect = recipe.expect
    if expect.reference_accuracy is None and expect.cpu_seconds_per_epoch is None:
        return None
    parts = []
    if expect.reference_accuracy is not None:
        parts.append(
            f"test accuracy about {expect.reference_accuracy:.4f} per the recipe's reference "
            f"({expect.reference_source})"
        )
    times = [
        f"{seconds:g} s on {where}"
        for seconds, where in (
            (expect.cpu_seconds_per_epoch, "a 2-core CPU (measured)"),
            (expect.gpu_seconds_per_epoch, "a GPU (FLOPs estimate, a lower bound)"),
        )
        if seconds is not None
    ]
    if times:
        parts.append(f"an epoch takes about {' or '.join(times)} (bench/recipe_epoch_time.py)")
    return f"expect: {'; '.join(parts)}"


def reference_line(accuracy: float, expect) -> str:
    """For a recipe not measured here: the run's figure beside its reference's, with no verdict."""
    return (
        f"test accuracy {accuracy:.4f}; the recipe's reference reports {expect.reference_accuracy:.4f} "
        f"({expect.reference_source})"
    )


def interrupted_line(interrupted) -> str:
    import shlex
    import signal

    how = (
        "interrupted"
        if interrupted.signal_number == signal.SIGINT
        else (f"stopped by {signal.Signals(interrupted.signal_number).name}")
    )
    if interrupted.removed:
        return (
            f"kerasdrop train: {how} before the first epoch completed; {interrupted.directory} was "
            f"removed, so the same command starts afresh"
        )
    resume = f"kerasdrop train --resume --out {shlex.quote(str(interrupted.directory))}"
    return (
        f"kerasdrop train: {how}; last completed epoch {interrupted.completed_epochs} of "
        f"{interrupted.epochs}; continue with: {resume}"
    )


@warnings_as_lines
def run_sweep(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from kerasdrop.training.interrupts import Interrupted, interrupts_raised
    from kerasdrop.training.loop import TrainingInterrupted
    from kerasdrop.training.sweep import sweep

    try:
        with interrupts_raised():  # SIGTERM between two runs too, as Ctrl-C
            result = sweep(
                recipe_or_shipped(args),
                rates=list(args.rates),
                seeds=args.seeds,
                out=args.out,
                overrides=training_overrides(args),
                progress=None if args.quiet else print_flushed,
                train_sizes=list(args.train_sizes) if args.train_sizes is not None else None,
                overwrite=args.overwrite,
            )
    except TrainingInterrupted as interrupted:
        print(
            f"kerasdrop sweep: interrupted in {interrupted.directory} after {interrupted.completed_epochs} "
            f"epoch(s); finished runs are kept and the same command continues the sweep",
            file=sys.stderr,
        )
        return 128 + interrupted.signal_number
    except Interrupted as interrupted:
        print(
            "kerasdrop sweep: interrupted between runs; finished runs are kept and the same command "
            "continues the sweep",
            file=sys.stderr,
        )
        return 128 + interrupted.signal_number
    print(result.table())
    print(f"\nwrote {result.directory}/sweep.json, sweep.md, sweep.png")
    return 0
