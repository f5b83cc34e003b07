"""What `once` prints: a table that fits 120 columns, `wide` with everything, and one JSON
envelope whatever the number of targets (with the README's jq example run on it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.model import ObjectRef
from agent.outcome import CycleResult, TargetOutcome
from agent.plan import Candidate, Plan
from agent.puller import PullerState, parse_images
from agent.refs import parse_reference
from agent.report import as_json, render, shorten_reference
from agent.settings import Target

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "0123456789abcdef" * 3 + "a1b2c3d4e5f6a7b8"
LONG = f"registry.redhat.io/rhoai/odh-workbench-jupyter-pytorch-cuda-py311-rhel9@{DIGEST}"
LONG_TAG = "quay.io/opendatahub/workbench-images:cuda-jupyter-minimal-ubi9-python-3.11-2024b-20250101-abcdef"


def candidate(image: str, *, selected: bool, reason: str, name: str = "") -> Candidate:
    return Candidate(image=parse_reference(image), score=12.5, size_bytes=5 << 30, size_known=selected, roles=("workbench",),
                     sources=(ObjectRef("Notebook", "team-a", "wb"),), selected=selected, reason=reason, name=name)


def plan(namespace: str = "openshift-operators", name: str = "image-puller") -> Plan:
    candidates = (
        candidate(LONG, selected=True, reason="rank 1, score 12.5", name="odh-workbench-jupyter-pytorch-cuda-py311"),
        candidate(LONG_TAG, selected=False,
                  reason="namespace team-a-with-a-long-name already has 3 images of its own in the list"),
        candidate("quay.io/modh/vllm:rhoai-2.19-cuda", selected=False, reason="does not fit the disk budget (4.2 GiB left)"),
    )
    nothing = PullerState(entries=(), owned={}, entry_kinds={})
    return Plan(target_namespace=namespace, target_name=name, generated_at=datetime(2026, 1, 1, tzinfo=UTC),
                budget_bytes=40 << 30, budget_used_bytes=5 << 30, candidates=candidates, current=nothing,
                desired=nothing)


def result(*targets: str) -> CycleResult:
    outcomes = []
    for t in targets or ("openshift-operators/image-puller",):
        ns, name = t.split("/")
        outcomes.append(TargetOutcome(Target(namespace=ns, name=name), plan(ns, name)))
    return CycleResult(outcomes=tuple(outcomes), listed={"Notebook": 1}, missing={"LLMInferenceService": "404"})


def table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#"))
    return lines[start:start + 4]


def test_the_table_fits_120_columns_and_keeps_each_references_ends():
    text = render(result(), output="table", dry_run=True, width=120)
    rows = table_rows(text)
    assert all(len(row) <= 120 for row in rows), [len(r) for r in rows]
    assert "registry.redhat.io/rhoai/" in rows[1] and rows[1].split()[1].endswith(DIGEST[-12:])
    assert "does not fit the disk budget (4.2 GiB left)" in rows[3]  # a short decision is whole
    assert "Not served (CRD not installed), skipped: LLMInferenceService." in text


@pytest.mark.parametrize("width", [100, 120, 160])
def test_the_table_uses_the_width_it_has(width):
    rows = table_rows(render(result(), output="table", dry_run=True, width=width))
    assert max(len(r) for r in rows) <= width


def test_wide_shortens_nothing_and_adds_names_and_roles():
    text = render(result(), output="wide", dry_run=True)
    rows = table_rows(text)
    assert rows[0].split()[:3] == ["#", "NAME", "IMAGE"] and "ROLES" in rows[0]
    assert LONG in rows[1] and LONG_TAG in rows[2] and "odh-workbench-jupyter-pytorch-cuda-py311" in rows[1]
    assert "left out: namespace team-a-with-a-long-name already has 3 images of its own in the list" in rows[2]


@pytest.mark.parametrize("width", [20, 30, 44, 60])
def test_a_shortened_digest_reference_keeps_its_registry_and_the_digests_end(width):
    short = shorten_reference(LONG, width)
    assert len(short) == width
    assert short.startswith("registry.redhat.io"[: width - 15]) and short.endswith(DIGEST[-12:])
    assert "..." in short


def test_a_shortened_tag_reference_keeps_both_ends():
    short = shorten_reference(LONG_TAG, 40)
    assert len(short) == 40 and short.startswith("quay.io/opendata") and short.endswith("20250101-abcdef")
    assert shorten_reference("quay.io/a/b:1", 40) == "quay.io/a/b:1"


def test_the_json_document_has_one_shape_whatever_the_number_of_targets():
    one = json.loads(as_json(result(), dry_run=True))
    two = json.loads(as_json(result("a/p", "b/p"), dry_run=True))
    for doc in (one, two):
        assert list(doc) == ["apiVersion", "kind", "dry_run", "cycle", "coverage", "targets"]
        assert (doc["apiVersion"], doc["kind"], doc["dry_run"]) == ("prepull-agent.io/v1", "CycleReport", True)
        assert set(doc["cycle"]) == {"listed", "missing", "failed", "requests", "duration_seconds"}
    assert len(one["targets"]) == 1 and len(two["targets"]) == 2
    assert list(one["targets"][0]) == list(two["targets"][1])
    assert two["targets"][1]["target"] == {"namespace": "b", "name": "p"}


def test_the_json_prints_the_first_100_objects_of_an_image_and_how_many_there_are():
    many = tuple(ObjectRef("Notebook", f"team-{i:05d}", "wb") for i in range(10_000))
    one = replace(plan(), candidates=(replace(plan().candidates[0], sources=many),))
    doc = json.loads(as_json(CycleResult(outcomes=(TargetOutcome(Target(), one),)), dry_run=True))
    listed = doc["targets"][0]["candidates"][0]
    assert listed["sources_total"] == 10_000
    assert listed["sources"] == [{"kind": "Notebook", "namespace": f"team-{i:05d}", "name": "wb"} for i in range(100)]


def test_the_readme_documents_every_field_and_its_jq_examples_work():
    readme = (REPO_ROOT / "README.md").read_text()
    doc = json.loads(as_json(result("a/p", "b/p"), dry_run=True))
    section = readme[readme.index("### The JSON document"):]
    section = section[: section.index("\n## ", 1)]
    for key in [*doc, *doc["cycle"], *doc["coverage"], *doc["targets"][0], *doc["targets"][0]["candidates"][0]]:
        assert f"`{key}`" in section, key
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("no jq on this machine")
    examples = re.findall(r"\| jq (?:-r )?'([^']+)'", readme)
    assert examples, "no jq example in the README"
    for program in examples:
        done = subprocess.run([jq, program], input=json.dumps(doc), capture_output=True, text=True, check=False)
        assert done.returncode == 0 and done.stdout.strip(), (program, done.stderr)


# -- what each target's part ends with: the diff and one verdict ----------------------------------------

MINE = PullerState(entries=parse_images("ubi=quay.io/a/ubi:1;\nwb=quay.io/a/wb:1;"), owned={"wb": "quay.io/a/wb:1"},
                   entry_kinds={"wb": ("Notebook",)})
NONE = PullerState(entries=parse_images("ubi=quay.io/a/ubi:1;"), owned={}, entry_kinds={})


def ending(current: PullerState, desired: PullerState, *, dry_run: bool, written: bool = False,
           error: str = "") -> list[str]:
    p = replace(plan(), current=current, desired=desired)
    outcome = TargetOutcome(Target(), p, written=written, error=error)
    lines = render(CycleResult(outcomes=(outcome,)), output="table", dry_run=dry_run, width=120).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("--- spec.images", "spec.images:")))
    return [line for line in lines[start:] if line]


@pytest.mark.parametrize(("current", "desired", "dry_run", "written", "error", "verdict"), [
    (NONE, MINE, False, True, "", "Written."),
    (NONE, MINE, True, False, "", "Dry run: nothing written."),
    (NONE, MINE, False, False, "write failed: PATCH ...: HTTP 403: denied", "Not written: write failed: PATCH ...: "
                                                                             "HTTP 403: denied"),
    (MINE, MINE, False, False, "", "Nothing to write."),
], ids=["written", "dry-run", "failed", "unchanged"])
def test_each_target_ends_with_the_diff_and_one_verdict(current, desired, dry_run, written, error, verdict):
    """The verdict never contradicts the diff above it (issue 11: "no change", then "Written.")."""
    lines = ending(current, desired, dry_run=dry_run, written=written, error=error)
    assert lines[-1] == verdict
    if current == desired:
        assert lines == ["spec.images: no change.", verdict]
    else:
        assert lines[:2] == ["--- spec.images (now)", "+++ spec.images (planned)"] and "+wb=quay.io/a/wb:1;" in lines


def test_a_change_of_the_agents_annotations_alone_is_said_and_written():
    """Only the record of the kinds changes: a change (it is written), and the diff says so."""
    recorded = replace(MINE, entry_kinds={"wb": ("InferenceService", "Notebook")})
    assert ending(MINE, recorded, dry_run=False, written=True) == [
        "spec.images: same entries; only the agent's annotations change.", "Written."]


def test_a_puller_that_could_not_be_read_is_one_line_with_why():
    error = "skipped, nothing written: KubernetesImagePuller a/p: spec.nodeSelector is not a JSON object of strings"
    result = CycleResult(outcomes=(TargetOutcome(Target(namespace="a", name="p"), None, error=error),))
    text = render(result, output="table", dry_run=False, width=120)
    assert text == f"KubernetesImagePuller a/p: {error}\n"
    (doc,) = json.loads(as_json(result, dry_run=False))["targets"]
    assert doc["error"] == error and doc["candidates"] == [] and doc["images_after"] is None


def test_kinds_that_could_not_be_listed_are_a_warning_under_the_table():
    p = replace(plan(), failed_sources={"Notebook": "GET /apis/kubeflow.org/v1/notebooks: HTTP 403: forbidden"})
    text = render(CycleResult(outcomes=(TargetOutcome(Target(), p),)), output="table", dry_run=True, width=120)
    assert ("\nWarning: Notebook could not be listed (GET /apis/kubeflow.org/v1/notebooks: HTTP 403: forbidden); "
            "images the agent manages are kept.\n") in text
