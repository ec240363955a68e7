"""What a user sees: bench's runs in `mlflow ui`, and the HTML leaderboard, in headless Chromium.

    python benchmarks/browser_check.py [--out reports/mlflow-ui]

Runs `bench run --suite smoke` (all 42 jobs) in a scratch folder, promotes one
job with `bench promote`, writes the HTML leaderboard, then starts `mlflow ui` on 127.0.0.1 and
opens, in Debian's Chromium driven through chromedriver (selenium):

- the experiment's training-runs table, with the parent run expanded: every (model, fold)
  child is listed with its dataset and its logged model;
- the chart view: one chart per metric, accuracy among them;
- one job's run page: its accuracy, its dataset and its logged model;
- the registered model's page, with its ``champion`` alias;
- ``leaderboard.html``: every figure decodes with a non-zero size, and the browser console shows
  no error.

Saves a screenshot of each under ``--out`` and stops the UI by its process group.
``tests/test_browser.py`` runs :func:`check` the same way on two models and two folds
(screenshots in a temporary folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 90


def browser_available() -> str | None:
    """Why the check cannot run here (None: it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(store: str, log: Path) -> Iterator[str]:
    """`mlflow ui` on 127.0.0.1 (a free port) over ``store``; stopped by process group."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow = Path(sys.executable).with_name("mlflow")
    argv = [str(mlflow), "ui", "--backend-store-uri", store, "--host", "127.0.0.1"]
    with log.open("w") as out:
        ui = subprocess.Popen(
            [*argv, "--port", str(port)], stdout=out, stderr=out, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if ui.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow ui did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()


@contextlib.contextmanager
def chromium(width: int = 1800, height: int = 1000) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_text(driver, *texts: str, timeout: float = WAIT) -> str:
    """The page's text once it holds every one of ``texts``."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t in body for t in texts):
            return body
        if time.monotonic() > deadline:
            missing = [t for t in texts if t not in body]
            raise AssertionError(f"{driver.current_url}: never showed {missing}; saw {body[:800]}")
        time.sleep(0.5)


def _close_assistant(driver) -> None:
    """MLflow 3.17 opens an assistant panel beside the runs; it hides the table's right half."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        with contextlib.suppress(Exception):
            button.click()


def _cells(driver, column: str) -> list[str]:
    """The text of a runs-table column, row by row (a run name after its colour chip)."""
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"[role=gridcell][col-id*='{column}']")
    texts = [" ".join(c.text.split()) for c in cells]
    return [t.split(" ", 1)[-1] if t.startswith("#") else t for t in texts]


def check(store: str, experiment_id: str, jobs: dict[str, str], board: Path, shots: Path) -> dict:
    """Open the runs, charts, one run, the registry and the leaderboard; assert what a user
    must see there. ``jobs``: child run name -> run id. Returns what was seen."""
    from selenium.webdriver.common.by import By

    shots.mkdir(parents=True, exist_ok=True)
    seen: dict = {}
    height = max(1000, 400 + 30 * len(jobs))  # every child row on screen (the grid is virtual)
    with mlflow_ui(store, shots / "mlflow-ui.log") as url, chromium(1800, height) as driver:
        base = f"{url}/#/experiments/{experiment_id}"
        # MLflow 3.17's UI opens every experiment in the workflow its GenAI / Model training
        # switch holds (GenAI in a fresh browser), whatever mlflow.experimentKind says:
        # the switch is chosen in the link.
        driver.get(f"{base}/runs?workflowType=machine_learning")
        _wait_text(driver, "Model training", "Run Name", "Dataset", "Models")
        _close_assistant(driver)
        expanders = "button[data-component-id*='runnamecellrenderer']"
        for button in driver.find_elements(By.CSS_SELECTOR, expanders):
            button.click()
        body = _wait_text(driver, *jobs)
        names = _cells(driver, "Run Name")
        datasets = _cells(driver, "Dataset")
        models = _cells(driver, "Models")
        children = [i for i, name in enumerate(names) if name in jobs]
        assert len(children) == len(jobs), (names, jobs)
        seen["children"] = sorted(names[i] for i in children)
        seen["datasets"] = sorted({datasets[i] for i in children})
        seen["models"] = sorted({models[i] for i in children})
        assert all(datasets[i].startswith("synthetic-gtzan (") for i in children), datasets
        assert all(models[i] and models[i] != "-" for i in children), models
        driver.save_screenshot(str(shots / "runs.png"))
        seen["runs_view"] = "Model training" in body

        driver.get(f"{base}/runs?workflowType=machine_learning&compareRunsMode=CHART")
        charts = _wait_text(driver, "Model metrics", "accuracy")
        seen["charts"] = [m for m in ("accuracy", "fit_seconds", "f1_macro") if m in charts]
        driver.save_screenshot(str(shots / "charts.png"))

        name, run_id = sorted(jobs.items())[0]
        driver.get(f"{base}/runs/{run_id}?workflowType=machine_learning")
        page = _wait_text(driver, "accuracy", name)
        seen["run_page"] = {
            "accuracy": "accuracy" in page,
            "dataset": "synthetic-gtzan" in page,
            "model": "model" in page.lower(),
        }
        driver.save_screenshot(str(shots / "run.png"))

        driver.get(f"{url}/#/models/genre?workflowType=machine_learning")
        _wait_text(driver, "genre", "Version 1")
        _close_assistant(driver)  # and the registry's "new UI" announcement
        registry = _wait_text(driver, "champion", "Version 1")
        seen["registry"] = "champion" in registry
        driver.save_screenshot(str(shots / "registry.png"))

        driver.get_log("browser")  # only the leaderboard's own messages count below
        driver.get(board.resolve().as_uri())
        _wait_text(driver, "Leaderboard")
        sizes = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
            "i.naturalHeight, (i.alt || i.src).slice(0, 60)]);"
        )
        seen["figures"] = sizes
        assert sizes and all(ok and w > 0 and h > 0 for ok, w, h, _ in sizes), sizes
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        seen["console_errors"] = errors
        assert not errors, errors
        driver.save_screenshot(str(shots / "leaderboard.png"))
    return seen


def run_smoke(folder: Path, models: str | None = None) -> tuple[str, str, dict[str, str], Path]:
    """`bench run --suite smoke` (``models``: a comma-separated subset, on 2 folds) +
    `bench promote` + the HTML report in ``folder``: (store, experiment id, jobs,
    leaderboard.html)."""
    bench = [str(Path(sys.executable).with_name("bench"))]
    env = {**os.environ, "BENCH_CACHE": str(folder / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    run = ["run", "--suite", "smoke", "--no-report"]
    if models:
        run += ["--models", models, "--folds", "2"]
    subprocess.run([*bench, *run], cwd=folder, env=env, check=True, capture_output=True)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("bench/smoke")
    found = "tags.`bench.kind` = 'job'"
    runs = client.search_runs([experiment.experiment_id], found, max_results=1000)
    jobs = {r.info.run_name: r.info.run_id for r in runs}
    promote = ["promote", jobs["logreg/fold0"], "--name", "genre", "--alias", "champion"]
    subprocess.run([*bench, *promote], cwd=folder, env=env, check=True, capture_output=True)
    report = ["report", "--suite", "smoke", "--format", "html"]
    subprocess.run([*bench, *report], cwd=folder, env=env, check=True, capture_output=True)
    return store, experiment.experiment_id, jobs, folder / "reports" / "smoke" / "leaderboard.html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "mlflow-ui")
    args = parser.parse_args()
    problem = browser_available()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        started = time.monotonic()
        store, experiment_id, jobs, board = run_smoke(Path(tmp))
        seen = check(store, experiment_id, jobs, board, args.out)
        (args.out / "mlflow-ui.log").unlink(missing_ok=True)
        shutil.copy(board, args.out / "leaderboard-smoke.html")
    seen["seconds"] = round(time.monotonic() - started, 1)
    (args.out / "seen.json").write_text(json.dumps(seen, indent=2, default=str) + "\n")
    print(json.dumps(seen, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
