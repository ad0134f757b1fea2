"""Parallel groups on CPU: real worker processes joined with torch.distributed over gloo.

What runs here is the group's start-up, the per-job all-gather that checks the ranks ran the same job and computed
the same frames, and rank 0 alone writing files. The sharded forward (diffusers' context parallelism) needs two or
more GPUs and is not exercised on CPU (see reel_engine/distributed.py)."""

import os
from types import SimpleNamespace

import pytest
from conftest import EarlyStart, generate_request

from reel_engine import distributed


def rank_args(rank: int, rendezvous: str) -> tuple[str, ...]:
    return ("--device", "cpu", "--model", "tiny", "--rank", str(rank), "--world-size", "2",
            "--dist-init", f"file://{{dir}}/{rendezvous}")


GROUP = [EarlyStart(f"group-rank-{r}", 1, rank_args(r, "group-rendezvous")) for r in (0, 1)]
LONELY = EarlyStart("lonely-rank", 1, rank_args(0, "nobody-else"), env=(("REEL_DIST_TIMEOUT_SECONDS", "2"),))
EARLY_WORKERS = [*GROUP, LONELY]  # started when the session begins (conftest.py)


@pytest.fixture(scope="module")
def processes(early_workers):
    """A group of two ranks, shared by the tests below, and a rank whose group never forms, started together."""
    started = SimpleNamespace(group=[early_workers.take(spec)[0] for spec in GROUP],
                              lonely=early_workers.take(LONELY)[0])
    yield started
    for w in [*started.group, started.lonely]:
        w.kill()


def test_a_group_of_two_runs_one_job_and_only_rank_0_writes(processes, tmp_path):
    ranks = processes.group
    for rank, worker in enumerate(ranks):
        ready = worker.ready()
        assert ready["event"] == "ready", worker.log()
        assert ready["group"] == {"rank": rank, "world_size": 2, "backend": "gloo", "sharded": False,
                                  "context_parallel": "none"}
    out = tmp_path / "job-1"
    for worker in ranks:
        worker.send(generate_request("job-1", str(out), steps=2, width=64, height=64, frames=5))
    first, _ = ranks[0].wait_final("job-1")
    second, _ = ranks[1].wait_final("job-1")
    assert first["event"] == "result", ranks[0].log()
    assert os.path.exists(first["outputs"]["video"]) and os.path.exists(first["outputs"]["metadata"])
    assert second["event"] == "result", ranks[1].log()
    assert second["outputs"]["video"] == "" and second["outputs"]["frame_count"] == 5
    assert not second["outputs"]["dir"].startswith(str(out)), "rank 1 works outside the job's directory"
    assert sorted(os.listdir(out)) == ["job.json", "video.mp4"]
    assert "2 ranks agree on the job and its frames" in ranks[0].log()


def test_ranks_given_different_jobs_fail_the_job_and_keep_serving(processes, tmp_path):
    ranks = processes.group
    assert [worker.ready()["event"] for worker in ranks] == ["ready", "ready"]
    for seed, worker in enumerate(ranks):
        worker.send(generate_request("job-2", str(tmp_path / "job-2"), seed=seed, steps=1, width=64, height=64,
                                     frames=5))
    for worker in ranks:
        final, _ = worker.wait_final("job-2")
        assert final["event"] == "error" and "ran different jobs" in final["message"], final
    assert not os.path.exists(tmp_path / "job-2" / "video.mp4")
    # The group still works: the next job, the same on both ranks, succeeds.
    for worker in ranks:
        worker.send(generate_request("job-3", str(tmp_path / "job-3"), steps=1, width=64, height=64, frames=5))
    assert [w.wait_final("job-3")[0]["event"] for w in ranks] == ["result", "result"]


def test_eof_during_a_job_cancels_it_on_every_rank_and_they_exit_zero(processes, tmp_path):
    # How Reel stops a group: stdin closed on every rank while a job runs. The group's last test.
    ranks = processes.group
    for worker in ranks:
        worker.send(generate_request("job-4", str(tmp_path / "job-4"), steps=50, width=64, height=64, frames=5,
                                     debug={"step_delay": 1.0}))
    for worker in ranks:
        worker.wait_for(lambda e: e.get("job") == "job-4" and e.get("stage") == "denoising")
    for worker in ranks:
        worker.close_stdin()
    assert [w.wait_exit(timeout=30) for w in ranks] == [0, 0]
    for worker in ranks:
        final, _ = worker.wait_final("job-4", timeout=5)
        assert final["code"] == "cancelled", final
        assert worker.next_event() is None  # stdout closed, nothing after the last event


def test_a_rank_whose_group_never_forms_fails_to_start(processes):
    lonely = processes.lonely
    event = lonely.next_event()
    assert event["event"] == "error" and event["code"] == "model_error", event
    assert lonely.wait_exit() == 3


def test_the_group_size_must_divide_the_heads(tiny_ti2v):
    assert distributed.attention_heads(tiny_ti2v) == 2
    distributed.check_heads(24, 2)
    distributed.check_heads(40, 8)
    with pytest.raises(distributed.GroupError) as e:
        distributed.check_heads(24, 5)
    assert str(e.value) == ("--world-size 5 does not divide the model's 24 attention heads; "
                            "valid group sizes are 2, 3, 4, 6, 8")
    with pytest.raises(distributed.GroupError, match="valid group sizes are 2$"):
        distributed.check_heads(2, 3)


@pytest.mark.parametrize("rank, world, init, message", [
    (0, None, "file:///x", "go together"),
    (0, 1, "file:///x", "--world-size must be 2 or more"),
    (2, 2, "file:///x", "--rank must be between 0 and 1, not 2"),
])
def test_bad_group_arguments_name_the_flag(rank, world, init, message):
    with pytest.raises(distributed.GroupError, match=message):
        distributed.check_arguments(rank, world, init)
