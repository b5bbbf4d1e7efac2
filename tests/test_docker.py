"""docker/: Docker cannot run here, so check what can be: the compose file and the KubeRay
manifest parse, name images built from our Dockerfiles, and run real commands."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from api.cli import build_parser
from tests.conftest import REPO

DOCKER = REPO / "docker"
RAY = str(Path(sys.executable).parent / "ray")


def _ray_start_flags() -> str:
    return subprocess.run(
        [RAY, "start", "--help"], capture_output=True, text=True, check=True
    ).stdout


def _check_command(command: list[str], ray_help: str) -> None:
    if command[:2] == ["sh", "-c"]:  # commands joined by &&, the last one exec'd
        for part in command[2].split("&&"):
            words = shlex.split(part)
            _check_command(words[1:] if words[0] == "exec" else words, ray_help)
        return
    if command[0] == "nas":
        build_parser().parse_args(command[1:])  # exits (SystemExit) on an unknown option
    elif command[:2] == ["ray", "start"]:
        for arg in command[2:]:
            flag = arg.split("=", 1)[0]
            assert flag in ray_help, f"ray start has no option {flag}"
    elif command[:2] == ["ray", "health-check"]:
        pass
    else:
        raise AssertionError(f"unexpected command {command}")


def test_compose_services_volumes_healthchecks_and_gpu() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "ray-head", "gpu-worker", "api"}
    ray_help = _ray_start_flags()
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        if "command" in service:
            _check_command(service["command"], ray_help)
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file()
    gpu = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    api = services["api"]
    assert api["environment"]["NAS_DATABASE_URL"].startswith("postgresql+psycopg://")
    # The API's container joins the cluster as a node running no trials, then serves: a Ray
    # driver runs on a node of its cluster (nas serve alone never reached it)
    script = api["command"][2]
    assert script.startswith("ray start --address=ray-head:6379 --num-cpus=0 && exec nas serve")
    assert "--ray-address ray-head:6379" in script
    # Every Ray node has the same token
    for name in ("ray-head", "gpu-worker", "api"):
        assert services[name]["environment"]["RAY_AUTH_MODE"] == "token", name
        assert services[name]["environment"]["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")
    assert {"postgres", "ray-head"} <= set(api["depends_on"])
    assert {"pgdata", "artifacts"} <= set(compose["volumes"])


def test_dockerfiles_install_the_project_and_the_cuda_one_uses_pytorch_base() -> None:
    cpu = (DOCKER / "Dockerfile.cpu").read_text()
    cuda = (DOCKER / "Dockerfile.cuda").read_text()
    assert "download.pytorch.org/whl/cpu" in cpu
    assert "ARG BASE=pytorch/pytorch:" in cuda and "cuda" in cuda.split("ARG BASE=")[1]
    for dockerfile in (cpu, cuda):
        assert "RUN pip install ." in dockerfile
        for package in ("nas", "controllers", "api", "workers"):
            assert f"COPY {package} ./{package}" in dockerfile


def test_kuberay_manifest_has_a_head_and_a_gpu_worker_group() -> None:
    manifest = yaml.safe_load((DOCKER / "kuberay-raycluster.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayCluster"
    spec = manifest["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"].startswith("nas-service:")
    ray_help = _ray_start_flags()
    for key in spec["headGroupSpec"]["rayStartParams"]:
        assert f"--{key}" in ray_help
    group = spec["workerGroupSpecs"][0]
    worker = group["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    # the token from one Secret on every node; no volume of a claim the manifest never made
    for container in (head, worker):
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "nas-ray-token"
    assert "volumes" not in group["template"]["spec"]
    for key in group["rayStartParams"]:
        assert f"--{key}" in ray_help


def test_the_documented_worker_command_is_a_real_ray_command() -> None:
    readme = (REPO / "README.md").read_text()
    lines = [line.strip() for line in readme.splitlines() if line.strip().startswith("ray start")]
    assert lines, "README documents no 'ray start' command"
    ray_help = _ray_start_flags()
    for line in lines:
        _check_command(shlex.split(line.split("#")[0]), ray_help)
