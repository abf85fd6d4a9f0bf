"""A few real training steps of the SwinIR comparison: what it saves, that it loads, that the loss reaches it."""

import json

import torch

from flashdiff.data import ToyImages
from flashdiff.operators import GaussianBlur
from flashdiff.solvers.swinir import SwinIRRestorer
from flashdiff.train.loop import LoopSettings, TrainingJob
from flashdiff.train.swinir import SwinIRObjective, train_swinir
from tests.conftest import TINY_SWINIR


def test_objective_degrades_on_the_fly_and_trains_only_the_network():
    op = GaussianBlur(kernel_size=9)
    objective = SwinIRObjective(SwinIRRestorer(TINY_SWINIR), op)
    loss = objective({"x": torch.rand(2, 3, 32, 32)})["loss"]
    loss.backward()
    assert loss.item() > 0 and all(p.grad is not None for p in objective.network.parameters() if p.requires_grad)


def test_training_saves_a_loadable_swinir_with_its_record(tmp_path):
    settings = LoopSettings(steps=3, batch_size=4, lr=2e-4, warmup_steps=1, checkpoint_every=2, validate_every=2)
    job = TrainingJob(ToyImages("train", length=16), ToyImages("val"), tmp_path / "m", tmp_path / "w")
    result = train_swinir(job, arch=TINY_SWINIR, operator=GaussianBlur(kernel_size=9), loop=settings, max_val_images=4,
                          identity_init=True)
    assert result["val_n_images"] == 4 and result["identity_init"]
    assert abs(result["val_psnr"] - result["val_psnr_input"]) < 1.0  # starts at f(y) = y, three small steps away
    record = json.loads((tmp_path / "m/training.json").read_text())
    assert record["steps"] == 3 and record["arch"]["embed_dim"] == 12 and record["settings"]["batch_size"] == 4
    assert json.loads((tmp_path / "m/config.json").read_text())["metadata"]["operator"]["class"] == "GaussianBlur"
    net = SwinIRRestorer.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
