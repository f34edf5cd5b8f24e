"""One process of a LangGraph chat on runwire: one turn on a thread, then it waits to be killed.

``python -m tests.integration.checkpoint.chat_process SETTINGS_JSON THREAD TEXT`` prints
the thread's messages (JSON) after the turn, then sleeps until killed.
"""

from __future__ import annotations

import json
import sys
import time

from langchain_core.messages import HumanMessage

from runwire.checkpoint import RunwireSaver
from runwire.settings import Settings
from tests.support.langgraph_graphs import chat_graph


def main() -> None:
    settings = Settings(**json.loads(sys.argv[1]))
    thread, text = sys.argv[2], sys.argv[3]
    saver = RunwireSaver(settings=settings)
    saver.setup()
    graph = chat_graph(saver)
    out = graph.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread}})
    print(json.dumps([m.content for m in out["messages"]]), flush=True)
    time.sleep(600)  # killed here: nothing is flushed at exit, nothing needs to be


if __name__ == "__main__":
    main()
