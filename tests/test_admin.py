"""The admin view: off unless both credentials are set; python-socketio's Admin UI namespace,
read-only in production mode; the UI's files served at /admin/ with every asset local; and
in Chromium an operator logs in and sees a connected client and its room."""

import urllib.error
import urllib.request

import pytest
import socketio
from playwright.sync_api import Browser, Page, expect

from kpk_io.config import ConfigError, load_settings
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer
from tests.sockets import members

ROOM = "kpk/notes/acme/q1/admin"
ADMIN = {"KPK_IO_ADMIN_USER": "ops", "KPK_IO_ADMIN_PASSWORD": "correct horse"}


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


async def admin_connects(node: KpkServer, auth: dict[str, str]) -> bool:
    admin = socketio.AsyncClient(reconnection=False)
    try:
        await admin.connect(node.url, namespaces=["/admin"], auth=auth, wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        return False
    await admin.disconnect()
    return True


async def test_the_admin_view_is_off_by_default(start_kpk: StartKpk) -> None:
    node = start_kpk()
    assert status_of(f"{node.url}/admin/") == 404
    assert not await admin_connects(node, {"username": "", "password": ""})


def test_one_credential_alone_is_a_bad_setting() -> None:
    with pytest.raises(ConfigError, match="KPK_IO_ADMIN_PASSWORD"):
        load_settings({}, {"KPK_IO_ADMIN_USER": "ops"})
    with pytest.raises(ConfigError, match="KPK_IO_ADMIN_USER"):
        load_settings({}, {"KPK_IO_ADMIN_PASSWORD": "secret"})


async def test_only_the_configured_credentials_get_in(start_kpk: StartKpk) -> None:
    node = start_kpk(env=ADMIN)
    assert await admin_connects(node, {"username": "ops", "password": "correct horse"})
    assert not await admin_connects(node, {"username": "ops", "password": "wrong"})
    assert not await admin_connects(node, {"username": "", "password": ""})
    assert status_of(f"{node.url}/admin/") == 200
    assert status_of(f"{node.url}/admin/%2e%2e/index.html") == 404


async def test_the_admin_view_is_read_only(start_kpk: StartKpk) -> None:
    node = start_kpk(env=ADMIN)
    admin = socketio.AsyncClient(reconnection=False)
    config: list[dict[str, list[str]]] = []
    admin.on("config", config.append, namespace="/admin")
    await admin.connect(node.url, namespaces=["/admin"], wait_timeout=10,
                        auth={"username": "ops", "password": "correct horse"})
    try:
        async with members(node.url) as [member]:
            await member.join(ROOM)
            await eventually(lambda: config, what="the admin UI's config")
            assert config[0]["supportedFeatures"] == ["AGGREGATED_EVENTS"]
            # The UI's write actions have no handler: nothing moves the member.
            await admin.emit("_disconnect", ("/", True, []), namespace="/admin")
            await admin.emit("leave", ("/", f"kpk:{ROOM}", []), namespace="/admin")
            ack = await member.update(ROOM, set={"still": "here"})
            assert ack["ok"], ack
    finally:
        await admin.disconnect()


async def test_each_admin_gets_its_own_nodes_socket_list(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    """The list is each node's own sockets: it must not travel to other nodes' admins
    through the Socket.IO channel, or an admin's list would alternate between nodes."""
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    a, b = start_kpk(*flags, env=ADMIN), start_kpk(*flags, env=ADMIN)
    auth = {"username": "ops", "password": "correct horse"}
    lists: dict[str, list[set[str]]] = {"a": [], "b": []}
    admins = []
    for name, node in (("a", a), ("b", b)):
        admin = socketio.AsyncClient(reconnection=False)
        admin.on("all_sockets", lambda sockets, name=name: lists[name].append(
            {s["id"] for s in sockets}), namespace="/admin")
        await admin.connect(node.url, namespaces=["/admin"], auth=auth, wait_timeout=10)
        admins.append(admin)
    try:
        async with members(a.url, b.url) as [on_a, on_b]:
            for seen in lists.values():
                seen.clear()
            await eventually(lambda: all(len(seen) >= 3 for seen in lists.values()), 20,
                             "three lists on each node")
            sid_a, sid_b = on_a.sio.get_sid(), on_b.sio.get_sid()
            assert all(sid_b not in seen for seen in lists["a"]), lists
            assert all(sid_a not in seen for seen in lists["b"]), lists
            assert all(sid_a in seen for seen in lists["a"]), lists
    finally:
        for admin in admins:
            await admin.disconnect()


async def test_broadcasts_reach_members_with_the_admin_view_on(start_kpk: StartKpk) -> None:
    node = start_kpk(env=ADMIN)
    async with members(node.url, node.url, node.url) as [writer, *readers]:
        for member in (writer, *readers):
            await member.join(ROOM)
        for n in range(20):
            assert (await writer.update(ROOM, set={"n": n}))["ok"]
        for reader in readers:
            seen = await reader.wait_updates(ROOM, 20)
            assert [update["set"]["n"] for update in seen] == list(range(20))
    # Each went straight onto the readers' Engine.IO queues (kpk_io/engine/outbox.py), which
    # instrument() does not wrap: no fallback to sio.emit was needed.
    assert "the public way" not in node.log()


def test_an_operator_logs_in_and_sees_a_client_and_its_room(
    start_kpk: StartKpk, browser: Browser
) -> None:
    node = start_kpk(env=ADMIN)
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        member_page = context.new_page()  # a kpk-io client in the same browser
        member_page.goto(f"{node.url}/demo/notes/acme/q1/admin")
        expect(member_page.locator("#status")).to_have_attribute("data-status", "live",
                                                                  timeout=15_000)
        log_in(page, node.url)
        page.goto(f"{node.url}/admin/#/sockets")
        expect(page.locator("table tbody tr")).to_have_count(1, timeout=15_000)
        page.goto(f"{node.url}/admin/#/rooms")
        room = page.get_by_role("row", name="demo/notes/acme/q1/admin Public 1")
        expect(room).to_be_visible(timeout=15_000)  # the demo page's room, one member
    finally:
        context.close()
    local = (node.url + "/", node.url.replace("http", "ws") + "/")
    assert requested and all(url.startswith(local) for url in requested), [
        url for url in requested if not url.startswith(local)
    ]


def log_in(page: Page, origin: str) -> None:
    page.goto(f"{origin}/admin/")
    server_url = page.get_by_label("Server URL")
    expect(server_url).to_have_value(origin, timeout=15_000)  # offered by kpk-admin.js
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_text("Connected", exact=False).first).to_be_visible(timeout=15_000)
