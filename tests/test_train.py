import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfinpaint import data
from tfinpaint.store import load_model
from tfinpaint.train import TrainConfig, Trainer, TrainingError, train


def _config(folder, run_dir, **kw):
    base = dict(
        dataset=str(folder),
        run_dir=str(run_dir),
        image_size=32,
        width=8,
        latent_dim=16,
        batch_size=8,
        holdout=0,
        seed=3,
        checkpoint_every=4,
        preprocess="celeba",
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(model):
    return [v.numpy() for v in model.weights]


def test_run_directory_holds_everything(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {
        "checkpoints",
        "config.json",
        "samples",
        "logs",
        "generator.keras",
        "discriminator.keras",
        "model.json",
        "heldout.txt",
    } <= names
    # 72 images, batch 8: 9 steps an epoch, 20 steps = epochs 1 and 2 and 2 steps of the third
    assert sorted(p.name for p in (tiny_run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert any((tiny_run / "logs").iterdir())
    card = json.loads((tiny_run / "model.json").read_text())
    assert card["steps"] == 20 and card["image_size"] == 32 and card["latent_dim"] == 16
    assert len(card["heldout"]) == 8 and card["heldout"][0].endswith("000001.jpg")
    assert (tiny_run / "heldout.txt").read_text().splitlines() == card["heldout"]
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["lr"] == 2e-4 and config["beta1"] == 0.5 and config["preprocess"] == "celeba"
    model = load_model(tiny_run)
    g, d = model.generator, model.discriminator
    assert g(tf.zeros([1, 16])).shape == (1, 32, 32, 3) and d(tf.zeros([1, 32, 32, 3])).shape == (1, 1)


def test_tensorboard_events_have_losses(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_run / "logs"))
    acc.Reload()
    assert {"d_loss", "g_loss", "d_real", "d_fake", "images_per_second"} <= set(acc.Tags()["tensors"])
    assert [e.step for e in acc.Tensors("d_loss")] == [10, 20]
    # each whole epoch (9 steps) also logs its samples' detail against the training images'
    sharp = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("samples_sharpness")}
    assert sorted(sharp) == [9, 18] and all(0 < v < 100 for v in sharp.values())


def test_training_learns_to_tell_faces_from_samples(few_faces, tmp_path):
    """Untrained, D gives real faces and G's samples the same 0.50; after 30 real steps it
    gives faces about 0.8 and samples about 0.4 (measured: 0.86 and 0.33 after 40 steps)."""
    config = _config(few_faces, tmp_path / "r", steps=30, checkpoint_every=100)
    src = data.resolve(config.dataset, "celeba", 0)
    base, count = data.base_dataset(src, 32)
    faces = np.concatenate([b.numpy() for b in data.epoch_dataset(base, count, 8, 0, 0, flip=False)])

    def separation(trainer):
        d = lambda x: float(tf.reduce_mean(tf.sigmoid(trainer.discriminator(x, training=False))))  # noqa: E731
        return d(faces) - d(trainer.generator(trainer.fixed_z(), training=False))

    assert abs(separation(Trainer(config))) < 0.01
    assert separation(train(config, verbose=0)) > 0.3


def test_resume_continues_where_it_stopped(few_faces, tmp_path):
    straight = train(_config(few_faces, tmp_path / "a", steps=12), verbose=0)
    train(_config(few_faces, tmp_path / "b", steps=5), verbose=0)
    resumed = train(_config(few_faces, tmp_path / "b", steps=12), verbose=0)
    assert int(resumed.step) == 12
    assert int(resumed.g_opt.iterations) == 12
    for a, b in zip(_weights(straight.generator), _weights(resumed.generator)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # same seed, same machine: the same losses (logged every 10 steps: step 10 is after the resume)
    assert json.loads((tmp_path / "a/model.json").read_text())["steps"] == 12
    assert _logged(tmp_path / "a", "g_loss") == pytest.approx(_logged(tmp_path / "b", "g_loss"), rel=1e-4)
    assert _logged(tmp_path / "a", "d_loss") == pytest.approx(_logged(tmp_path / "b", "d_loss"), rel=1e-4)


def _logged(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "logs"))
    acc.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}


def test_a_resumed_run_counts_the_time_of_every_session(few_faces, tmp_path):
    """A session that ends mid-run writes no card; its time is kept with its checkpoints and
    the resumed run's card adds it to its own."""
    run = tmp_path / "r"
    tic = time.perf_counter()
    train(_config(few_faces, run, steps=4), verbose=0)
    first = time.perf_counter() - tic
    kept = float((run / "checkpoints" / "seconds.txt").read_text())
    assert 0 < kept <= first
    # as if the session had trained for an hour and been stopped before it wrote the card
    (run / "checkpoints" / "seconds.txt").write_text("3600.0\n")
    (run / "model.json").unlink()
    tic = time.perf_counter()
    train(_config(few_faces, run, steps=6), verbose=0)
    second = time.perf_counter() - tic
    assert 3600 < json.loads((run / "model.json").read_text())["training_seconds"] <= 3600 + second + 0.1


def test_resume_refuses_other_settings(few_faces, tmp_path):
    train(_config(few_faces, tmp_path / "r", steps=2), verbose=0)
    with pytest.raises(TrainingError, match=r"other settings \(width: 8 -> 16\)"):
        train(_config(few_faces, tmp_path / "r", steps=4, width=16), verbose=0)


def test_nan_stops_training_and_keeps_the_last_checkpoint(few_faces, tmp_path):
    run = tmp_path / "r"
    train(_config(few_faces, run, steps=4), verbose=0)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(TrainingError, match=r"Loss became NaN or Inf at step \d+ .*last good checkpoint"):
        train(_config(few_faces, run, steps=40, lr=1e30), verbose=0)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    good = Trainer(_config(few_faces, run))
    good.checkpoint.restore(tf.train.latest_checkpoint(run / "checkpoints"))
    assert int(good.step) == 4
    assert all(np.isfinite(w).all() for w in _weights(good.generator))


MIRRORED_CASES = {
    "plain": {},
    "ema_augment": {"ema": 0.9, "augment": "color,translation,cutout"},
    "spectral_hinge_ttur": {"spectral_norm": True, "loss": "hinge", "d_lr": 4e-4},
}
# A MirroredStrategy made after another over the same devices reuses its collective keys, and
# when its gradients have other shapes (D with biases and no batch norm) the all-reduce fails
# ("Shape mismatch in the collective instance"). A training process holds one strategy, so the
# spectral case runs in a process of its own (test_mirrored_spectral_norm_in_its_own_process).
ISOLATED = os.environ.get("TFINPAINT_ISOLATED_CASE")


@pytest.mark.parametrize("case", [ISOLATED] if ISOLATED else ["plain", "ema_augment"])
def test_mirrored_equals_one_device_on_one_batch(few_faces, tmp_path, case):
    config = _config(few_faces, tmp_path / "r", **MIRRORED_CASES[case])
    batch = tf.random.stateless_uniform([8, 32, 32, 3], seed=[1, 2], minval=-1.0, maxval=1.0)
    one = Trainer(config, tf.distribute.get_strategy())
    two = Trainer(config, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    assert two.strategy.num_replicas_in_sync == 2
    a = one.train_step(batch, 0)
    b = two.train_step(
        two.strategy.experimental_distribute_values_from_function(
            lambda ctx: batch[ctx.replica_id_in_sync_group * 4 :][:4]
        ),
        0,
    )
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k
    for x, y in zip(_weights(one.final_generator), _weights(two.final_generator)):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)


def test_mirrored_spectral_norm_in_its_own_process():
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_mirrored_equals_one_device_on_one_batch",
        ],
        env={**os.environ, "TFINPAINT_ISOLATED_CASE": "spectral_hinge_ttur"},
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout[-3000:]


def test_recipe_options_reach_the_optimisers_models_and_card(few_faces, tmp_path):
    trainer = train(
        _config(few_faces, tmp_path / "r", steps=2, lr=1e-4, d_lr=4e-4, loss="hinge", spectral_norm=True), verbose=0
    )
    assert float(trainer.g_opt.learning_rate) == pytest.approx(1e-4)
    assert float(trainer.d_opt.learning_rate) == pytest.approx(4e-4)
    model = load_model(str(tmp_path / "r"))
    assert model.discriminator.get_config()["spectral_norm"] is True
    assert {k: model.card.extra[k] for k in ("loss", "d_lr")} == {"loss": "hinge", "d_lr": 4e-4}
    assert model.card.spectral_norm is True
    x = tf.random.stateless_uniform([2, 32, 32, 3], seed=[4, 5], minval=-1.0, maxval=1.0)
    np.testing.assert_array_equal(model.discriminator(x), trainer.discriminator(x))
    from tfinpaint.export import export

    export(model, tmp_path / "served", version=1)
    exported = load_model(str(tmp_path / "served"))  # G and D rebuilt from the card
    np.testing.assert_array_equal(exported.discriminator(x), trainer.discriminator(x))
    with pytest.raises(TrainingError, match="Unknown loss 'wgan'"):
        Trainer(_config(few_faces, tmp_path / "s", loss="wgan"))


def test_step_is_traced_once(few_faces, tmp_path):
    trainer = Trainer(_config(few_faces, tmp_path / "r"))
    batch = tf.zeros([8, 32, 32, 3])
    for step in range(3):
        trainer.train_step(batch, step)
    assert trainer.traces == 1


def test_recalibration_makes_inference_match_training_mode(few_faces, tmp_path):
    trainer = train(_config(few_faces, tmp_path / "r", steps=9), verbose=0)
    z = trainer.fixed_z(64)
    gap = float(tf.reduce_mean(tf.abs(trainer.generator(z, training=False) - trainer.generator(z, training=True))))
    assert gap < 0.02


def test_ema_generator_is_the_running_average(few_faces, tmp_path):
    """After one step from equal weights w0, the average is d * w0 + (1 - d) * w1 with the ramped
    decay d = min(0.5, (1 + 0) / (10 + 0)) = 0.1."""
    trainer = Trainer(_config(few_faces, tmp_path / "r", ema=0.5))
    w0 = _weights(trainer.generator)
    np.testing.assert_array_equal(w0[0], _weights(trainer.ema_generator)[0])
    trainer.train_step(tf.random.stateless_uniform([8, 32, 32, 3], seed=[1, 2], minval=-1.0, maxval=1.0), 0)
    w1 = trainer.generator.trainable_variables
    fresh = Trainer(_config(few_faces, tmp_path / "s", ema=0.5))  # the same seed: the same w0
    before = {v.path: v.numpy() for v in fresh.generator.trainable_variables}
    for avg, w in zip(trainer.ema_generator.trainable_variables, w1):
        expected = 0.1 * before[w.path] + 0.9 * w.numpy()
        np.testing.assert_allclose(avg.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trainer.ema_generator.trainable_variables[0].numpy(), w1[0].numpy())


def test_ema_run_saves_the_average_and_resumes_it(few_faces, tmp_path):
    straight = train(_config(few_faces, tmp_path / "a", steps=12, ema=0.9, augment="translation"), verbose=0)
    train(_config(few_faces, tmp_path / "b", steps=5, ema=0.9, augment="translation"), verbose=0)
    resumed = train(_config(few_faces, tmp_path / "b", steps=12, ema=0.9, augment="translation"), verbose=0)
    for a, b in zip(_weights(straight.generator), _weights(resumed.generator)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # The average is restored, not restarted from the step-5 weights: those differ from it by
    # about 1e-4, while the resumed average is as close as CPU arithmetic allows.
    for a, b in zip(straight.ema_generator.trainable_variables, resumed.ema_generator.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=4e-5)
    loaded = load_model(tmp_path / "a")
    saved, card = loaded.generator, loaded.card.to_dict()
    for a, b in zip(_weights(saved), _weights(straight.ema_generator)):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "a" / "generator_online.keras").is_file()
    assert card["ema"] == 0.9 and card["augment"] == "translation"
    with pytest.raises(TrainingError, match=r"ema: 0.9 -> 0.0"):
        train(_config(few_faces, tmp_path / "b", steps=14), verbose=0)


def test_generator_step_makes_samples_look_more_real_to_d(few_faces, tmp_path):
    """After a step, D (already updated) must rate G's new samples of the step's z above the
    old ones: the G update climbs D's logit. Trained to look fake, or not updated, it does not."""
    trainer = Trainer(_config(few_faces, tmp_path / "r", lr=1e-3))
    c = trainer.config
    batch = tf.random.stateless_uniform([8, 32, 32, 3], seed=[1, 2], minval=-1.0, maxval=1.0)
    z = tf.random.stateless_uniform([8, c.latent_dim], seed=[c.seed, 0], minval=-1.0, maxval=1.0)  # step 0's z
    old = [v.numpy() for v in trainer.generator.trainable_variables]
    trainer.train_step(batch, 0)

    def mean_logit():
        return float(tf.reduce_mean(trainer.discriminator(trainer.generator(z, training=True), training=True)))

    after = mean_logit()
    new = [v.numpy() for v in trainer.generator.trainable_variables]
    for v, w in zip(trainer.generator.trainable_variables, old):
        v.assign(w)
    before = mean_logit()
    for v, w in zip(trainer.generator.trainable_variables, new):
        v.assign(w)
    assert after > before + 0.01, (before, after)


def _largest_change(a_model, b_model):
    return max(float(np.abs(a - b).max()) for a, b in zip(_weights(a_model), _weights(b_model)))


def test_init_starts_from_the_models_g_and_d(few_faces, tiny_run, tmp_path):
    start = load_model(tiny_run)
    steps, lr = 2, 2e-4
    config = TrainConfig(
        dataset=str(few_faces),
        run_dir=str(tmp_path / "ft"),
        init=str(tiny_run),
        steps=steps,
        lr=lr,
        batch_size=8,
        holdout=0,
        ema=0.9,
    )
    tuned = train(config, verbose=0)
    # the architecture and the crop are the model's
    c = tuned.config
    assert (c.image_size, c.width, c.latent_dim, c.channels, c.preprocess) == (32, 8, 16, 3, "celeba")
    # two Adam steps move a weight by about lr each: the weights are the model's, barely moved
    for mine, theirs in ((tuned.generator, start.generator), (tuned.discriminator, start.discriminator)):
        trainable = [(a, b) for a, b in zip(mine.trainable_weights, theirs.trainable_weights)]
        assert max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in trainable) < 3 * lr * steps
    fresh = Trainer(dataclasses.replace(c, init=None, run_dir=str(tmp_path / "fresh")))
    assert _largest_change(fresh.generator, start.generator) > 0.05
    card = json.loads((tmp_path / "ft/model.json").read_text())
    assert card["init"] == str(tiny_run) and card["steps"] == steps


def test_init_keeps_the_models_architecture(few_faces, tiny_run, tmp_path):
    config = TrainConfig(dataset=str(few_faces), run_dir=str(tmp_path / "ft"), init=str(tiny_run), width=16)
    with pytest.raises(TrainingError, match=r"has width 8, not 16: fine-tuning keeps the model's architecture"):
        train(config, verbose=0)
    assert not (tmp_path / "ft").exists()


def test_a_checkpoint_restores_every_weight_of_every_model(few_faces, tmp_path):
    """All of G's, D's and the EMA generator's weights, batch-norm statistics included, come
    back from a checkpoint exactly; the EMA generator's up-convolutions were once lost, so a
    resumed EMA run saved a generator of noise."""
    config = _config(few_faces, tmp_path / "r", ema=0.999)
    first = Trainer(config)
    for step in range(2):
        first.train_step(tf.random.stateless_uniform([8, 32, 32, 3], seed=[1, step], minval=-1.0, maxval=1.0), step)
    path = first.checkpoint.save(str(tmp_path / "ckpt"))
    again = Trainer(config)
    again.checkpoint.restore(path).assert_existing_objects_matched()
    models = ((first.generator, again.generator), (first.discriminator, again.discriminator))
    for a, b in (*models, (first.ema_generator, again.ema_generator)):
        assert any("up1" in v.path for v in a.weights) or a is first.discriminator
        for v, w in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=v.path)


def test_a_checkpoint_of_an_older_tfinpaint_still_resumes(few_faces, tmp_path):
    """Checkpoints written before every weight was tracked have no `*_weights` entries: they
    resume, and an EMA generator they could not hold restarts from G, with a warning."""
    from tfinpaint.train import restore_checkpoint

    config = _config(few_faces, tmp_path / "r", ema=0.999)
    first = Trainer(config)
    first.train_step(tf.random.stateless_uniform([8, 32, 32, 3], seed=[1, 0], minval=-1.0, maxval=1.0), 0)
    first.step.assign(1)  # as the run loop does
    old = {k: v for k, v in first.tracked.items() if not k.endswith("_weights")}
    path = tf.train.Checkpoint(**old).save(str(tmp_path / "old"))
    again = Trainer(config)
    with pytest.warns(UserWarning, match="did not save the EMA generator whole"):
        restore_checkpoint(again, path)
    assert int(again.step) == 1
    for v, w in zip(first.generator.trainable_variables, again.generator.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    for v, w in zip(again.generator.weights, again.ema_generator.weights):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
