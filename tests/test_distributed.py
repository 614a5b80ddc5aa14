"""Chips shared by several processes (torchrun, gloo): the same rows as one process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import json, sys
    import torch, torch.distributed as dist
    import aimc

    def setup():
        x, y, xt, yt = aimc.data.load_mnist_small()
        torch.manual_seed(0)
        net = aimc.models.lenet5()
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for i in range(0, 1280, 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
        amodel = aimc.convert(net.eval(), aimc.presets.pcm_joshi2020()).eval()
        aimc.calibrate_inputs(amodel, [(x[2000:2200], y[2000:2200])])
        return amodel, [(xt[:300], yt[:300])]

    def run(known):
        amodel, test = setup()
        seen = []
        rows = aimc.evaluate_over_time(
            amodel, test, [1.0, 86400.0], chips=5, compensation=("none", "gdc"), seed=3,
            known=known, on_value=lambda c, t, m, a: seen.append([c, t, m, a]))
        return rows, seen

    if __name__ == "__main__":
        torch.set_num_threads(1)
        known = {tuple(k[:3]): k[3] for k in json.loads(sys.argv[2])}
        if sys.argv[1] == "single":
            rows, seen = run(known)
            print(json.dumps({"rows": rows, "seen": seen}))
        else:
            dist.init_process_group("gloo")
            rows, seen = run(known)
            out = {"rank": dist.get_rank(), "rows": rows, "seen": seen}
            with open(sys.argv[1] + f".{dist.get_rank()}.json", "w") as fh:
                json.dump(out, fh)
            dist.barrier()  # no rank tears gloo down while another still talks to it
            dist.destroy_process_group()
''')


def _run_torchrun(*args, timeout=600):
    """``torchrun --standalone --nproc-per-node 2 ARGS`` on one thread per process; a
    failure shows the processes' stderr. One retry only when gloo aborted a process at
    exit ("terminate called without an active exception": gloo's threads racing the
    interpreter's teardown, seen here once in about ten launches before the barrier
    ahead of destroy_process_group): the run is redone once to be sure."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node", "2", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in (0, 1):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode == 0:
            return
        if attempt or "terminate called without an active exception" not in done.stderr:
            raise AssertionError(f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _torchrun(tmp_path, known):
    script = tmp_path / "eval_chips.py"
    script.write_text(SCRIPT)
    _run_torchrun(script, tmp_path / "rank", json.dumps(known))
    return [json.loads((tmp_path / f"rank.{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_processes_share_the_chips_and_agree_with_one(tmp_path):
    script = tmp_path / "eval_chips.py"
    script.write_text(SCRIPT)
    single = json.loads(subprocess.run(
        [sys.executable, str(script), "single", "[]"], check=True, capture_output=True,
        text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout)
    ranks = _torchrun(tmp_path, [])
    # Every rank returns the rows of all 5 chips, equal to one process's, values in
    # chip order.
    for r in ranks:
        assert r["rows"] == single["rows"]
    assert {row["n"] for row in single["rows"]} == {5}
    # on_value runs on rank 0 only, once for each of the 5 x 2 x 2 values.
    assert ranks[1]["seen"] == []
    key = lambda v: tuple(v[:3])  # noqa: E731
    assert sorted(ranks[0]["seen"], key=key) == sorted(single["seen"], key=key)
    # Resume: known values are not measured again, wherever their chip runs.
    known = [v for v in single["seen"] if v[0] in (0, 1, 2)]
    ranks = _torchrun(tmp_path, known)
    assert ranks[0]["rows"] == single["rows"]
    assert sorted({v[0] for v in ranks[0]["seen"]}) == [3, 4]


def test_aimc_evaluate_under_torchrun_writes_what_one_process_writes(tmp_path):
    import aimc
    from aimc.experiments import evaluate

    x, y, _, _ = aimc.data.load_mnist_small()
    torch.manual_seed(0)
    net = aimc.models.lenet5()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xn = (x - 0.1307) / 0.3081  # the evaluation's default MNIST normalisation
    for i in range(0, 1280, 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xn[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'model = "lenet5"\ncheckpoint = "{tmp_path / "w.pt"}"\n'
                   'test_images = 300\ncalib_images = 200\nchips = 3\n'
                   'times = [1.0, 86400.0]\nname = "e"\n')
    assert evaluate.main(["--config", str(cfg), "--out", str(tmp_path / "one"),
                          "--no-progress", "--threads", "1"]) == 0
    _run_torchrun("-m", "aimc.cli", "evaluate", "--distributed", "--config", cfg, "--out",
                  tmp_path / "two", "--no-progress", "--threads", "1")
    one = json.loads((tmp_path / "one" / "e.json").read_text())
    two = json.loads((tmp_path / "two" / "e.json").read_text())
    assert two["rows"] == one["rows"] and len({r["mean"] for r in one["rows"]}) > 1
    state = json.loads((tmp_path / "two" / "work" / "e.state.json").read_text())
    assert len(state["values"]) == 3 * 2 * 2  # rank 0 saved the other rank's values too
    with pytest.raises(SystemExit, match="run it under torchrun"):
        evaluate.main(["--config", str(cfg), "--distributed"])


TRAIN = textwrap.dedent('''
    import json, sys
    import torch, torch.distributed as dist
    import aimc
    from aimc.data import CifarLoader
    from aimc.training import HWAConfig

    torch.set_num_threads(1)
    mode, out = sys.argv[1], sys.argv[2]
    world = rank = None
    if mode == "two":
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    x, y, _, _ = aimc.data.load_mnist_small()
    x, y = x[:600], y[:600]
    torch.manual_seed(0 if rank in (None, 0) else 99)  # rank 1 starts elsewhere: synced
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 10))
    amodel = aimc.convert(net, aimc.presets.pcm_joshi2020())
    loader = CifarLoader(x, y, 64, shuffle=True, seed=1, mean=(0.13,), std=(0.31,),
                         shard=None if world is None else (rank, world))
    opt = torch.optim.SGD(amodel.parameters(), lr=0.05, momentum=0.9)
    hist = aimc.train_hwa(amodel, loader, 2, optimizer=opt, seed=5,
                          config=HWAConfig(noise="pcm", sam_rho=0.5),
                          checkpoint=out + ".ckpt.pt")
    if rank in (None, 0):
        torch.save({k: v for k, v in amodel.state_dict().items()
                    if k.endswith("weight") or k.endswith("bias")}, out + ".pt")
        with open(out + ".json", "w") as fh:
            json.dump(hist, fh)
    if world:
        dist.barrier()
        dist.destroy_process_group()
''')


def test_data_parallel_hwa_training_takes_the_one_process_steps(tmp_path):
    # Two processes, each with half of every batch, and one process with whole batches
    # end with the same weights and history: the same noise, gradients averaged over all
    # samples (ASAM's climb included), rank 1's different start replaced by rank 0's.
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), "one", str(tmp_path / "one")], check=True,
                   env=env, capture_output=True, timeout=300)
    _run_torchrun(script, "two", tmp_path / "two")
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert one.keys() == two.keys() and len(one) == 4
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5)
    h1 = json.loads((tmp_path / "one.json").read_text())
    h2 = json.loads((tmp_path / "two.json").read_text())
    assert len(h1) == len(h2) == 2
    for a, b in zip(h1, h2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["train_accuracy"] == pytest.approx(a["train_accuracy"], abs=1 / 600)
    assert (tmp_path / "two.ckpt.pt").is_file()


def test_the_joshi_study_runs_on_two_processes_and_resumes_in_one(tmp_path):
    # The whole study on tiny fake data under torchrun: rank 0 writes the results and
    # saves every chip's values, so the same command in one process finds all of them.
    from test_cifar import _tiny_study

    from aimc.experiments import joshi2020

    out = tmp_path / "out"
    argv = [*_tiny_study(tmp_path, out), "--chips", "2", "--threads", "1"]
    _run_torchrun("-m", "aimc.cli", "reproduce", "joshi2020", "--distributed", *argv)
    first = json.loads((out / "joshi2020.json").read_text())
    state = json.loads((out / "work" / "state.json").read_text())
    assert len([k for k in state["values"] if k.startswith("hwa|")]) == 2 * 5 * 4
    assert {r["n"] for r in first["rows"] if r["method"] == "pcm+gdc"} == {2}
    assert joshi2020.main(argv) == 0  # one process: nothing left to measure
    again = json.loads((out / "joshi2020.json").read_text())
    assert again["rows"] == first["rows"]
    assert json.loads((out / "work" / "state.json").read_text())["values"] == state["values"]


def test_a_store_that_does_not_write_reads_and_keeps_its_updates_in_memory(tmp_path):
    # The other ranks' view of a study's state: the file as rank 0 left it, untouched.
    from aimc.experiments.results import Store

    path = tmp_path / "work" / "state.json"
    writer = Store(path, {"a": 1})
    writer.set("values", {"x": 0.5})
    before = path.read_text()
    reader = Store(path, {"a": 1}, writer=False)
    assert reader.get("values") == {"x": 0.5}
    reader.set("values", {"x": 0.5, "y": 0.7})
    assert reader.get("values")["y"] == 0.7 and path.read_text() == before
    with pytest.raises(SystemExit, match=r"other settings \(\['a'\]\)"):
        Store(path, {"a": 2}, writer=False)
    assert not Store(tmp_path / "none" / "s.json", writer=False).path.parent.exists()
