"""The top-level API reads as ARCHITECTURE.md writes it: kerasdrop.train/verify/export are calls."""

import kerasdrop


def test_train_verify_export_are_callable_and_still_packages(tmp_path):
    run = kerasdrop.train({"model": "mlp", "dataset": "synthetic", "epochs": 1, "dense_units": [8]},
                          out=tmp_path / "run", verbose=0)
    assert isinstance(run, kerasdrop.train.Run)
    report = kerasdrop.verify(run.directory / "model.keras")
    assert isinstance(report, kerasdrop.verify.Report) and report.ok
    result = kerasdrop.export(run.directory / "model.keras", name="mlp", repo=tmp_path / "export",
                              formats=["savedmodel"], models_config=None)
    assert isinstance(result, kerasdrop.export.ExportResult) and result.version == 1
    assert kerasdrop.train.Recipe().training.epochs == 20
