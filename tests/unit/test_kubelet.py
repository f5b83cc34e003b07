"""The kubelet's Pulled events, read strictly: Go's duration syntax (a table produced by Go
1.26's own `time.ParseDuration`), the message shapes of every kubelet version, and the event
fields as client-go's recorder writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.kubelet import (
    BAD_COUNT,
    BAD_DURATION,
    BAD_MESSAGE,
    BAD_TIME,
    NEGATIVE,
    NO_NODE,
    NOT_A_POD,
    NOT_KUBELET,
    NOT_PULLED,
    DurationError,
    NotPulled,
    PullMessage,
    parse_go_duration,
    parse_message,
    read_event,
)

# Input -> nanoseconds, or Go's error, as `go run` printed them (time.ParseDuration, Go 1.26.8).
GO_PARSE = [
    ("0", 0), ("0s", 0), ("313ms", 313000000), ("7.264s", 7264000000), ("1m2.5s", 62500000000),
    ("1h2m3s", 3723000000000), ("1h0m0s", 3600000000000), ("2m0s", 120000000000), ("1.5h", 5400000000000),
    ("+5s", 5000000000), ("-1.5s", -1500000000), ("1.5\u00b5s", 1500), ("1.5\u03bcs", 1500), ("2us", 2000),
    ("10ns", 10), (".5s", 500000000), ("5.s", 5000000000), ("1h1h", 7200000000000), ("3m60s", 240000000000),
    ("100ms200ms", 300000000), ("0.000000001s", 1), ("0.0000000001s", 0),
    ("9223372036854775807ns", 9223372036854775807),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("2562047h47m16.854775807s", 9223372036854775807),
    ("2562048h", 'time: invalid duration "2562048h"'),
    ("", 'time: invalid duration ""'),
    ("s", 'time: invalid duration "s"'),
    ("1", 'time: missing unit in duration "1"'),
    ("1.s5", 'time: missing unit in duration "1.s5"'),
    ("1S", 'time: unknown unit "S" in duration "1S"'),
    ("1 s", 'time: unknown unit " s" in duration "1 s"'),
    (" 1s", 'time: invalid duration " 1s"'),
    ("1s ", 'time: unknown unit "s " in duration "1s "'),
    ("-", 'time: invalid duration "-"'),
    ("+", 'time: invalid duration "+"'),
    (".", 'time: invalid duration "."'),
    (".s", 'time: invalid duration ".s"'),
    ("1.2.3s", 'time: missing unit in duration "1.2.3s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
    ("0x10s", 'time: unknown unit "x" in duration "0x10s"'),
    ("\u0661s", "invalid duration"),  # an Arabic-Indic digit is no digit to Go (Go quotes the bytes)
    ("1h-2m", 'time: unknown unit "h-" in duration "1h-2m"'),
    ("00001s", 1000000000),
    ("1.0000000000000000000000001s", 1000000000),
    ("123456789012345678901234567890ns", 'time: invalid duration "123456789012345678901234567890ns"'),
    ("0.1h", 360000000000),
    ("1m0.001s", 60001000000),
]


@pytest.mark.parametrize(("text", "expected"), GO_PARSE, ids=[repr(t) for t, _ in GO_PARSE])
def test_go_durations_parse_exactly_as_go_parses_them(text: str, expected: int | str) -> None:
    if isinstance(expected, int):
        assert parse_go_duration(text) == expected
    else:
        with pytest.raises(DurationError) as refused:
            parse_go_duration(text)
        assert expected in str(refused.value)


# What Duration.String() prints after the kubelet's Truncate(time.Millisecond), from Go.
@pytest.mark.parametrize(("printed", "seconds"), [
    ("0s", 0.0), ("313ms", 0.313), ("7.264s", 7.264), ("1m2.5s", 62.5), ("1h2m3s", 3723.0), ("1h0m0s", 3600.0),
    ("2m0s", 120.0), ("1ms", 0.001),
])
def test_every_duration_the_kubelet_prints_reads_back(printed: str, seconds: float) -> None:
    message = parse_message(f'Successfully pulled image "quay.io/a/b:1" in {printed} ({printed} including waiting)')
    assert message.pull_seconds == pytest.approx(seconds)


IMAGE = "quay.io/modh/vllm:rhoai-2.19-cuda"
SHAPES = [
    # 1.30+ (size), the first duration is the pull, the second includes the wait
    (f'Successfully pulled image "{IMAGE}" in 1m2.5s (1m3.1s including waiting). Image size: 4123456789 bytes.',
     PullMessage(IMAGE, cold=True, pull_seconds=62.5, waited_seconds=63.1, size_bytes=4123456789)),
    (f'Successfully pulled image "{IMAGE}" in 313ms (7.264s including waiting)',
     PullMessage(IMAGE, cold=True, pull_seconds=0.313, waited_seconds=7.264)),
    (f'Successfully pulled image "{IMAGE}" in 1h2m3s', PullMessage(IMAGE, cold=True, pull_seconds=3723.0)),
    (f'Container image "{IMAGE}" already present on machine', PullMessage(IMAGE, cold=False)),
    (f'Container image "{IMAGE}" already present on machine and can be accessed by the pod',
     PullMessage(IMAGE, cold=False)),
    # 1.35 quotes the pulled image with ":latest" added; "already present" as the pod wrote it
    ('Successfully pulled image "busybox:latest" in 1.2s (1.2s including waiting). Image size: 2156 bytes.',
     PullMessage("busybox:latest", cold=True, pull_seconds=1.2, waited_seconds=1.2, size_bytes=2156)),
    ('Container image "busybox" already present on machine', PullMessage("busybox", cold=False)),
    # client-go's aggregator, after 10 similar events
    (f'(combined from similar events): Container image "{IMAGE}" already present on machine',
     PullMessage(IMAGE, cold=False, combined=True)),
    (f'(combined from similar events): Successfully pulled image "{IMAGE}" in 2s',
     PullMessage(IMAGE, cold=True, pull_seconds=2.0, combined=True)),
]


@pytest.mark.parametrize(("text", "expected"), SHAPES, ids=[t[:60] for t, _ in SHAPES])
def test_every_shape_the_kubelet_writes_is_read(text: str, expected: PullMessage) -> None:
    assert parse_message(text) == expected


MALFORMED = [
    ("", BAD_MESSAGE),
    ("Pulling image \"quay.io/a/b:1\"", BAD_MESSAGE),  # reason Pulling's message
    (f'Successfully pulled image "{IMAGE}" in 2s.', BAD_DURATION),  # "2s." is no duration: a period only after the size
    (f'Successfully pulled image "{IMAGE}" in 2s (3s including waiting).', BAD_MESSAGE),
    (f'Successfully pulled image "{IMAGE}" in 2s (3s including waiting). Image size: 12 bytes', BAD_MESSAGE),
    (f'Successfully pulled image "{IMAGE}" in 2s (3s including waiting). Image size: -12 bytes.', BAD_MESSAGE),
    (f'Successfully pulled image "{IMAGE}" in 2s (3s including waiting). Image size: 1e9 bytes.', BAD_MESSAGE),
    (f'Successfully pulled image "{IMAGE}" in  2s', BAD_MESSAGE),
    (f'Successfully pulled image "{IMAGE}" in 2 s', BAD_MESSAGE),
    (f'Successfully pulled image "{IMAGE}" in 2d', BAD_DURATION),
    (f'Successfully pulled image "{IMAGE}" in 2', BAD_DURATION),
    (f'Successfully pulled image "{IMAGE}" in -2s', NEGATIVE),
    (f'Successfully pulled image "{IMAGE}" in 2s (-1s including waiting)', NEGATIVE),
    (f'successfully pulled image "{IMAGE}" in 2s', BAD_MESSAGE),
    (f'Successfully pulled image {IMAGE} in 2s', BAD_MESSAGE),  # not quoted
    ('Successfully pulled image "" in 2s', BAD_MESSAGE),
    ('Successfully pulled image "a\\"b" in 2s', BAD_MESSAGE),  # an escape: no valid reference needs one
    (f'Container image "{IMAGE}" already present on machine.', BAD_MESSAGE),
    (f'Container image "{IMAGE}" already present on machine and can be accessed by the pod.', BAD_MESSAGE),
    (f'Container image "{IMAGE}" already present on machine\n', BAD_MESSAGE),
    (f' Container image "{IMAGE}" already present on machine', BAD_MESSAGE),
    (f'(combined from similar events):Container image "{IMAGE}" already present on machine', BAD_MESSAGE),
    (f'(combined from similar events): (combined from similar events): Container image "{IMAGE}" already '
     "present on machine", BAD_MESSAGE),
    (f'Container image "{IMAGE}" already present on machine; Container image "x" already present on machine',
     BAD_MESSAGE),
    ('Container image "' + "a" * 1100 + '" already present on machine', BAD_MESSAGE),
]


@pytest.mark.parametrize(("text", "reason"), MALFORMED, ids=[repr(t[:50]) for t, _ in MALFORMED])
def test_anything_else_is_refused_with_a_reason_from_a_fixed_set(text: str, reason: str) -> None:
    with pytest.raises(NotPulled) as refused:
        parse_message(text)
    assert refused.value.reason == reason


def test_a_message_that_is_not_text_is_refused() -> None:
    with pytest.raises(NotPulled):
        parse_message(12)  # type: ignore[arg-type]


CREATED = "2026-03-01T10:00:05Z"


def event(**changes: Any) -> dict[str, Any]:
    """A Pulled event exactly as the kubelet's recorder writes it (client-go tools/record)."""
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "wb-0.17f0a1b2c3d4e5f6", "namespace": "team-a", "uid": "6a1f-uid",
                     "creationTimestamp": CREATED},
        "involvedObject": {"kind": "Pod", "namespace": "team-a", "name": "wb-0", "uid": "pod-uid-1",
                           "apiVersion": "v1", "fieldPath": "spec.containers{wb}"},
        "reason": "Pulled",
        "message": f'Container image "{IMAGE}" already present on machine',
        "source": {"component": "kubelet", "host": "worker-0"},
        "firstTimestamp": "2026-03-01T10:00:00Z", "lastTimestamp": "2026-03-01T10:00:00Z",
        "count": 1, "type": "Normal", "eventTime": None,
        "reportingComponent": "kubelet", "reportingInstance": "worker-0",
    }
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def test_an_event_as_the_kubelet_writes_it_is_read() -> None:
    found = read_event(event(count=5, lastTimestamp="2026-03-01T10:20:00Z"))
    assert (found.uid, found.namespace, found.pod, found.pod_uid, found.node, found.count) == (
        "6a1f-uid", "team-a", "wb-0", "pod-uid-1", "worker-0", 5)
    assert found.container == "spec.containers{wb}"
    assert found.first == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert found.last == datetime(2026, 3, 1, 10, 20, tzinfo=UTC)
    assert found.message == PullMessage(IMAGE, cold=False)


def test_the_node_may_come_from_the_reporting_instance_alone() -> None:
    assert read_event(event(source={"component": "kubelet"})).node == "worker-0"
    assert read_event(event(source={}, reportingComponent="kubelet")).node == "worker-0"


def test_a_missing_count_is_one_occurrence() -> None:
    assert read_event(event(count=None)).count == 1


@pytest.mark.parametrize(("changes", "reason"), [
    ({"reason": "Pulling"}, NOT_PULLED),
    ({"type": "Warning"}, NOT_PULLED),
    ({"source": {"component": "someone", "host": "worker-0"}, "reportingComponent": "someone"}, NOT_KUBELET),
    ({"involvedObject": {"kind": "Node", "name": "worker-0"}}, NOT_A_POD),
    ({"involvedObject": {"kind": "Pod", "namespace": "team-b", "name": "wb-0"}}, NOT_A_POD),
    ({"involvedObject": {"kind": "Pod", "namespace": "team-a"}}, NOT_A_POD),
    ({"source": {"component": "kubelet"}, "reportingInstance": ""}, NO_NODE),
    ({"count": 0}, BAD_COUNT),
    ({"count": -3}, BAD_COUNT),
    ({"count": "5"}, BAD_COUNT),
    ({"count": True}, BAD_COUNT),
    ({"count": 1 << 40}, BAD_COUNT),
    ({"firstTimestamp": "yesterday", "lastTimestamp": "yesterday",
      "metadata": {"name": "x", "namespace": "team-a", "uid": "u"}}, BAD_TIME),
    ({"message": "Back-off pulling image"}, BAD_MESSAGE),
])
def test_an_event_the_kubelet_would_not_write_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotPulled) as refused:
        read_event(event(**changes))
    assert refused.value.reason == reason


def test_a_forged_first_time_does_not_reach_before_the_event_was_created() -> None:
    found = read_event(event(firstTimestamp="1970-01-01T00:00:00Z", lastTimestamp="1970-01-01T00:00:00Z"))
    created = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert found.first == created - timedelta(hours=1)
    assert found.last == found.first


def test_a_naive_or_garbled_time_falls_back_to_the_event_time() -> None:
    found = read_event(event(firstTimestamp="2026-03-01T10:00:00", lastTimestamp=None,
                             eventTime="2026-03-01T10:00:01.123456Z"))
    assert found.first == datetime(2026, 3, 1, 10, 0, 1, 123456, tzinfo=UTC)
