"""The edge and server image definitions, checked by parsing the Dockerfile (no docker daemon here:
the docker client is installed but no daemon runs, and none can be started in this sandbox)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib

import pytest

from tests.deploy.conftest import ROOT, one, server_container

DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"
IGNORE = ROOT / "deploy" / "container" / "Dockerfile.dockerignore"
REPORT_STACK = {"jinja2", "weasyprint", "altair", "vl-convert-python", "papermill", "nbformat",
                "ipykernel"}  # fmt: skip


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continuation line"
    return out


def stages(ins):
    """Instructions per build stage; ARGs before the first FROM resolved into FROM lines."""
    args = {}
    result: list[list[tuple[str, str]]] = []
    for word, rest in ins:
        if word == "ARG" and not result:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if word == "FROM":
            rest = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest)
            result.append([])
        result[-1].append((word, rest))
    return result


def _own(name: str) -> list[tuple[str, str]]:
    found = [
        st for st in stages(instructions(DOCKERFILE.read_text()))
        if st[0][1].split()[-1] == name and " AS " in st[0][1].upper()
    ]  # fmt: skip
    assert len(found) == 1, f"expected one stage named {name}"
    return found[0]


def stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the build stage ``FROM ... AS name``, after those of the earlier
    stage it is built ``FROM`` (``builder``, ``runtime``), as docker applies them."""
    own = _own(name)
    base = own[0][1].split()[0]
    names = [st[0][1].split()[-1] for st in stages(instructions(DOCKERFILE.read_text()))]
    return (stage(base) if base in names else []) + own


def test_base_images_are_pinned():
    names: list[str] = []
    for stage in stages(instructions(DOCKERFILE.read_text())):
        image = stage[0][1].split()[0]
        names.append(stage[0][1].split()[-1])
        if image in names[:-1]:
            continue  # built on an earlier stage, whose own base is checked here
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert "@sha256:" in image or (name and tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag)), image  # fmt: skip


@pytest.mark.parametrize(
    ("target", "volume"), [("edge", "/var/lib/mlmon"), ("server", "/var/lib/mlmon-server")]
)
def test_runs_as_a_numeric_non_root_user_with_state_on_volumes(target, volume):
    final = stage(target)
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    volumes = [json.loads(rest) for word, rest in final if word == "VOLUME"]
    assert volumes == [[volume]]
    env = " ".join(rest for word, rest in final if word == "ENV")
    # nothing writes outside the volumes: no .pyc at run time, HOME and TMPDIR on the /tmp emptyDir
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in env


def test_the_images_share_their_common_steps_instead_of_repeating_them():
    """The venv set-up and the runtime environment are written once (stages ``builder`` and
    ``runtime``); the edge and server stages add only what differs."""
    every = stages(instructions(DOCKERFILE.read_text()))
    for word in ("RUN", "ENV", "WORKDIR"):
        written = [rest for st in every for w, rest in st if w == word]
        assert len(written) == len(set(written)), (word, written)
    assert _own("build")[0][1].split()[0] == _own("server-build")[0][1].split()[0] == "builder"
    assert _own("edge")[0][1].split()[0] == _own("server")[0][1].split()[0] == "runtime"
    for target in ("build", "server-build"):
        assert ("RUN", "python -m venv /opt/mlmon") in stage(target)


def test_the_edge_image_is_the_default_target():
    """`docker build` without --target builds the last stage: the edge, as before the server."""
    last = stages(instructions(DOCKERFILE.read_text()))[-1]
    assert last[0][1].split()[-1] == "edge"


def test_installs_the_edge_extra_only_and_nothing_piped_into_a_shell():
    ins = stage("build") + stage("edge")
    runs = " ; ".join(rest for word, rest in ins if word == "RUN")
    installs = re.findall(r"pip install ([^&;]+)", runs)
    assert [i.strip() for i in installs] == [
        "--require-hashes --no-deps -r edge-requirements.txt",
        '--no-deps ".[edge]"',
    ], installs
    assert not re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", runs)
    assert "[all]" not in runs and "reports" not in runs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    edge = {re.split(r"[<>=\[ ]", r)[0] for r in extras["edge"]}
    assert not edge & REPORT_STACK, edge & REPORT_STACK


def test_entrypoint_healthcheck_and_kubernetes_probes_agree(rendered):
    final = stage("edge")
    last = {word: rest for word, rest in final}
    command = json.loads(last["ENTRYPOINT"]) + json.loads(last["CMD"])
    assert command == ["mlmon", "edge", "run", "--config", "/etc/mlmon/edge.yaml"]
    assert last["EXPOSE"] == "9108"
    health = last["HEALTHCHECK"]
    assert "http://127.0.0.1:9108/healthz" in health and "curl" not in health
    # the probe command itself is valid Python (slim images have no curl)
    code = json.loads(health[health.index("CMD") + 3 :])[2]
    compile(code, "HEALTHCHECK", "exec")
    dep = one(rendered["base"], "Deployment", "mlmon-edge")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == command[1:]
    assert {p["containerPort"] for p in c["ports"]} == {9108}


def test_build_context_is_limited_to_what_pip_needs():
    ins = instructions(DOCKERFILE.read_text())
    copied = [
        shlex.split(rest)[:-1] for word, rest in ins if word == "COPY" and "--from" not in rest
    ]
    sources = {s for srcs in copied for s in srcs}
    assert sources == {
        "pyproject.toml",
        "README.md",
        "mlmon",
        "deploy/container/edge-requirements.txt",
        "deploy/container/server-requirements.txt",
    }
    for s in sources:
        assert (ROOT / s).exists(), s
    rules = [r for r in IGNORE.read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"  # everything excluded, then only the sources re-included
    assert {r.lstrip("!").rstrip("/") for r in rules if r.startswith("!")} == sources


def test_the_image_installs_exactly_the_locked_edge_packages():
    """edge-requirements.txt is what uv.lock pins for the edge extra (every package with its
    sha256), so the image installs only locked packages; `make lock` rewrites both."""
    uv = ROOT / ".uv" / "bin" / "uv"
    assert uv.exists(), "run scripts/bootstrap.sh first: it installs the pinned uv into .uv/"
    shipped = (ROOT / "deploy" / "container" / "edge-requirements.txt").read_text()
    exported = subprocess.run(
        [str(uv), "export", "--frozen", "--no-dev", "--extra", "edge", "--no-emit-project",
         "--format", "requirements-txt"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def pins(text: str) -> list[str]:
        return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("--hash", ))
                or re.match(r"^[A-Za-z0-9_.-]+==", ln)]  # fmt: skip

    assert pins(shipped) == pins(exported) and pins(shipped)
    names = {re.split(r"==", p)[0].lower() for p in pins(shipped) if "==" in p}
    assert not names & REPORT_STACK, names & REPORT_STACK
    assert {"httpx", "s3fs", "polars", "duckdb"} <= names


SERVER_EXTRAS = ["server", "s3"]


def test_the_server_image_installs_the_server_and_s3_extras_only():
    ins = stage("server-build") + stage("server")
    runs = " ; ".join(rest for word, rest in ins if word == "RUN")
    installs = re.findall(r"pip install ([^&;]+)", runs)
    assert [i.strip() for i in installs] == [
        "--require-hashes --no-deps -r server-requirements.txt",
        '--no-deps ".[server,s3]"',
    ], installs
    assert not re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", runs)
    copied = {rest.split()[0] for word, rest in stage("server") if word == "COPY"}
    assert copied == {"--from=server-build"}  # the runtime stage takes only the built venv


def test_the_server_image_installs_exactly_the_locked_server_packages():
    """server-requirements.txt is what uv.lock pins for the server and s3 extras, hashes included;
    no edge-only package (the edge's collector stack) and no PDF stack is in it."""
    uv = ROOT / ".uv" / "bin" / "uv"
    assert uv.exists(), "run scripts/bootstrap.sh first: it installs the pinned uv into .uv/"
    shipped = (ROOT / "deploy" / "container" / "server-requirements.txt").read_text()
    cmd = [str(uv), "export", "--frozen", "--no-dev", "--no-emit-project", "--format",
           "requirements-txt"] + [a for e in SERVER_EXTRAS for a in ("--extra", e)]  # fmt: skip
    exported = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout

    def pins(text: str) -> list[str]:
        return [ln.strip() for ln in text.splitlines()
                if ln.strip().startswith("--hash") or re.match(r"^[A-Za-z0-9_.-]+==", ln)]  # fmt: skip

    assert pins(shipped) == pins(exported) and pins(shipped)
    names = {p.split("==")[0].lower() for p in pins(shipped) if "==" in p}
    assert {"starlette", "uvicorn", "jinja2", "altair", "vl-convert-python", "s3fs"} <= names
    assert not names & {"weasyprint", "papermill", "prometheus-client", "croniter"}, names


def test_server_entrypoint_healthcheck_and_probes_agree(rendered_server):
    final = {word: rest for word, rest in stage("server")}
    command = json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])
    assert command == ["mlmon", "server", "--config", "/etc/mlmon/server.yaml",
                       "--host", "0.0.0.0", "--port", "8400"]  # fmt: skip
    assert final["EXPOSE"] == "8400"
    health = final["HEALTHCHECK"]
    assert "http://127.0.0.1:8400/healthz" in health
    compile(json.loads(health[health.index("CMD") + 3 :])[2], "HEALTHCHECK", "exec")
    for target, docs in rendered_server.items():
        c = server_container(docs)
        assert c["args"] == command[1:], target
        assert {p["containerPort"] for p in c["ports"]} == {8400}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, (target, probe)
