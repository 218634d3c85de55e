"""Checkpoint files written whole, signals held over an epoch's record, history repaired from the backup."""

import json
import os
import signal

import pytest

from kerasdrop.training import interrupts, train
from kerasdrop.training.checkpoint import save_atomically

FAST = {"model": "mlp", "dataset": "synthetic", "epochs": 4, "batch_size": 32, "dense_units": [8]}


def test_a_save_that_dies_half_way_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "best.keras"
    target.write_bytes(b"the whole previous file")

    def dies_half_way(path):
        path.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_atomically(dies_half_way, target)
    assert target.read_bytes() == b"the whole previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]


def test_sigterm_is_raised_as_an_interrupt_and_waits_while_an_epoch_is_recorded():
    with interrupts.interrupts_raised():
        interrupts.hold()
        os.kill(os.getpid(), signal.SIGTERM)  # would end the process with SIGTERM's default handler
        recorded = True  # still running: the signal waits for release
        with pytest.raises(interrupts.Interrupted) as raised:
            interrupts.release()
    assert recorded and raised.value.signal_number == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "the previous handler is restored"


def _signal_waiting(number) -> None:
    """Sends `number` to this process and returns once its handler has recorded it: the handler runs
    in the main thread a moment after delivery, and two of one kind sent before it ran would merge."""
    import time

    os.kill(os.getpid(), number)
    deadline = time.monotonic() + 10
    while not interrupts._pending and time.monotonic() < deadline:
        time.sleep(0.001)
    assert interrupts._pending == [number], "the handler recorded the signal instead of raising it"


def test_inside_fit_a_signal_waits_for_a_callback_hook_and_a_second_one_is_raised_at_once():
    with interrupts.interrupts_raised():
        with interrupts.deferred():
            _signal_waiting(signal.SIGTERM)  # not raised where it landed (inside TensorFlow, in a fit)
            with pytest.raises(interrupts.Interrupted) as raised:
                interrupts.raise_pending()  # a Keras hook (OpenRecord)
            assert raised.value.signal_number == signal.SIGTERM
            interrupts.raise_pending()  # raised once: nothing waits any more
            # SIGTERM again, not SIGINT: a process started with SIGINT ignored (a pytest-xdist worker)
            # keeps ignoring it, as kerasdrop leaves a handler it did not find at its default alone.
            _signal_waiting(signal.SIGTERM)
            with pytest.raises(interrupts.Interrupted) as raised:
                os.kill(os.getpid(), signal.SIGTERM)  # a second one while the first waits: at once
                for _ in range(10_000):  # (the handler runs at the next bytecodes, in this thread)
                    pass
            assert raised.value.signal_number == signal.SIGTERM
        with pytest.raises(interrupts.Interrupted):  # one that waits when fit returns is raised then
            with interrupts.deferred():
                _signal_waiting(signal.SIGTERM)


def test_resume_restores_a_history_row_a_kill_kept_from_history_csv(tmp_path):
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(dict(FAST), out=out, verbose=0, callbacks=[Interrupt()])
    # As when SIGKILL lands after the backup committed epoch 2 but before history.csv got its row.
    lines = (out / "history.csv").read_text().splitlines()
    (out / "history.csv").write_text("\n".join(lines[:-1]) + "\n")
    assert json.loads((out / "backup" / "state.json").read_text())["epoch"] == 2
    run = train(out=out, resume=True, verbose=0)
    assert [row["epoch"] for row in run.history] == [0, 1, 2, 3]
    assert run.metrics["resumed_after_epochs"] == [2]
