"""The dashboard on a plain scrape: a real Prometheus scrapes a real server, and every query of
deploy/grafana/artctl-dashboard.json (its variables and its panels) returns series.

No Kubernetes labels are assumed: the scrape job names the server as any Prometheus would
(job, instance), which is all the dashboard filters on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from artctl.client import GeneratorClient
from deploy.checks import metrics
from tests.helpers import free_port, require_system, running_server

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "artctl-dashboard.json"
JOB = "artctl-plain"
RATE_INTERVAL = "30s"  # what Grafana's $__rate_interval would be for a short, 1 s scrape


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    require_system(found is not None, "prometheus", "prometheus")
    assert found is not None
    return found


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def scraped(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A server with traffic (successes, a NOT_FOUND, an RPC artctl does not serve) and a
    Prometheus scraping it every second; yields where both are."""
    binary = prometheus_binary()
    folder = tmp_path_factory.mktemp("prometheus")
    metrics_port, web_port = free_port(), free_port()
    instance = f"127.0.0.1:{metrics_port}"
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs: [{{targets: ['{instance}']}}]\n",
        encoding="utf-8",
    )
    check = subprocess.run([shutil.which("promtool") or "promtool", "check", "config", str(config)])
    assert check.returncode == 0
    base = f"http://127.0.0.1:{web_port}"
    with running_server([tiny_model], metrics_port=metrics_port, http_port=free_port()) as (server, target):
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, 60, "ready"
            )

            def scraping() -> bool:  # the traffic below must fall between scrapes, not before the first
                return bool(api(base, "query", query=f'up{{job="{JOB}"}} == 1')["result"])

            wait_until(scraping, 60, "Prometheus to scrape the server")
            web = f"http://127.0.0.1:{server.http_port}"
            with GeneratorClient(target) as client, grpc.insecure_channel(target) as channel:
                unserved = channel.unary_unary("/inference.GRPCInferenceService/RepositoryModelLoad")
                for i in range(12):  # about 6 scrapes of traffic
                    client.generate(list(range(i, i + 4)))
                    for path in ("/v2/health/live", f"/v1/models/tiny/images/{i % 3}.png"):
                        urllib.request.urlopen(web + path, timeout=30).read()  # HTTP, cache misses and hits
                    if i % 4 == 0:
                        with pytest.raises(grpc.RpcError, match="unknown model"):
                            client.generate([1], model="missing")
                        with pytest.raises(grpc.RpcError):
                            unserved(b"")
                    time.sleep(0.5)
            # queries evaluate one scrape after the traffic: later, its rates would fall out of the window
            at = f"{time.time() + 1.5:.3f}"

            def scraped_twice_since() -> bool:
                series = api(base, "query", query=f'count_over_time(artctl_images_total{{job="{JOB}"}}[30s])')
                return bool(series["result"]) and float(series["result"][0]["value"][1]) >= 8

            wait_until(scraped_twice_since, 60, "Prometheus to scrape the traffic")
            yield {"base": base, "instance": instance, "metrics": f"http://{instance}/metrics", "at": at}
        finally:
            proc.terminate()
            proc.wait(30)


def grafana(expr: str, values: dict[str, str]) -> str:
    """The query as Grafana sends it: variables replaced, $__rate_interval a fixed window."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    assert "$" not in expr, expr
    return expr


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def label_values(base: str, definition: str) -> list[str]:
    """Grafana's label_values(selector, label) through Prometheus's series API."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    selector, label = match.groups()
    series = api(base, "series", **{"match[]": selector})
    return sorted({s[label] for s in series if label in s})


def test_the_dashboard_filters_only_on_labels_every_scrape_has() -> None:
    text = json.dumps(dashboard())
    for label in ("namespace", "pod", "container", "service"):
        assert f"{label}=" not in text and f"{label}=~" not in text, label
    names = [v["name"] for v in dashboard()["templating"]["list"]]
    assert names == ["datasource", "job", "instance", "model"]


def test_every_variable_finds_the_scraped_server(scraped: dict[str, str]) -> None:
    chosen = {"job": JOB, "instance": scraped["instance"], "model": "tiny"}
    found = {}
    for var in dashboard()["templating"]["list"][1:]:
        query = grafana(var["definition"], {"job": ".*", "instance": ".*"})
        found[var["name"]] = label_values(scraped["base"], query)
    assert found == {name: [value] for name, value in chosen.items()}


@pytest.mark.parametrize("choice", ["all", "one"])
def test_every_panel_query_returns_series(scraped: dict[str, str], choice: str) -> None:
    """With "All" selected (Grafana's allValue .*) and with the one server and model picked."""
    if choice == "all":
        values = {"job": ".*", "instance": ".*", "model": ".*"}
    else:  # Grafana escapes regex characters of a picked value
        values = {"job": JOB, "instance": scraped["instance"].replace(".", "\\\\."), "model": "tiny"}
    empty = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            query = grafana(target["expr"], values)
            result = api(scraped["base"], "query", query=query, time=scraped["at"])["result"]
            if not result:
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == []


def test_the_numbers_mean_what_the_panels_say(scraped: dict[str, str]) -> None:
    """A few values checked against the traffic sent: errors happened, unserved calls are named."""
    base = scraped["base"]
    window = RATE_INTERVAL
    errors = api(
        base,
        "query",
        query=f'sum by (code) (increase(artctl_requests_total{{code!="OK"}}[{window}]))',
        time=scraped["at"],
    )
    codes = {r["metric"]["code"] for r in errors["result"]}
    assert {"NOT_FOUND", "UNIMPLEMENTED"} <= codes
    unserved = api(base, "query", query='artctl_requests_total{code="UNIMPLEMENTED"}')["result"]
    assert [r["metric"]["rpc"] for r in unserved] == ["RepositoryModelLoad"]
    latency = api(base, "query", query='artctl_request_duration_seconds_count{rpc="Generate", code="OK"}')
    assert [r["metric"]["model"] for r in latency["result"]] == ["tiny"]
    memory = api(base, "query", query="process_resident_memory_bytes")["result"]
    assert float(memory[0]["value"][1]) > 10e6


def test_promtool_finds_the_exposition_clean(scraped: dict[str, str]) -> None:
    with urllib.request.urlopen(scraped["metrics"], timeout=10) as response:
        text = response.read()
    assert "artctl_queue_depth" in metrics.exposed_series(text.decode())
    lint = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "metrics"], input=text, capture_output=True
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


def test_every_panel_value_is_a_number(scraped: dict[str, str]) -> None:
    """A quantile over an idle series is NaN: the panels leave such series out instead."""
    values = {"job": ".*", "instance": ".*", "model": ".*"}
    nan = [
        f"{panel['title']}: {target['expr']}"
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        for series in api(scraped["base"], "query", query=grafana(target["expr"], values))["result"]
        if series["value"][1] in ("NaN", "+Inf", "-Inf")
    ]
    assert nan == []


def test_the_http_front_and_the_cache_have_panels() -> None:
    queries = " ".join(metrics.dashboard_queries(dashboard()))
    for series in ("artctl_http_requests_total", "artctl_http_request_duration_seconds_bucket"):
        assert series in queries, series
    for series in ("artctl_cache_lookups_total", "artctl_cache_bytes", "artctl_cache_evictions_total"):
        assert series in queries, series


def test_every_alert_rule_reads_series_the_server_exposes(scraped: dict[str, str]) -> None:
    import yaml

    with urllib.request.urlopen(scraped["metrics"], timeout=10) as response:
        exposed = metrics.exposed_series(response.read().decode())
    groups = yaml.safe_load((REPO / "deploy" / "prometheus" / "artctl-rules.yml").read_text())["groups"]
    queries = metrics.rule_queries(groups)
    assert len(queries) == 6
    assert [p for q in queries for p in metrics.promql_problems(q, exposed)] == []
    for query in queries:  # each one a query Prometheus accepts against the scraped server
        api(scraped["base"], "query", query=query)
