"""tfinpaint.store: model cards and models that are damaged, cut off or do not match."""

import dataclasses
import json
import shutil

import pytest

from tfinpaint import store
from tfinpaint.errors import ModelError


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the tiny run to damage."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def test_a_card_cut_off_mid_write_is_one_line_naming_it(run):
    card = run / store.CARD
    text = card.read_text()
    card.write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match=rf"^The model card {card} is damaged \(not valid JSON: "):
        store.load_model(run)


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "is not a JSON object"),
        ('{"format": "tfinpaint-run/1", "latent_dim": 16}', "lacks image_size"),
        ("", r"is damaged \(not valid JSON: Expecting value: line 1 column 1 \(char 0\)\)"),
    ],
)
def test_cards_that_are_not_cards_are_refused(run, content, message):
    (run / store.CARD).write_text(content)
    with pytest.raises(ModelError, match=f"^The model card {run / store.CARD} {message}$"):
        store.load_card(run)


def test_a_generator_file_cut_off_is_one_line_naming_it(run):
    g = run / "generator.keras"
    data = g.read_bytes()
    g.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match=rf"^{g} is damaged and cannot be loaded \(\w+\)$"):
        store.load_model(run)


def test_a_run_whose_models_are_not_its_cards_is_refused(run):
    card = json.loads((run / store.CARD).read_text())
    (run / store.CARD).write_text(json.dumps({**card, "latent_dim": 100}))
    with pytest.raises(
        ModelError, match=rf"^{run} does not match its model card: its generator's latent_dim is 16, the card says 100$"
    ):
        store.load_model(run)
    (run / store.CARD).write_text(json.dumps({**card, "image_size": 64}))
    with pytest.raises(ModelError, match=r"its generator's image_size is 32, the card says 64$"):
        store.load_model(run)


def test_an_export_whose_weights_are_not_its_cards_is_refused(tiny_export, tmp_path):
    base = tmp_path / "export"
    shutil.copytree(tiny_export, base)
    card = json.loads((base / store.CARD).read_text())
    (base / store.CARD).write_text(json.dumps({**card, "width": 16}))  # the weights are width 8
    with pytest.raises(ModelError, match=r"^The SavedModel in .*/1 does not match its model card's architecture"):
        store.load_model(base)
    shutil.rmtree(base / "1" / "variables")
    (base / store.CARD).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"^The SavedModel in .*/1 is damaged and cannot be loaded"):
        store.load_model(base)


def test_a_card_is_frozen_and_round_trips(tiny_run):
    card = store.load_card(tiny_run)[1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.width = 64
    changed = dataclasses.replace(card, search={"iterations": 7})
    assert card.search != changed.search
    assert store.ModelCard.from_dict(changed.to_dict()) == changed
