"""Every deployment file passes its real validator, and each validator fails on a broken copy.

The validators run offline: hadolint, check-jsonschema, kubectl (kustomize), kubernetes-validate and
yamllint from the `dev` extra; promtool and amtool from Debian's `prometheus` and
`prometheus-alertmanager` packages (`make tools`). A missing validator fails here, never skips: CI
must not pass without checking.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("cpu", "gpu")


def tool(name: str) -> str:
    """The validator's path: the venv's scripts first (the `dev` extra), then PATH (Debian)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        pytest.fail(
            f"validator {name!r} not found; `make tools` installs the Debian ones (promtool, amtool), "
            "`pip install -e '.[dev]'` the others"
        )
    return found


def run(name: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def passes(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"


def fails(result: subprocess.CompletedProcess[str], mentioning: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{result.args} accepted a broken file:\n{output}"
    assert mentioning in output, f"{result.args} failed without naming {mentioning!r}:\n{output}"


def broken_copy(source: Path, dest: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"{source} no longer contains {old!r}: update the broken copy"
    dest.write_text(text.replace(old, new, 1))
    return dest


# Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    passes(run("hadolint", "Dockerfile"))


def test_hadolint_fails_an_image_that_runs_as_root(tmp_path: Path) -> None:
    copy = broken_copy(ROOT / "Dockerfile", tmp_path / "Dockerfile", "USER 10001:10001", "USER root")
    fails(run("hadolint", copy), "DL3002")


def test_image_is_multi_stage_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE)[-1].split(":")[0] not in {"root", "0"}
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignored, "the build context starts from nothing and lists what the image needs"


# Compose


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_files_pass_the_compose_spec(name: str) -> None:
    passes(run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", DEPLOY / name))


def test_compose_spec_fails_an_unknown_dependency_condition(tmp_path: Path) -> None:
    copy = broken_copy(
        DEPLOY / "compose.yaml", tmp_path / "compose.yaml", "condition: service_healthy", "condition: ready"
    )
    fails(run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", copy), "ready")


def test_compose_runs_the_stack_the_readme_describes() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert services["triton"]["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert services["worker"]["command"] == ["worker"]
    assert services["trainer"]["restart"] == "no"
    assert services["worker"]["environment"]["LOGAD_WEB_HOST"] == "0.0.0.0"
    assert services["trainer"]["environment"]["LOGAD_TRITON_PLATFORM"] == "libtorch"
    assert services["notify"]["command"] == ["notify"]
    assert services["notify"]["environment"]["LOGAD_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    assert {"prometheus", "grafana", "alertmanager"} <= set(services)
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]
    assert gpu["triton"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["trainer"]["environment"]["LOGAD_TRITON_DEVICE"] == "gpu"


# Kubernetes


def render(overlay: Path) -> str:
    result = run("kubectl", "kustomize", overlay)
    passes(result)
    return result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_passes_strict_kubernetes_validation(overlay: str, tmp_path: Path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(render(DEPLOY / "k8s" / "overlays" / overlay))
    passes(run("kubernetes-validate", "--strict", "--quiet", manifest))


def test_kubernetes_validate_fails_a_misspelt_probe(tmp_path: Path) -> None:
    rendered = tmp_path / "cpu.yaml"
    rendered.write_text(render(DEPLOY / "k8s" / "overlays" / "cpu"))
    copy = broken_copy(rendered, tmp_path / "broken.yaml", "livenessProbe:", "livenesProbe:")
    fails(run("kubernetes-validate", "--strict", copy), "livenesProbe")


def test_kustomize_fails_a_missing_resource(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY / "k8s", tmp_path / "k8s")
    (tmp_path / "k8s" / "base" / "worker-pdb.yaml").unlink()
    fails(run("kubectl", "kustomize", tmp_path / "k8s" / "overlays" / "cpu"), "worker-pdb.yaml")


def documents(overlay: str) -> dict[tuple[str, str], dict]:
    docs = yaml.safe_load_all(render(DEPLOY / "k8s" / "overlays" / overlay))
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_worker_is_probed_on_healthz_and_readyz_and_scales_on_lag() -> None:
    docs = documents("cpu")
    worker = docs[("Deployment", "logad-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert worker["resources"]["requests"]["cpu"]
    assert [s["configMapRef"]["name"] for s in worker["envFrom"] if "configMapRef" in s] == ["logad-config"]
    assert [s["secretRef"]["name"] for s in worker["envFrom"] if "secretRef" in s] == [
        "logad-kafka-credentials"
    ]
    hpa = docs[("HorizontalPodAutoscaler", "logad-worker")]["spec"]
    assert hpa["metrics"][0]["external"]["metric"]["name"] == "logad_consumer_lag"
    assert ("PodDisruptionBudget", "logad-worker") in docs
    assert ("CronJob", "logad-trainer") in docs
    assert docs[("Deployment", "logad-notify")]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "notify"
    ]
    config = docs[("ConfigMap", "logad-config")]["data"]
    assert config["LOGAD_WEB_HOST"] == "0.0.0.0"
    assert all(name.startswith("LOGAD_") for name in config)


def test_only_the_gpu_overlay_asks_for_a_gpu() -> None:
    def triton_resources(overlay: str) -> dict:
        deployment = documents(overlay)[("Deployment", "triton")]
        return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]

    assert triton_resources("gpu")["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in triton_resources("cpu").get("limits", {})
    # and the trainer publishes instance groups for the device Triton has
    assert documents("gpu")[("ConfigMap", "logad-config")]["data"]["LOGAD_TRITON_DEVICE"] == "gpu"
    assert documents("cpu")[("ConfigMap", "logad-config")]["data"]["LOGAD_TRITON_DEVICE"] == "cpu"


def test_configmap_names_only_settings_that_exist() -> None:
    from dataclasses import fields

    from pipeline.settings import ENV_PREFIX, Settings

    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    config = yaml.safe_load((DEPLOY / "k8s" / "base" / "config.yaml").read_text())["data"]
    secret = yaml.safe_load((DEPLOY / "k8s" / "base" / "secret.yaml").read_text())["stringData"]
    assert set(config) | set(secret) <= known, set(config) | set(secret) - known


# Prometheus and Alertmanager


def test_prometheus_config_passes_promtool() -> None:
    passes(run("promtool", "check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus"))


def test_promtool_fails_a_bad_scrape_interval(tmp_path: Path) -> None:
    copy = broken_copy(
        DEPLOY / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml", "15s", "15 seconds"
    )
    fails(run("promtool", "check", "config", copy), "15 seconds")


def test_alert_rules_pass_promtool() -> None:
    passes(run("promtool", "check", "rules", DEPLOY / "prometheus" / "rules" / "logad.yml"))


def test_promtool_fails_a_rule_that_does_not_parse(tmp_path: Path) -> None:
    copy = broken_copy(
        DEPLOY / "prometheus" / "rules" / "logad.yml",
        tmp_path / "logad.yml",
        "max by (instance) (logad_degraded) == 1",
        "max by (instance) (logad_degraded ==",
    )
    fails(run("promtool", "check", "rules", copy), "parse error")


def test_alert_rule_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", "tests/logad_test.yml", cwd=DEPLOY / "prometheus")
    passes(result)
    assert "SUCCESS" in result.stdout + result.stderr


def test_rule_unit_tests_catch_a_dead_letter_threshold_that_never_fires(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    broken_copy(
        DEPLOY / "prometheus" / "rules" / "logad.yml", tmp_path / "rules" / "logad.yml", "> 0.01", "> 0.5"
    )
    shutil.copy(DEPLOY / "prometheus" / "tests" / "logad_test.yml", tmp_path / "tests" / "logad_test.yml")
    fails(run("promtool", "test", "rules", "tests/logad_test.yml", cwd=tmp_path), "LogadDeadLetterRate")


def test_alertmanager_config_passes_amtool() -> None:
    passes(run("amtool", "check-config", DEPLOY / "alertmanager" / "alertmanager.yml"))


def test_amtool_fails_a_route_to_an_undefined_receiver(tmp_path: Path) -> None:
    copy = broken_copy(
        DEPLOY / "alertmanager" / "alertmanager.yml",
        tmp_path / "alertmanager.yml",
        "receiver: ui-only",
        "receiver: pager",
    )
    fails(run("amtool", "check-config", copy), "pager")


# YAML style


def test_deploy_yaml_passes_yamllint() -> None:
    passes(run("yamllint", "--strict", "-c", DEPLOY / ".yamllint.yaml", DEPLOY))


def test_yamllint_fails_a_duplicated_key(tmp_path: Path) -> None:
    copy = broken_copy(
        DEPLOY / "compose.yaml", tmp_path / "compose.yaml", "name: logad\n", "name: logad\nname: again\n"
    )
    fails(run("yamllint", "--strict", "-c", DEPLOY / ".yamllint.yaml", copy), "duplication")
