"""`kerasdrop promote`: move a models.config label to a version only after it answered the same
requests as the labelled one (kerasdrop/serving/models/promotion.py), or move it back."""

from __future__ import annotations

import argparse
import pathlib

from kerasdrop.cli._options import UsageError, quiet_tensorflow
from kerasdrop.layout import MODELS_CONFIG_FILE
from kerasdrop.serving.models.backends import BACKEND_CHOICES, DEFAULT_BACKEND


def register(commands) -> None:
    from kerasdrop.exporting.models_config import (
        MODELS_CONFIG_BESIDE_REPO,  # light: no TensorFlow
    )
    from kerasdrop.serving.models import promotion

    promote = commands.add_parser(
        "promote",
        help=f"move a {MODELS_CONFIG_FILE} version label to a version once it answers like the labelled one",
        description="Loads the version LABEL points at and the candidate on the serving backend, replays the "
        f"model's logged requests ({MODELS_CONFIG_FILE} logging_config; without logs, the candidate's warmup and "
        "golden requests) through both, prints the comparison and moves the label only when the gate passes "
        f"(exit 1 and nothing changes otherwise). Each move is recorded beside {MODELS_CONFIG_FILE} for "
        "--rollback.",
    )
    promote.add_argument("name", metavar="NAME", help=f"the model's name in {MODELS_CONFIG_FILE}")
    promote.add_argument("--label", required=True, help="the version label to move, e.g. stable")
    target = promote.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", type=int, metavar="VERSION", help="the candidate version")
    target.add_argument(
        "--rollback", action="store_true", help="move the label back to where its last move took it from"
    )
    promote.add_argument("--repo", default="export", help="model repository (default: export)")
    promote.add_argument(
        "--models-config",
        default=MODELS_CONFIG_BESIDE_REPO,
        help=f"the ModelServerConfig holding the label (default: {{repo}}/{MODELS_CONFIG_FILE})",
    )
    promote.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default=DEFAULT_BACKEND,
        help=f"the backend `kerasdrop serve` runs them on (default: {DEFAULT_BACKEND}, as serve's)",
    )
    promote.add_argument(
        "--data",
        metavar="DATASET",
        help="also compare test-split accuracy on any dataset `kerasdrop train --dataset` takes, "
        "with McNemar's paired test (default: none)",
    )
    promote.add_argument(
        "--min-agreement",
        type=float,
        default=promotion.DEFAULT_MIN_AGREEMENT,
        help="least share of replayed rows whose top-1 class both versions agree on (default: "
        f"{promotion.DEFAULT_MIN_AGREEMENT}: two models each right on 97.5%% of requests agree "
        "on at least 95%%)",
    )
    promote.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=promotion.DEFAULT_MAX_ACCURACY_DROP,
        help="with --data, the most the candidate's test accuracy may fall below the labelled "
        f"version's (default: {promotion.DEFAULT_MAX_ACCURACY_DROP}, one point)",
    )
    promote.add_argument(
        "--max-requests",
        type=int,
        default=promotion.DEFAULT_MAX_REQUESTS,
        help=f"newest logged requests replayed (default: {promotion.DEFAULT_MAX_REQUESTS})",
    )
    promote.add_argument(
        "--dry-run", action="store_true", help="print the comparison and the verdict; move nothing"
    )
    promote.set_defaults(handler=run_promote)


def _check(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--min-agreement", args.min_agreement),
        ("--max-accuracy-drop", args.max_accuracy_drop),
    ):
        if not 0.0 <= value <= 1.0:
            raise UsageError(
                f"Invalid value received for {flag}. Expected a number in [0, 1]. Received: {value}"
            )
    if args.max_requests < 1:
        raise UsageError(
            f"Invalid value received for --max-requests. Expected a positive integer. "
            f"Received: {args.max_requests}"
        )
    if args.to is not None and args.to < 1:
        raise UsageError(
            f"Invalid value received for --to. Expected a version number >= 1. Received: {args.to}"
        )


def run_promote(args: argparse.Namespace) -> int:
    _check(args)
    quiet_tensorflow()
    from kerasdrop.exporting.models_config import models_config_path
    from kerasdrop.serving.models import labels, promotion

    repo = pathlib.Path(args.repo)
    config = models_config_path(repo, args.models_config)
    if args.rollback:
        if args.dry_run:
            raise UsageError("--dry-run compares a candidate (--to VERSION); --rollback compares nothing")
        moved_from, moved_to = labels.rollback(repo, config, args.name, args.label)
        print(
            f"rolled back: label {args.label!r} of {args.name} now points at version {moved_to} (was "
            f"{moved_from}); {config} rewritten"
        )
        return 0
    comparison = promotion.evaluate(
        repo,
        config,
        args.name,
        args.label,
        args.to,
        backend=args.backend,
        data=args.data,
        max_requests=args.max_requests,
    )
    print(promotion.render(comparison))
    reasons = promotion.refusals(comparison, args.min_agreement, args.max_accuracy_drop)
    for reason in reasons:
        print(f"refused: {reason}")
    if reasons:
        print(f"label {args.label!r} of {args.name} unchanged (version {comparison.baseline})")
        return 1
    if args.dry_run:
        print(
            f"dry run: the gate passes; label {args.label!r} would move to version {args.to}; nothing changed"
        )
        return 0
    evidence = {
        "source": comparison.source,
        "requests": comparison.requests,
        "agreement": comparison.agreement,
        "max_difference": comparison.max_difference,
        "accuracy": comparison.accuracy or None,
        "p_value": comparison.p_value,
    }
    labels.move_label(config, args.name, args.label, args.to, action="promote", evidence=evidence)
    print(
        f"moved: label {args.label!r} of {args.name} now points at version {args.to} "
        f"(was {comparison.baseline}); {config} rewritten; undo with: kerasdrop promote {args.name} "
        f"--label {args.label} --rollback --repo {args.repo}"
    )
    return 0
