"""max_train_seconds' clocks: wall or this process's CPU per torch thread, dev scoring paused, resumed spend carried.

Usage:
    .venv/bin/python -m pytest tests/test_train_budget.py -q
"""

from __future__ import annotations

import time

import torch

from distill.finetune.budget import TrainBudget


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_the_cpu_clock_ignores_time_the_process_spends_waiting_and_the_wall_clock_does_not():
    wall, cpu = TrainBudget(0.05, "wall"), TrainBudget(0.05, "cpu")
    time.sleep(0.1)  # another job holds the cores: this process gets nothing
    assert wall.is_spent() and wall.spent() >= 0.1
    assert cpu.spent() < 0.02 and not cpu.is_spent()


def test_the_cpu_clock_counts_this_process_cpu_seconds_over_its_torch_threads():
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            cpu, began = TrainBudget(None, "cpu"), time.process_time()
            _burn(0.05)
            used = time.process_time() - began
            assert used > 0.005 and abs(cpu.spent() - used / n) <= 0.005  # n busy threads: reads like wall seconds
    finally:
        torch.set_num_threads(threads)


def test_paused_time_is_not_spent_and_a_resumed_budget_starts_where_it_stopped():
    budget = TrainBudget(1.0, "wall", spent=0.95)
    with budget.paused():
        time.sleep(0.1)  # dev scoring
    assert 0.95 <= budget.spent() < 1.0 and not budget.is_spent()
    time.sleep(0.06)
    assert budget.is_spent()
    assert not TrainBudget(None).is_spent() and not TrainBudget(0).is_spent()  # no limit: never spent
