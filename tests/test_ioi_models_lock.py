"""Workers that need the same trained IOI model wait for one training run (a file lock), not one each."""

import threading
import time

from algorithms import ioi_models


def test_concurrent_builds_train_the_ioi_model_once(tmp_path, monkeypatch):
    calls = []

    def fake_train(seed, cache, size="small", **kw):
        calls.append(seed)
        time.sleep(0.5)  # long enough for the other builder to arrive while this one trains
        (ioi_models.trained_lm_dir(seed, cache, size) / "final").mkdir(parents=True)

    monkeypatch.setattr(ioi_models, "train_ioi_lm", fake_train)
    import causalab.neural.lm as lm

    monkeypatch.setattr(lm, "from_pretrained", lambda path, *a, **kw: path)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        ioi_models.build_target("trained", 0, cache=str(tmp_path)))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [0] and len(results) == 2 and all(r.name == "final" for r in results)
