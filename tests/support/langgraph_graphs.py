"""Small real LangGraph graphs for the checkpointer's tests and benchmark."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def echo_agent(state: MessagesState) -> dict[str, Any]:
    """A deterministic stand-in for a model: answers the last message with its turn number."""
    turn = sum(1 for m in state["messages"] if m.type == "human")
    return {"messages": [AIMessage(content=f"turn {turn}: {_text(state['messages'][-1])}")]}


def chat_graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``START -> agent -> END`` over ``MessagesState``, checkpointed by ``saver``."""
    builder = StateGraph(MessagesState)
    builder.add_node("agent", echo_agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=saver)
