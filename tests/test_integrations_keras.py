"""Keras 3 integration with real TensorFlow: RecordingModel records the exact train-mode logits
of every training batch; EpochEndInference records an inference pass after each epoch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pyarrow import ipc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from aum_score.integrations.keras import EpochEndInference, RecordingModel  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover - set by KERAS_BACKEND
    pytest.skip("these tests use the tensorflow backend", allow_module_level=True)

ROWS, CLASSES = 48, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 6)).astype(np.float32)
    return x, rng.integers(0, CLASSES, ROWS), np.arange(100, 100 + ROWS)


def build():
    # BatchNormalization makes train-mode logits (batch statistics) differ from inference ones.
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(CLASSES),
        ]
    )


def loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def read(directory):
    tables = [ipc.open_file(p).read_all() for p in sorted(directory.glob("epoch_*.arrow"))]
    return [
        (
            t.column("sample_id").to_pylist(),
            np.stack(t.column("logits").to_numpy(zero_copy_only=False)),
            t.column("label").to_numpy(),
        )
        for t in tables
    ]


def test_recording_model_records_exact_train_mode_logits(tmp_path):
    x, y, ids = data()
    inner = build()
    model = RecordingModel(inner, tmp_path)
    # lr = 0 keeps the weights fixed, so each batch's train-mode logits can be recomputed.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss())
    model.fit((x, ids), y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    epochs = read(tmp_path)
    assert len(epochs) == 2
    train_mode = np.concatenate([inner(x[a : a + 16], training=True) for a in range(0, ROWS, 16)])
    for sample_ids, logits, labels in epochs:
        assert sample_ids == ids.tolist()
        assert labels.tolist() == y.tolist()
        np.testing.assert_array_equal(logits, train_mode)
        assert np.abs(logits - inner(x, training=False).numpy()).max() > 1e-3
    # Evaluation records nothing; a second fit numbers its epochs on.
    model.evaluate((x, ids), y, verbose=0)
    model.fit((x, ids), y, epochs=1, batch_size=16, verbose=0)
    assert [p.name for p in sorted(tmp_path.iterdir())][-1] == "epoch_0002.arrow"
    assert model.recorder is None


def test_recording_model_with_tf_data_string_ids_and_one_hot(tmp_path):
    x, y, _ = data(1)
    names = np.array([f"img{i:03d}" for i in range(ROWS)])
    one_hot = np.eye(CLASSES, dtype=np.float32)[y]
    dataset = tf.data.Dataset.from_tensor_slices(((x, names), one_hot)).shuffle(ROWS).batch(10)
    model = RecordingModel(build(), tmp_path)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(dataset, epochs=2, verbose=0, shuffle=False)  # (tf.data shuffles itself)
    for sample_ids, _, labels in read(tmp_path):
        assert sorted(sample_ids) == sorted(names.tolist())
        label_of = dict(zip(names.tolist(), y.tolist()))
        assert labels.tolist() == [label_of[s] for s in sample_ids]


class FailAtEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("training failed")


def test_failed_fit_keeps_completed_epochs(tmp_path):
    x, y, ids = data()
    model = RecordingModel(build(), tmp_path)
    model.compile(optimizer="sgd", loss=loss())
    with pytest.raises(RuntimeError, match="training failed"):
        model.fit((x, ids), y, epochs=4, batch_size=16, verbose=0, callbacks=[FailAtEpoch()])
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["epoch_0000.arrow", "epoch_0001.arrow"]
    with pytest.raises(ValueError, match="XLA"):
        model.compile(optimizer="sgd", loss=loss(), jit_compile=True)


def test_epoch_end_inference_records_inference_logits(tmp_path):
    x, y, ids = data()
    model = build()
    model.compile(optimizer="sgd", loss=loss())
    callback = EpochEndInference(tmp_path, (x, y, ids), batch_size=20)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    epochs = read(tmp_path)
    assert len(epochs) == 2
    sample_ids, logits, labels = epochs[-1]
    assert sample_ids == ids.tolist() and labels.tolist() == y.tolist()
    # The last epoch's file holds the final model's inference-mode logits.
    np.testing.assert_allclose(logits, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_recording_model_on_the_torch_backend(tmp_path):
    # The backend is fixed at import, so this runs in a fresh process with KERAS_BACKEND=torch.
    pytest.importorskip("torch")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # keras would import it for tf.data support: not needed
        import numpy as np, keras
        from pyarrow import ipc
        from aum_score.integrations.keras import RecordingModel
        assert keras.backend.backend() == "torch"
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 6)).astype(np.float32)
        y, ids = rng.integers(0, 3, 32), np.arange(32)
        keras.utils.set_random_seed(0)
        inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8),
                                  keras.layers.BatchNormalization(), keras.layers.Dense(3)])
        model = RecordingModel(inner, {str(tmp_path)!r})
        model.compile(optimizer=keras.optimizers.SGD(0.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit((x, ids), y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        table = ipc.open_file({str(tmp_path / "epoch_0000.arrow")!r}).read_all()
        logits = np.stack(table["logits"].to_numpy(zero_copy_only=False))
        train_mode = np.concatenate(
            [keras.ops.convert_to_numpy(inner(x[a : a + 16], training=True)) for a in (0, 16)])
        assert table["sample_id"].to_pylist() == ids.tolist()
        np.testing.assert_array_equal(logits, train_mode)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
