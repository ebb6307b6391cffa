"""The console's pages and endpoints (bound to a `Console` by bus.console.web).

Every page needs a logged-in account and shows only what its municipalities may see; every
POST needs the session's CSRF token; replay, discard, unmask and export check the role.
A resident's 宛名番号 is taken by POST only (never in a URL), pseudonymised for the search
and dropped.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bus.console.accounts import Account
from bus.console.data import EventType, RenkeiError, scrub
from bus.console.health import svg_chart
from bus.console.parts import SESSION_COOKIE, ConsoleLike, Job, redirect

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MESSAGE_ID = re.compile(r"[\w.:\-]{1,128}")


# -- login -----------------------------------------------------------------------------------


async def login_page(console: ConsoleLike, request: Request) -> Response:
    if console.account(request) is not None:
        return redirect("/")
    session = console.session(request) or console.sessions.new()
    response = console.render(request, "login.html", csrf_override=session.csrf)
    console.set_session_cookie(response, session)
    return response


async def login(console: ConsoleLike, request: Request) -> Response:
    form = await request.form()
    session = console.session(request)
    if session is None or not session.csrf_ok(_text(form.get("csrf"))):
        return _csrf_refused(console, request)
    name = (_text(form.get("name")) or "").strip().lower()
    password = _text(form.get("password")) or ""
    address = request.client.host if request.client else "unknown"
    keys = (f"name:{name}", f"addr:{address}")
    known = console.accounts.get(name) is not None
    actor = f"console:{name}" if known else "console:unknown-account"
    async def refused(status: int, error: str, reason: str) -> Response:  # audited; never the password
        await asyncio.to_thread(console.data.record_console_event, EventType.AUTH_FAILED, actor=actor, reason=reason)
        return console.render(request, "login.html", status_code=status, error=error, csrf_override=session.csrf)

    if console.throttle.locked(*keys):
        return await refused(429, "login.locked", "console login refused: too many failures (locked)")
    account = await asyncio.to_thread(console.accounts.check, name, password)
    if account is None:
        console.throttle.failed(*keys)
        return await refused(401, "login.failed", "console login failed: wrong account or password")
    console.throttle.succeeded(keys[0])
    fresh = console.sessions.login(session, account.name)
    response = redirect("/")
    console.set_session_cookie(response, fresh)
    return response


async def logout(console: ConsoleLike, request: Request) -> Response:
    form = await request.form()
    session = console.session(request)
    if session is not None and session.csrf_ok(_text(form.get("csrf"))):
        console.sessions.end(session.token)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- overview ----------------------------------------------------------------------------------


async def overview(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    monitor = console.monitor
    report = monitor.report
    rows: list[dict[str, Any]] = []
    sources: list[Any] = []
    ingests: list[Any] = []  # bulk files being ingested (bus.ingests), of the sources the account sees
    if report is not None:
        ingests = [p for p in report.ingests if account.sees(console.data.source_municipalities(p.source))]
        for d in report.destinations:
            if not account.sees(console.data.destination_municipalities(d.name)):
                continue
            j = monitor.judgements.get(d.name)
            rows.append({"d": d, "colour": j.colour if j else "amber", "reasons": j.reasons if j else (),
                         "rate": monitor.history.rate(d.name)})
        sources = [{"s": s, "rate": monitor.history.source_rate(s.name)} for s in report.sources
                   if account.sees(console.data.source_municipalities(s.name))]
    rates, backlog = monitor.history.series([r["d"].name for r in rows])
    alerts = [a for a in console.alerts.open if _sees_alert(account, a.municipalities)]
    caption = {"start": _clock(min(t for t, _ in backlog)), "end": _clock(max(t for t, _ in backlog)),
               "rate": max((v for _, v in rates), default=0.0), "backlog": int(max(v for _, v in backlog))} \
        if backlog else None
    return console.render(request, "overview.html", account=account, report=report, rows=rows, sources=sources,
                          ingests=ingests, chart=svg_chart(rates, backlog), caption=caption, alerts=alerts, refresh=10,
                          at=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.at)) if report else "",
                          systems=console.demo.systems() if console.demo else {})


# -- dead letters ------------------------------------------------------------------------------


def _filters(request: Request, form: Any = None) -> dict[str, str]:
    source = form if form is not None else request.query_params
    return {k: (_text(source.get(k)) or "").strip() for k in ("destination", "municipality", "code", "age")}


def _since(age: str) -> float | None:
    match = _AGE.match(age) if age else None
    return time.time() - float(match.group(1)) * _SECONDS[match.group(2)] if match else None


def _letters(console: ConsoleLike, account: Account, f: dict[str, str]) -> list[Any]:
    if f["municipality"] and account.scope is not None and f["municipality"] not in account.scope:
        return []
    return console.data.dead_letters(account.scope, destination=f["destination"] or None,
                                     municipality=f["municipality"] or None, code=f["code"] or None,
                                     since=_since(f["age"]))


async def dead_list(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    f = _filters(request)
    letters = await asyncio.to_thread(_letters, console, account, f)
    report = console.monitor.report
    destinations = sorted(d.name for d in report.destinations
                          if account.sees(console.data.destination_municipalities(d.name))) if report else []
    return console.render(request, "dead.html", account=account, letters=letters, f=f, destinations=destinations,
                          when=_when, scrub=console_scrub)


async def dead_show(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    dead_id = int(request.path_params["dead_id"])
    unmasked_by = None
    if request.method == "POST":
        form = await request.form()
        session = console.session(request)
        if session is None or not session.csrf_ok(_text(form.get("csrf"))):
            return _csrf_refused(console, request)
        if not account.may("unmask"):
            return console.render(request, "message.html", status_code=403, text="error.forbidden")
        unmasked_by = account.name
    shown = await asyncio.to_thread(console.data.show, dead_id, account.scope, unmasked_by=unmasked_by)
    if shown is None:
        return console.render(request, "message.html", status_code=404, text="error.not_found")
    life = await asyncio.to_thread(console.data.life, shown.letter.message_id, account.scope)
    record = json.dumps(shown.record, ensure_ascii=False, indent=2, default=str)
    return console.render(request, "letter.html", account=account, letter=shown.letter, masked=shown.masked,
                          record=record, life=life, when=_when, scrub=console_scrub)


async def dead_resolve(console: ConsoleLike, request: Request) -> Response:
    posted = await _posted(console, request)
    if isinstance(posted, Response):
        return posted
    account, form = posted
    action = _text(form.get("action"))
    if action not in ("replay", "discard") or not account.may(action):
        return console.render(request, "message.html", status_code=403, text="error.forbidden")
    reason = (_text(form.get("reason")) or "").strip()
    if not reason:
        return console.render(request, "message.html", status_code=400, text="dead.reason")
    one = _text(form.get("id"))
    if one:
        ids = [int(one)] if one.isdigit() else []
    else:
        ids = [d.id for d in await asyncio.to_thread(_letters, console, account, _filters(request, form))]
    job = console.new_job(action, len(ids), account.name)

    def progress(done: int, _total: int) -> None:
        job.done = done

    async def work() -> None:
        try:
            run = console.data.replay if action == "replay" else console.data.discard
            await run(ids, account.scope, by=account.name, reason=reason, progress=progress)
        except RenkeiError as exc:
            job.error = str(exc)
        finally:
            job.finished = True
            console.monitor.poke()

    job.task = asyncio.get_running_loop().create_task(work())
    return redirect(f"/jobs/{job.id}")


async def job_page(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    job: Job | None = console.jobs.get(request.path_params["job_id"])
    if job is None or job.owner != account.name:
        return console.render(request, "message.html", status_code=404, text="error.not_found")
    return console.render(request, "job.html", account=account, job=job, refresh=None if job.finished else 1)


# -- search, audit, alerts ---------------------------------------------------------------------------


async def search(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    message_id = (request.query_params.get("message_id") or "").strip()
    life: list[Any] = []
    trail: list[Any] | None = None
    error = None
    if request.method == "GET" and message_id:
        if _MESSAGE_ID.fullmatch(message_id):
            life = await asyncio.to_thread(console.data.life, message_id, account.scope)
        searched = True
    else:
        searched = False
    return console.render(request, "search.html", account=account, message_id=message_id, life=life,
                          trail=trail, searched=searched, error=error)


async def search_resident(console: ConsoleLike, request: Request) -> Response:
    posted = await _posted(console, request)
    if isinstance(posted, Response):
        return posted
    account, form = posted
    number = (_text(form.get("address_number")) or "").strip()
    if not (number.isascii() and number.isdigit() and 1 <= len(number) <= 15):
        return console.render(request, "search.html", status_code=400, account=account, message_id="", life=[],
                              trail=None, searched=False, error="search.bad_resident")
    trail = await asyncio.to_thread(console.data.resident, number, account.scope)
    del number  # pseudonymised for the search; not kept, not logged, not shown
    return console.render(request, "search.html", account=account, message_id="", life=[], trail=trail,
                          searched=True, error=None)


async def audit_page(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    monitor = console.monitor
    served = list(console.data.municipalities)
    municipalities = sorted(account.scope) if account.scope is not None else served
    return console.render(request, "audit.html", account=account, summary=monitor.audit, error=monitor.audit_error,
                          municipalities=municipalities)


async def audit_verify(console: ConsoleLike, request: Request) -> Response:
    posted = await _posted(console, request)
    if isinstance(posted, Response):
        return posted
    _account, _form = posted
    console.monitor.verify_soon()
    await console.monitor.look()
    return redirect("/audit")


async def audit_export(console: ConsoleLike, request: Request) -> Response:
    posted = await _posted(console, request)
    if isinstance(posted, Response):
        return posted
    account, form = posted
    municipality = (_text(form.get("municipality")) or "").strip()
    allowed = account.scope is None or municipality in account.scope
    if not account.may("export") or not allowed or not (len(municipality) == 6 and municipality.isdigit()):
        return console.render(request, "message.html", status_code=403, text="error.forbidden")
    out = io.StringIO()
    await asyncio.to_thread(console.data.export, municipality, out)
    return Response(out.getvalue(), media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="renkei-audit-{municipality}.jsonl"',
        "Cache-Control": "no-store"})


async def alerts_page(console: ConsoleLike, request: Request) -> Response:
    account = console.account(request)
    if account is None:
        return redirect("/login")
    open_ = [a for a in console.alerts.open if _sees_alert(account, a.municipalities)]
    recent = [a for a in console.alerts.recent if _sees_alert(account, a.municipalities)][:50]
    return console.render(request, "alerts.html", account=account, open_alerts=open_, recent=recent, when=_when,
                          refresh=10)


async def demo_action(console: ConsoleLike, request: Request) -> Response:
    posted = await _posted(console, request)
    if isinstance(posted, Response):
        return posted
    account, _form = posted
    demo = console.demo
    system, action = request.path_params["system"], request.path_params["action"]
    if demo is None or not account.may("demo"):
        return console.render(request, "message.html", status_code=403, text="error.forbidden")
    if action == "send":
        await demo.send(20)
    elif system in demo.systems() and action in ("stop", "start"):
        await (demo.take_down(system) if action == "stop" else demo.bring_up(system))
    else:
        return console.render(request, "message.html", status_code=404, text="error.not_found")
    console.monitor.poke()
    return redirect("/")


# -- helpers ---------------------------------------------------------------------------------------------


async def _posted(console: ConsoleLike, request: Request) -> tuple[Account, Any] | Response:
    """The account and form of a POST with the session's CSRF token; else the answer to give."""
    account = console.account(request)
    if account is None:
        return redirect("/login")
    form = await request.form()
    session = console.session(request)
    if session is None or not session.csrf_ok(_text(form.get("csrf"))):
        return _csrf_refused(console, request)
    return account, form


def _csrf_refused(console: ConsoleLike, request: Request) -> Response:
    return console.render(request, "message.html", status_code=403, text="error.csrf")


def _sees_alert(account: Account, municipalities: frozenset[str] | None) -> bool:
    return municipalities is None or account.sees(municipalities)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M", time.localtime(epoch))


def _when(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def console_scrub(text: str) -> str:
    return scrub(text)
