"""`kerasdrop calibrate`: calibration and MC averaging vs weight scaling of a finished run."""

from __future__ import annotations

import argparse

from kerasdrop.cli._options import int_list, quiet_tensorflow


def register(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="calibration (NLL, Brier, ECE, reliability) and MC averaging vs weight scaling of a run",
        description="On the run's own test split: NLL, Brier score, ECE (15 bins) and reliability diagrams for the "
        "deterministic model, MC dropout and temperature scaling (fitted on validation); and test error "
        "of the mean of k stochastic passes against weight scaling. Writes calibration.json, "
        "reliability.png, mc_averaging.json, mc_averaging.png into RUN_DIR and the figures into its "
        "metrics.json.",
    )
    calibrate.add_argument("run_dir", help="a run directory written by `kerasdrop train` (e.g. runs/demo)")
    calibrate.add_argument(
        "--mc-samples", type=int, default=50, help="passes for MC dropout's calibration (default: 50)"
    )
    calibrate.add_argument(
        "--ks",
        type=int_list("--ks"),
        default=(1, 2, 5, 10, 20, 50, 100),
        metavar="K,K,...",
        help="passes averaged for the MC-averaging curve (default: 1,2,5,10,20,50,100)",
    )
    calibrate.add_argument("--repeats", type=int, default=10, help="independent draws per k (default: 10)")
    calibrate.add_argument("--seed", type=int, default=0, help="seeds the dropout masks (default: 0)")
    calibrate.set_defaults(handler=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from kerasdrop.training.studies import calibrate

    results = calibrate(
        args.run_dir, mc_samples=args.mc_samples, ks=args.ks, repeats=args.repeats, seed=args.seed
    )
    summary, averaging = results["calibration"], results["mc_averaging"]
    print(
        f"calibration on the test split of {args.run_dir} (temperature fitted on validation: "
        f"T={summary['temperature']:.3f})"
    )
    print("| method | accuracy | NLL | Brier | ECE (15 bins) |\n|---|---:|---:|---:|---:|")
    for method, scores in summary["methods"].items():
        print(
            f"| {method} | {scores['accuracy']:.4f} | {scores['nll']:.4f} | {scores['brier']:.4f} | "
            f"{scores['ece']:.4f} |"
        )
    print(
        f"\nMC averaging ({averaging['repeats']} repeats; weight scaling test error "
        f"{100 * averaging['weight_scaling_error']:.2f}%)"
    )
    print("| k | test error (%) mean ± sd |\n|---:|---:|")
    for row in averaging["ks"]:
        print(f"| {row['k']} | {100 * row['error_mean']:.2f} ± {100 * row['error_sd']:.2f} |")
    print(
        f"\nwrote {args.run_dir}/calibration.json, reliability.png, mc_averaging.json, mc_averaging.png and "
        f'metrics.json["calibration"] in {summary["seconds"]:.1f}s'
    )
    return 0
