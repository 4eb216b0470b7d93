"""The fake Messages API server, exercised through the real `anthropic` SDK (no SDK class is mocked)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import anthropic
import pytest
from anthropic.types import TextBlock, ThinkingBlock, ToolUseBlock

from tests.fake_anthropic import NO_REPLY_LEFT, FakeAnthropic

MODEL = "claude-sonnet-5-5"
TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file of the workspace.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]


@pytest.fixture
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def make_client(server: FakeAnthropic, *, max_retries: int = 0, timeout: float = 5.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test-key", base_url=server.base_url, max_retries=max_retries, timeout=timeout)


def ask(client: anthropic.Anthropic, text: str = "hello", **kw) -> anthropic.types.Message:
    return client.messages.create(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": text}], **kw)


def test_text_reply_is_parsed_by_the_sdk_with_usage_and_request_id(server):
    server.text("Hi there.", usage={"input_tokens": 12, "cache_read_input_tokens": 7})

    with make_client(server) as client:
        message = ask(client)

    assert isinstance(message.content[0], TextBlock)
    assert message.content[0].text == "Hi there."
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    assert message.id.startswith("msg_fake_")
    assert message._request_id.startswith("req_fake_")
    assert message.usage.input_tokens == 12
    assert message.usage.output_tokens == 50
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 7
    assert server.pending == 0
    assert server.last_messages() == [{"role": "user", "content": "hello"}]
    sent_key = server.headers[0].get("x-api-key") or server.headers[0].get("authorization", "")
    assert sent_key.endswith("test-key")  # this SDK version sends "authorization: Bearer <key>"
    assert server.headers[0]["anthropic-version"]


def test_tool_use_with_thinking_parses_and_request_records_tools_and_system(server):
    server.tool_use("read_file", {"path": "README.md"}, thinking="Let me look at the readme.", text="Reading it.")

    with make_client(server) as client:
        message = ask(
            client,
            "what is in the readme?",
            system="You are a careful agent.",
            tools=TOOLS,
            thinking={"type": "enabled", "budget_tokens": 512},
        )

    thinking, text, tool = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.thinking == "Let me look at the readme."
    assert thinking.signature
    assert isinstance(text, TextBlock) and text.text == "Reading it."
    assert isinstance(tool, ToolUseBlock)
    assert tool.id.startswith("toolu_fake_")
    assert tool.name == "read_file"
    assert tool.input == {"path": "README.md"}
    assert message.stop_reason == "tool_use"

    sent = server.requests[0]
    assert sent["system"] == "You are a careful agent."
    assert sent["tools"] == TOOLS
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 512}
    assert sent["model"] == MODEL


def test_sdk_retries_a_429_honouring_retry_after_then_succeeds(server):
    server.error(429, retry_after=0.05)
    server.text("ok after rate limit")

    started = time.monotonic()
    with make_client(server, max_retries=2) as client:
        message = ask(client)
    elapsed = time.monotonic() - started

    assert message.content[0].text == "ok after rate limit"
    assert len(server.requests) == 2
    assert [h["x-stainless-retry-count"] for h in server.headers] == ["0", "1"]
    assert elapsed < 3


def test_three_529s_exhaust_two_retries_and_raise_overloaded_error(server):
    for _ in range(3):
        server.error(529, retry_after=0.01)

    with make_client(server, max_retries=2) as client, pytest.raises(anthropic.OverloadedError) as caught:
        ask(client)

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert len(server.requests) == 3
    assert server.pending == 0


def test_a_500_is_retried(server):
    server.error(500, retry_after=0.01)
    server.text("recovered")

    with make_client(server, max_retries=1) as client:
        message = ask(client)

    assert message.content[0].text == "recovered"
    assert len(server.requests) == 2


def test_a_400_is_not_retried(server):
    server.error(400, message="messages: bad shape")
    server.text("never sent")

    with make_client(server, max_retries=2) as client, pytest.raises(anthropic.BadRequestError) as caught:
        ask(client)

    assert caught.value.status_code == 400
    assert caught.value.body["error"] == {"type": "invalid_request_error", "message": "messages: bad shape"}
    assert len(server.requests) == 1
    assert server.pending == 1


def test_should_retry_header_overrides_the_sdk_status_policy(server):
    server.error(529, retry_after=0.01, should_retry=False)

    with make_client(server, max_retries=2) as client, pytest.raises(anthropic.OverloadedError):
        ask(client)

    assert len(server.requests) == 1


def test_slow_reply_times_out_quickly_and_server_keeps_working(server):
    server.text("too late", delay=2)
    server.text("still alive")

    with make_client(server, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(anthropic.APITimeoutError):
            ask(client)
        assert time.monotonic() - started < 1.5

        message = ask(client, "again")

    assert message.content[0].text == "still alive"
    assert len(server.requests) == 2


def test_assistant_thinking_and_tool_use_round_trip_unchanged_with_tool_result(server):
    server.tool_use("read_file", {"path": "a.txt"}, thinking="I need the file.")
    server.text("The file says hi.")

    with make_client(server) as client:
        first = ask(client, "read a.txt", tools=TOOLS, thinking={"type": "enabled", "budget_tokens": 512})
        tool = first.content[-1]
        history = [
            {"role": "user", "content": "read a.txt"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "hi"}]},
        ]
        second = client.messages.create(
            model=MODEL,
            max_tokens=1024,
            messages=history,
            tools=TOOLS,
            thinking={"type": "enabled", "budget_tokens": 512},
        )

    assert second.content[0].text == "The file says hi."
    thinking = first.content[0]
    assert server.last_messages() == [
        {"role": "user", "content": "read a.txt"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I need the file.", "signature": thinking.signature},
                {"type": "tool_use", "id": tool.id, "name": "read_file", "input": {"path": "a.txt"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "hi"}]},
    ]


def test_tampered_thinking_is_rejected_like_the_real_api(server):
    server.tool_use("read_file", {"path": "a.txt"}, thinking="original thought", id="toolu_1")
    server.text("unused")

    with make_client(server) as client:
        first = ask(client, tools=TOOLS)
        blocks = [block.model_dump(exclude_none=True) for block in first.content]
        blocks[0]["thinking"] = "edited thought"
        history = [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]},
        ]
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
            client.messages.create(model=MODEL, max_tokens=1024, messages=history, tools=TOOLS)

    assert server.pending == 1  # a rejected request does not consume the scripted reply


def test_tool_use_without_tool_result_and_unknown_tool_result_are_rejected(server):
    assistant = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "x", "input": {}}]}
    with make_client(server) as client:
        with pytest.raises(anthropic.BadRequestError, match="without `tool_result` blocks immediately after: toolu_9"):
            client.messages.create(
                model=MODEL,
                max_tokens=10,
                messages=[{"role": "user", "content": "a"}, assistant, {"role": "user", "content": "b"}],
            )
        with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id` found in `tool_result` blocks"):
            client.messages.create(
                model=MODEL,
                max_tokens=10,
                messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0"}]}],
            )


def test_nothing_scripted_fails_loudly_with_a_400(server):
    with make_client(server, max_retries=2) as client, pytest.raises(anthropic.BadRequestError, match=NO_REPLY_LEFT):
        ask(client)

    assert len(server.requests) == 1


def test_handler_answers_reactively_when_the_queue_is_empty(server):
    def echo(body: dict) -> dict | None:
        last = body["messages"][-1]["content"]
        return {"content": [{"type": "text", "text": f"echo: {last}"}], "usage": {"output_tokens": 3}}

    server.text("scripted first")
    server.handler(echo)

    with make_client(server) as client:
        assert ask(client, "one").content[0].text == "scripted first"
        reply = ask(client, "two")

    assert reply.content[0].text == "echo: two"
    assert reply.usage.output_tokens == 3
    assert reply.usage.input_tokens == 100


def test_streaming_request_gets_server_sent_events(server):
    server.tool_use("read_file", {"path": "long/" + "x" * 60}, thinking="Thinking " * 10, text="Streaming text " * 5)

    go = [{"role": "user", "content": "go"}]
    with make_client(server) as client, client.messages.stream(model=MODEL, max_tokens=1024, messages=go) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()

    assert "".join(texts) == "Streaming text " * 5
    thinking, text, tool = final.content
    assert thinking.thinking == "Thinking " * 10 and thinking.signature.startswith("fake-signature-")
    assert tool.input == {"path": "long/" + "x" * 60}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 50 and final.usage.input_tokens == 100
    assert server.requests[0]["stream"] is True


def test_other_routes_and_malformed_json_get_error_envelopes(server):
    def post(path: str, data: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(server.base_url + path, data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = post("/v1/complete", b"{}")
    assert status == 404 and body["error"]["type"] == "not_found_error"

    status, body = post("/v1/messages?beta=true", b"{not json")
    assert status == 400 and body == {"type": "error", "error": body["error"]}
    assert body["error"]["type"] == "invalid_request_error"
    assert server.requests == []

    server.text("beta works")
    status, body = post("/v1/messages?beta=true", json.dumps({"model": "m", "messages": []}).encode())
    assert status == 200 and body["content"] == [{"type": "text", "text": "beta works"}]
    assert body["stop_sequence"] is None


def test_stop_returns_promptly_while_a_delayed_reply_sleeps():
    fake = FakeAnthropic().start()
    fake.text("never", delay=30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with make_client(fake, timeout=10) as client:
                ask(client)
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 2
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1
    caller.join(timeout=3)
    assert not caller.is_alive()
    assert isinstance(errors[0], anthropic.APIConnectionError)
