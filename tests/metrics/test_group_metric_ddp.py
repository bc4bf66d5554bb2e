# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Two-process (gloo, CPU) check that the cumulative group metrics gather their buffers across ranks."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    n = 20 + 7 * rank  # uneven sizes across ranks
    y = torch.randint(0, 3, (n,), generator=g)
    p = torch.rand(n, 3, generator=g).softmax(1)
    grp = torch.randint(0, 3, (n,), generator=g)
    return p, y, grp


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from monai_fair.metrics import GroupClassificationMetric, GroupSegmentationMetric

        p, y, grp = _data(rank)
        m = GroupClassificationMetric(num_groups=3)
        m(p[:10], y[:10], group=grp[:10])
        m(p[10:], y[10:], group=grp[10:])
        res = m.aggregate()
        seg = GroupSegmentationMetric(num_groups=3, reduction="dice_gap")
        lab = (torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(rank)) > 0.5).float()
        seg(torch.cat([1 - lab, lab], 1), lab, group=torch.tensor([0, 1, 2, rank]))
        torch.save({"res": res, "seg_n": len(seg.get_buffer()[0]), "seg": float(seg.aggregate())}, f"{out}/{rank}.pt")
        # no rank tears the gloo group down while the other is still in a collective (an abort at exit otherwise)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_buffers_gather_across_two_ranks(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    from monai_fair.metrics import compute_group_classification_metrics

    parts = [_data(r) for r in range(2)]
    ref = compute_group_classification_metrics(
        torch.cat([q[0] for q in parts]), torch.cat([q[1] for q in parts]), torch.cat([q[2] for q in parts]), 3
    )
    for r in range(2):
        got = torch.load(tmp_path / f"{r}.pt", weights_only=False)
        assert got["res"]["overall"]["n"] == 47
        assert got["res"]["fairness"] == pytest.approx(ref["fairness"], nan_ok=True)
        assert got["res"]["groups"][1] == pytest.approx(ref["groups"][1], nan_ok=True)
        assert got["seg_n"] == 8 and got["seg"] == pytest.approx(0.0)
