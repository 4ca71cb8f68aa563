"""What one visitor may keep stored: refused with a sentence on every route, freed by deleting, nobody else touched."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.quota import StoredDataQuota
from chat.runs import ActiveTurns, RunStatus
from chat.sessions import ImportRejected, Sessions
from chat.turns import ChatService
from server import run_to_completion
from tests.apps import running_app, visitor_token
from tests.scripted import chat_service

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store):
    """chat/ is written against `CataloguedStore`: every test here runs on SQLite and in memory."""
    return any_store


LONG_GREEK = "Καλημέρα σας, τι κάνετε σήμερα; " * 150  # about 8.5 kB in UTF-8


def quota_service(store, max_bytes: int) -> ChatService:
    return chat_service(
        store,
        ModelResolver(Settings(), DemoPace.instant()),
        active=ActiveTurns(quota=StoredDataQuota(store, max_bytes)),
        min_update_interval=0,
    )


async def last_update(service: ChatService, owner: str, conversation_id: str, prompt: str):
    return [update async for update in service.run_turn(owner, conversation_id, prompt, "demo")][-1]


async def test_a_visitor_at_the_limit_is_told_what_to_do_and_nothing_more_is_stored(store):
    service = quota_service(store, max_bytes=12_000)
    assert (await last_update(service, "dimitra", "d1", LONG_GREEK)).status is RunStatus.COMPLETED
    stored = await store.stored_bytes("dimitra")
    refused = await last_update(service, "dimitra", "d2", "Και κάτι ακόμα;")
    assert refused.status is RunStatus.FAILED
    assert "at most 12 kB" in refused.error and "Delete some" in refused.error
    assert await store.stored_bytes("dimitra") == stored and await store.session("d2", "dimitra") is None
    other = await last_update(service, "yannis", "y1", "Γεια σου!")
    assert other.status is RunStatus.COMPLETED  # one visitor's full store is not another's


async def test_deleting_a_conversation_makes_room_again(store):
    service = quota_service(store, max_bytes=12_000)
    await last_update(service, "dimitra", "d1", LONG_GREEK)
    assert (await last_update(service, "dimitra", "d2", "Ακόμα;")).status is RunStatus.FAILED
    await Sessions(store).delete("dimitra", "d1")
    assert (await last_update(service, "dimitra", "d2", "Ακόμα;")).status is RunStatus.COMPLETED


async def test_an_import_that_would_go_over_the_limit_is_refused_and_nothing_is_stored(store):
    service = quota_service(store, max_bytes=30_000)
    await last_update(service, "amara", "a1", LONG_GREEK)
    sessions = Sessions(store, quota=StoredDataQuota(store, 30_000))
    exported = await sessions.export_json("amara", "a1")
    await sessions.import_json("amara", exported)  # still fits
    before = [summary.conversation_id for summary in await sessions.list("amara")]
    with pytest.raises(ImportRejected, match="at most 30 kB.*Nothing was imported"):
        await sessions.import_json("amara", exported)
    assert [summary.conversation_id for summary in await sessions.list("amara")] == before


def test_the_limit_holds_on_the_gradio_api_and_the_sse_api_of_a_running_server():
    from gradio_client import Client

    settings = Settings(
        demo_first_token_delay=0.01,
        demo_tokens_per_second=0,
        warm_up=False,
        max_messages_per_minute=0,
        max_stored_mb_per_visitor=0.012,
    )
    owner, neighbour = visitor_token("hoarder"), visitor_token("neighbour")
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        client = Client(app.url, verbose=False)
        answer, _, _ = client.predict(LONG_GREEK, "demo", owner, api_name="/chat")
        assert not answer.startswith("⚠️")
        refused = http.post("api/chat", json={"message": "¿Y ahora?"}, headers={"x-chat-owner": owner})
        assert refused.status_code == 507 and "at most 12 kB" in refused.json()["error"]
        answer, _, _ = client.predict("¿Y ahora?", "demo", owner, api_name="/chat")
        assert answer.startswith("⚠️") and "Delete some" in answer
        # The OpenAI-compatible route gives the same status, and tells OpenAI's clients that retrying will not help.
        sent = []
        counted = httpx.Client(event_hooks={"request": [sent.append]})
        v1 = openai.OpenAI(
            base_url=f"{app.url}v1", api_key="sk-any", default_headers={"X-Chat-Owner": owner}, http_client=counted
        )
        with pytest.raises(openai.APIStatusError) as refused_v1:  # the client's default: 2 retries
            v1.chat.completions.create(model="demo", messages=[{"role": "user", "content": "¿Y ahora?"}])
        assert refused_v1.value.status_code == 507 and "at most 12 kB" in refused_v1.value.message
        assert len(sent) == 1 and "retry-after" not in refused_v1.value.response.headers
        assert http.post("api/chat", json={"message": "Hola"}, headers={"x-chat-owner": neighbour}).status_code == 200

        (full,) = run_to_completion(app.service.store.list_sessions(owner))
        asyncio.run(Sessions(app.service.store).delete(owner, full.conversation_id))  # as the sidebar's Delete does
        again = http.post("api/chat", json={"message": "¿Y ahora?"}, headers={"x-chat-owner": owner})
        assert again.status_code == 200 and '"status": "completed"' in again.text
