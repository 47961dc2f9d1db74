import json

from tests.conftest import StartKpk
from tests.polling import eventually
from tests.sockets import members


async def test_json_log_lines_carry_the_socket_id_and_room(start_kpk: StartKpk) -> None:
    server = start_kpk("--log-json")
    async with members(server.url) as [client]:
        await client.join("kpk/notes/acme/q1/intro")
        ack = await client.update("kpk/notes/acme/q1/intro", set={"a": 1}, unset=["a"])
        assert ack["error"] == "invalid_update"
        sid = client.sio.get_sid()

    def refusal() -> dict[str, str] | None:
        for line in server.log().splitlines():
            entry = json.loads(line)  # every line is one JSON object
            if "refused" in entry["message"]:
                return dict(entry)
        return None

    await eventually(refusal, what="the refusal to be logged")
    entry = refusal()
    assert entry is not None
    assert entry["sid"] == sid
    assert entry["room"] == "kpk/notes/acme/q1/intro"
    assert entry["level"] == "info"
    assert "invalid_update" in entry["message"]
