"""Alerts without floods: one when a condition starts, one when it clears; grouped, rate-limited,
with a quiet period; sent to a real local HTTP receiver (a webhook) and to the log."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.server import EmbeddedServer
from bus.console.alerts import Alerts, Condition, webhook_sender

ZEI = Condition("destination:zei", "destination zei: 3 dead letters", (("reason.dead", {"n": 3}),))
KOKUHO = Condition("destination:kokuho", "destination kokuho: failing for 90 s")


async def test_a_condition_raises_one_alert_after_its_quiet_period_and_one_when_it_clears() -> None:
    sent: list[dict[str, Any]] = []

    async def send(body: dict[str, Any]) -> None:
        sent.append(body)

    alerts = Alerts(send, quiet_period=30)
    assert await alerts.evaluate([ZEI], now=1000) is None  # not yet: the quiet period
    assert await alerts.evaluate([ZEI], now=1020) is None
    opened = await alerts.evaluate([ZEI], now=1031)
    assert opened is not None and [a["status"] for a in opened["alerts"]] == ["firing"]
    for t in range(1032, 1100, 5):  # still there: nothing new
        assert await alerts.evaluate([ZEI], now=t) is None
    assert await alerts.evaluate([], now=1100) is None  # gone, but within the quiet period
    assert await alerts.evaluate([ZEI], now=1110) is None  # back: the same alert goes on
    assert await alerts.evaluate([], now=1120) is None
    cleared = await alerts.evaluate([], now=1151)
    assert cleared is not None and [a["status"] for a in cleared["alerts"]] == ["resolved"]
    assert len(sent) == 2 and alerts.open == [] and [a.key for a in alerts.recent] == ["destination:zei"]


async def test_a_flapping_condition_shorter_than_the_quiet_period_raises_nothing() -> None:
    alerts = Alerts(None, quiet_period=30)
    for t in range(0, 600, 20):
        await alerts.evaluate([ZEI] if (t // 20) % 2 == 0 else [], now=t)
    assert alerts.notifications == 0 and alerts.open == []


async def test_what_opens_together_goes_out_as_one_notification() -> None:
    alerts = Alerts(None, quiet_period=0)
    body = await alerts.evaluate([ZEI, KOKUHO], now=10)
    assert body is not None and sorted(a["key"] for a in body["alerts"]) == ["destination:kokuho", "destination:zei"]
    assert alerts.notifications == 1


async def test_notifications_beyond_the_hourly_limit_are_held_back_and_counted_in_the_next() -> None:
    alerts = Alerts(None, quiet_period=0, per_hour=2)
    bodies = []
    for i in range(4):  # open, clear, open, clear within the hour
        bodies.append(await alerts.evaluate([ZEI] if i % 2 == 0 else [], now=100 + i))
    assert alerts.notifications == 2 and [bool(b and b.get("held_back")) for b in bodies] == [
        False, False, True, True]
    after = await alerts.evaluate([KOKUHO], now=100 + 3600 + 10)
    assert after is not None and after["suppressed_before"] == 2 and alerts.notifications == 3


async def test_the_webhook_gets_each_notification_as_json_on_a_real_http_receiver() -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    receiver = EmbeddedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    await receiver.start()
    try:
        alerts = Alerts(webhook_sender(f"{receiver.url}/hook"), quiet_period=0)
        await alerts.evaluate([ZEI], now=50)
        await alerts.evaluate([], now=60)
    finally:
        await receiver.stop()
    assert [[(a["key"], a["status"]) for a in body["alerts"]] for body in received] == [
        [("destination:zei", "firing")], [("destination:zei", "resolved")]]
    assert received[0]["source"] == "renkei" and received[1]["alerts"][0]["cleared_at"]


async def test_a_webhook_that_is_down_does_not_stop_the_alerts() -> None:
    receiver = EmbeddedServer(Starlette())
    await receiver.start()
    url = f"{receiver.url}/hook"
    await receiver.stop()  # nothing listens there now
    alerts = Alerts(webhook_sender(url, timeout=2), quiet_period=0)
    assert await alerts.evaluate([ZEI], now=1) is not None
    assert [a.key for a in alerts.open] == ["destination:zei"]


async def test_an_open_alert_keeps_every_reason_it_had_with_the_latest_figures() -> None:
    alerts = Alerts(None, quiet_period=0)
    await alerts.evaluate([Condition("destination:zei", "down", (("reason.down", {"seconds": 9}),))], now=1)
    await alerts.evaluate([Condition("destination:zei", "dead", (("reason.dead", {"n": 4}),
                                                                   ("reason.down", {"seconds": 20})))], now=2)
    await alerts.evaluate([Condition("destination:zei", "down", (("reason.down", {"seconds": 30}),))], now=3)
    assert dict(alerts.open[0].reasons) == {"reason.down": {"seconds": 30}, "reason.dead": {"n": 4}}
