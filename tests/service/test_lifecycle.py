"""Components start in order through readiness gates and stop in mirror order."""

from __future__ import annotations

import asyncio

import pytest

from kernel.service.lifecycle import Lifecycle, StartupError


class Recording:
    """A component that records its start and stop in a shared journal."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        fail_start: bool = False,
        fail_stop: bool = False,
        start_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.start_delay = start_delay

    async def start(self) -> None:
        await asyncio.sleep(self.start_delay)
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot bind")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} stop failed")


def test_start_in_order_and_stop_in_mirror_order() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle([Recording(name, journal) for name in ("bus", "feeds", "paper")])

    async def scenario() -> None:
        await lifecycle.start()
        lifecycle.shutdown.request("test over")
        await lifecycle.stop()

    asyncio.run(scenario())
    assert journal == [
        "start bus",
        "start feeds",
        "start paper",
        "stop paper",
        "stop feeds",
        "stop bus",
    ]


def test_failed_start_stops_what_was_started_and_names_the_component() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle(
        [
            Recording("bus", journal),
            Recording("metrics", journal, fail_start=True),
            Recording("paper", journal),
        ]
    )
    with pytest.raises(StartupError, match="metrics failed to start: metrics cannot bind"):
        asyncio.run(lifecycle.start())
    assert journal == ["start bus", "stop metrics", "stop bus"]


def test_start_that_never_becomes_ready_times_out() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle([Recording("slow", journal, start_delay=5)], start_timeout_s=0.05)
    with pytest.raises(StartupError, match=r"slow was not ready within 0\.05s"):
        asyncio.run(lifecycle.start())


def test_stop_errors_are_collected_and_every_component_still_stops() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle(
        [
            Recording("a", journal),
            Recording("b", journal, fail_stop=True),
            Recording("c", journal),
        ]
    )

    async def scenario() -> None:
        await lifecycle.start()
        await lifecycle.stop()

    asyncio.run(scenario())
    assert journal[-3:] == ["stop c", "stop b", "stop a"]
    assert [name for name, _ in lifecycle.stop_errors] == ["b"]


def test_component_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Lifecycle([Recording("a", []), Recording("a", [])])


def test_first_shutdown_reason_is_kept() -> None:
    lifecycle = Lifecycle([])

    async def scenario() -> None:
        lifecycle.shutdown.request("SIGTERM")
        lifecycle.shutdown.request("replay finished")
        await lifecycle.run()

    asyncio.run(scenario())
    assert lifecycle.shutdown.reason == "SIGTERM"
