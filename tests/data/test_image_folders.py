"""Image folders as users have them: mixed colour modes, mixed sizes and unreadable files."""

import json

import numpy as np
import pytest

from kerasdrop.data import load_dataset
from kerasdrop.data.folder import BadImageError, scan_folder

# Three colours of about the same luminance (0.299 R + 0.587 G + 0.114 B ~ 95): told apart by colour only,
# so decoded as grayscale they look alike.
COLOURS = {"blue": (120, 60, 255), "green": (0, 140, 140), "red": (255, 30, 0)}


def _colour_folder(root, per_class=30, size=16, gray_first=False):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            brightness = rng.uniform(0.75, 1.25)
            pixels = np.clip(np.array(colour) * brightness + rng.normal(0, 12, (size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype("uint8"), "RGB").save(root / name / f"{index:03d}.png")
    if gray_first:  # sorts first: the old loader took every image's channels from it
        Image.fromarray(rng.integers(0, 255, (size, size), dtype="uint8"), "L").save(
            root / "blue" / "000-gray.png"
        )
    return root


def test_mixed_modes_are_decoded_as_the_majority_with_a_warning_naming_the_others(tmp_path):
    root = _colour_folder(tmp_path / "images", per_class=8, gray_first=True)
    with pytest.warns(
        UserWarning, match=r"1 of 25 images are not rgb .*: blue/000-gray.png; converting them to rgb"
    ):
        data = load_dataset(f"folder:{root}", batch_size=64)
    assert data.info.input_shape == (16, 16, 3)
    images = np.concatenate([batch for batch, _ in data.train.as_numpy_iterator()])
    assert images.shape[1:] == (16, 16, 3)
    assert load_dataset(f"folder:{root}", batch_size=64, image_mode="grayscale").info.input_shape == (
        16,
        16,
        1,
    )


def test_mixed_sizes_need_image_size_and_the_error_lists_them(tmp_path):
    from PIL import Image

    root = _colour_folder(tmp_path / "images", per_class=8)
    Image.new("RGB", (20, 24), (255, 0, 0)).save(root / "red" / "big.png")
    with pytest.raises(
        ValueError, match=r"`image_size`.*holds 16x16 \(24 files\), 24x20 \(1 file: red/big.png\)"
    ):
        load_dataset(f"folder:{root}")
    data = load_dataset(f"folder:{root}", image_size=(16, 16), batch_size=64)
    assert data.info.input_shape == (16, 16, 3)
    assert sum(len(labels) for _, labels in data.train.as_numpy_iterator()) == data.info.num_train


def test_an_unreadable_file_is_named_or_skipped_and_counted(tmp_path):
    root = _colour_folder(tmp_path / "images", per_class=8)
    (root / "green" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(
        BadImageError, match=r"green/broken.png cannot be read as an image.*--skip-bad-images"
    ):
        load_dataset(f"folder:{root}")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\).*green/broken.png"):
        data = load_dataset(f"folder:{root}", skip_bad_images=True, batch_size=64)
    assert data.info.skipped_images == 1
    assert data.info.num_train + data.info.num_validation + data.info.num_test == 24


def test_a_file_in_a_format_tensorflow_cannot_decode_is_named(tmp_path):
    from PIL import Image

    root = _colour_folder(tmp_path / "images", per_class=8)
    Image.new("RGB", (16, 16)).save(root / "red" / "really.png", format="TIFF")
    with pytest.raises(
        BadImageError, match=r"red/really.png cannot be read as an image: its content is TIFF"
    ):
        scan_folder(str(root))


def test_the_cli_reports_a_bad_file_in_one_line(tmp_path, capsys):
    from kerasdrop.cli import main

    root = _colour_folder(tmp_path / "images", per_class=8)
    (root / "red" / "empty.jpg").write_bytes(b"")
    assert (
        main(
            [
                "train",
                "--no-recipe",
                "--dataset",
                f"folder:{root}",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "red/empty.jpg cannot be read" in line and "Traceback" not in line


@pytest.mark.slow
def test_a_folder_with_one_grayscale_file_trains_to_the_clean_folders_accuracy(tmp_path):
    from kerasdrop.training import train

    recipe = {"model": "lenet5", "epochs": 8, "batch_size": 16, "seed": 0}
    clean = train(
        dict(recipe, dataset=f"folder:{_colour_folder(tmp_path / 'clean')}"), out=tmp_path / "a", verbose=0
    )
    with pytest.warns(UserWarning, match="converting them to rgb"):
        mixed = train(
            dict(recipe, dataset=f"folder:{_colour_folder(tmp_path / 'mixed', gray_first=True)}"),
            out=tmp_path / "b",
            verbose=0,
        )
    assert clean.metrics["test_accuracy"] >= 0.9
    assert mixed.metrics["test_accuracy"] >= clean.metrics["test_accuracy"] - 0.06  # one test image of 18-19
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["dataset"]["input_shape"] == [16, 16, 3]


@pytest.mark.slow
def test_the_cli_warns_in_one_line_each_and_counts_the_skipped_files(tmp_path, capsys):
    from kerasdrop.cli import main

    root = _colour_folder(tmp_path / "images", per_class=8, gray_first=True)
    (root / "red" / "empty.jpg").write_bytes(b"")
    assert (
        main(
            [
                "train",
                "--no-recipe",
                "--model",
                "lenet5",
                "--dataset",
                f"folder:{root}",
                "--epochs",
                "1",
                "--skip-bad-images",
                "--quiet",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"kerasdrop train: warning: folder:{root}: skipped 1 unreadable image file(s) (--skip-bad-images): "
        "red/empty.jpg",
        f"kerasdrop train: warning: folder:{root}: 1 of 25 images are not rgb (the majority's mode): "
        "blue/000-gray.png; converting them to rgb. Set --image-mode (data.image_mode) to choose.",
    ]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["dataset"]["skipped_images"] == 1
