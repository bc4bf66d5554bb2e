# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""A killed training run resumes from its last completed epoch (TrainingResumeHandler)."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.handlers import CheckpointSaver, ValidationHandler, from_engine

from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.handlers import TrainingResumeHandler, resume_fingerprint


class _Killed(RuntimeError):
    pass


def _setup(tmp_path, max_epochs, kill_at=None, remove_on_completion=True, fingerprint=None):
    g = torch.Generator().manual_seed(0)
    data = [
        {"image": torch.randn(4, generator=g), "label": torch.tensor(k % 2), "group": torch.tensor(k % 2)}
        for k in range(16)
    ]
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    evaluator = GroupSupervisedEvaluator(
        device="cpu",
        val_data_loader=DataLoader(Dataset(data), batch_size=8),
        network=net,
        key_val_metric={"val_neg_loss": _NegLoss()},
    )
    saver = CheckpointSaver(str(tmp_path), {"model": net}, save_key_metric=True, key_metric_filename="model.pt")
    saver.attach(evaluator)
    trainer = GroupSupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=DataLoader(Dataset(data), batch_size=4),
        network=net,
        optimizer=opt,
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ValidationHandler(1, evaluator)],
    )
    resume = TrainingResumeHandler(
        tmp_path,
        {"network": net, "optimizer": opt},
        evaluator=evaluator,
        checkpoint_savers=[saver],
        remove_on_completion=remove_on_completion,
        fingerprint=fingerprint,
    )
    resume.attach(trainer)
    if kill_at is not None:

        @trainer.on(Events.ITERATION_COMPLETED(once=kill_at * 4 + 2))
        def _kill(engine):  # killed in the middle of epoch kill_at + 1
            raise _Killed(f"killed during epoch {kill_at + 1}")

    return trainer, evaluator, saver, resume, net, opt


def _NegLoss():
    from ignite.metrics import Loss

    return Loss(
        lambda p, y: -torch.nn.functional.cross_entropy(p, y.long().reshape(-1)),
        output_transform=from_engine(["pred", "label"]),
    )


def test_killed_run_resumes_from_last_epoch(tmp_path):
    trainer, evaluator, saver, resume, net, opt = _setup(tmp_path, 5, kill_at=3)
    with pytest.raises(_Killed):
        trainer.run()
    assert resume.path.is_file()
    saved = torch.load(resume.path, weights_only=True)
    assert saved["trainer"]["iteration"] == 12  # 3 epochs x 4 iterations
    weights3 = {k: v.clone() for k, v in saved["network"].items()}
    best3 = saved["evaluator_best"][0]
    tracked3 = saver._key_metric_checkpoint.state_dict()  # epoch 4's validation never ran
    assert best3 == pytest.approx(evaluator.state.best_metric)

    # a fresh process: new objects, same configuration
    trainer2, evaluator2, saver2, resume2, net2, opt2 = _setup(tmp_path, 5)
    epochs_run = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    loaded = {}

    @trainer2.on(Events.STARTED)
    def _check_loaded(engine):  # registered after the resume handler: sees the restored state
        loaded["w"] = {k: v.clone() for k, v in net2.state_dict().items()}
        loaded["opt_steps"] = [s["step"].item() for s in opt2.state_dict()["state"].values()]
        loaded["best"] = evaluator2.state.best_metric
        loaded["tracked"] = saver2._key_metric_checkpoint.state_dict()

    trainer2.run()
    assert resume2.resumed_from_epoch == 3
    assert epochs_run == [4, 5]  # only the remaining epochs
    for k, v in weights3.items():
        assert torch.equal(loaded["w"][k], v), k
    assert loaded["opt_steps"] == [12.0, 12.0]  # 3 epochs x 4 iterations: Adam's moments restored too
    assert loaded["best"] == pytest.approx(best3)
    assert loaded["tracked"] == tracked3  # model.pt is replaced only by a better model
    assert trainer2.state.epoch == 5 and trainer2.state.iteration == 20
    assert not resume2.path.exists()  # removed on normal completion


def test_extend_a_finished_run(tmp_path):
    trainer, *_ = _setup(tmp_path, 2, remove_on_completion=False)
    trainer.run()
    trainer2, _, _, resume2, _, _ = _setup(tmp_path, 4, remove_on_completion=False)
    trainer2.run()
    assert resume2.resumed_from_epoch == 2 and trainer2.state.epoch == 4
    trainer3, *_ = _setup(tmp_path, 3)
    with pytest.raises(ValueError, match="beyond max_epochs=3"):
        trainer3.run()


def test_unreadable_resume_file_names_it_and_is_kept(tmp_path):
    (tmp_path / "resume_checkpoint.pt").write_bytes(b"not a checkpoint")
    trainer, *_ = _setup(tmp_path, 2)
    with pytest.raises(RuntimeError, match="resume_checkpoint.pt"):
        trainer.run()
    assert (tmp_path / "resume_checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"network": {}, "optimizer": {}, "trainer": {}, "evil": _Killed("x")}, tmp_path / "resume_checkpoint.pt")
    trainer, *_ = _setup(tmp_path, 2)
    with pytest.raises(RuntimeError, match="cannot read the resume checkpoint"):
        trainer.run()


def test_other_configuration_and_bad_arguments(tmp_path):
    torch.save({"network": {}, "trainer": {}}, tmp_path / "resume_checkpoint.pt")
    trainer, *_ = _setup(tmp_path, 2)
    with pytest.raises(KeyError, match="optimizer"):
        trainer.run()
    net = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="reserved"):
        TrainingResumeHandler(tmp_path, {"trainer": net})
    with pytest.raises(TypeError, match="state_dict"):
        TrainingResumeHandler(tmp_path, {"x": 3})
    with pytest.raises(ValueError, match="save_interval"):
        TrainingResumeHandler(tmp_path, {"net": net}, save_interval=0)


def test_resume_only_what_was_started(tmp_path):
    """A resume file written for one datalist/configuration is refused by another, with how to start afresh."""
    dl_a, dl_b = tmp_path / "a.json", tmp_path / "b.json"
    dl_a.write_text('{"training": [1]}')
    dl_b.write_text('{"training": [2]}')
    net = torch.nn.Linear(4, 2)
    fp_a = resume_fingerprint(dl_a, network=net, config={"lr": 1e-3})
    assert fp_a == resume_fingerprint(dl_a, network=torch.nn.Linear(4, 2), config={"lr": 1e-3})  # not the weights
    assert fp_a != resume_fingerprint(dl_b, network=net, config={"lr": 1e-3})  # another datalist
    assert fp_a != resume_fingerprint(dl_a, network=torch.nn.Linear(4, 3), config={"lr": 1e-3})  # another network
    assert fp_a != resume_fingerprint(dl_a, network=net, config={"lr": 1e-2})  # another value
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    assert resume_fingerprint(optimizer=opt) != resume_fingerprint(optimizer=torch.optim.Adam(net.parameters(), 1e-2))

    trainer, *_, resume, _, _ = _setup(tmp_path, 4, kill_at=1, fingerprint=fp_a)
    with pytest.raises(_Killed):
        trainer.run()
    assert resume.path.is_file()
    fp_b = resume_fingerprint(dl_b, network=net, config={"lr": 1e-3})
    trainer_b, *_ = _setup(tmp_path, 4, fingerprint=fp_b)
    with pytest.raises(ValueError, match=r"resume_checkpoint.pt belongs to another run.*delete .*--resume false") as e:
        trainer_b.run()
    assert fp_a[:12] in str(e.value) and fp_b[:12] in str(e.value)
    assert resume.path.is_file()  # never deleted on a mismatch
    trainer_a, _, _, resume_a, _, _ = _setup(tmp_path, 4, fingerprint=fp_a)
    trainer_a.run()  # the run that wrote it resumes
    assert resume_a.resumed_from_epoch == 1
