"""An installed wheel runs the main job from any folder: the dilemma's sweep files ship as package data."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_runs_the_dilemma_from_a_temporary_folder(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = dist.glob("causalab-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the dependencies come from this environment's site-packages as a plain path entry: its
    # .pth files (among them the editable install of the source tree) are not processed there
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "CAUSALAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ""}
    where = subprocess.run([str(python), "-c", "import causalab, causalab.dilemma as d; print(causalab.__file__); print(d.configs_dir())"],
                           check=True, capture_output=True, text=True, cwd=work, env=env).stdout.split()
    assert all(str(env_dir) in w for w in where), where  # the installed copy, not the source tree
    out = subprocess.run([str(env_dir / "bin" / "causalab"), "dilemma", "--profile", "smoke", "--out", "res", "--workers", "1"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (work / "res" / "tables.md").read_text().count("###") >= 3
    assert (work / "res" / "mlp_maps" / "results.jsonl").exists()
