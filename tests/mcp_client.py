"""An MCP client for tests/mcp.rs, on the official MCP Python SDK (PyPI `mcp`).

It starts `berth mcp` as an agent client would, over stdio, and goes through what an
agent does: lists the tools, brings a stack up (watching progress notifications), reads
its ports, URL, env and logs, checks that the stack answers on the reported port,
restarts it, saves and restores a snapshot of it, makes mistakes on purpose (a path that does not exist, arguments that are not the tool's),
calls a tool again afterwards, cancels an `up` that waits for a service that never gets
ready, and brings everything down. It prints one JSON report on stdout; tests/mcp.rs
asserts on it. Any exception (a protocol error, structured content that does not match a
tool's output schema, which the SDK checks) fails the run with a traceback.

Usage: mcp_client.py CONFIG_JSON, where CONFIG_JSON holds `command`, `args`, `env`,
`project`, `slow_project` and `port`.
"""

import json
import sys
import time
import urllib.error
import urllib.request

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client


def text_of(result):
    return "".join(block.text for block in result.content if block.type == "text")


def summary(result):
    return {
        "is_error": bool(result.is_error),
        "text": text_of(result),
        "structured": result.structured_content,
    }


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.URLError as error:
        return None, str(error.reason)
    except OSError as error:
        return None, str(error)


async def call(session, report, key, tool, arguments, **options):
    result = await session.call_tool(tool, arguments, **options)
    report[key] = summary(result)
    return result


async def main(config):
    report = {}
    params = StdioServerParameters(
        command=config["command"], args=config["args"], env=config["env"]
    )
    project, slow, port = config["project"], config["slow_project"], config["port"]
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            initialized = await session.initialize()
            report["server"] = {
                "name": initialized.server_info.name,
                "instructions": initialized.instructions or "",
            }
            listed = await session.list_tools()
            report["tools"] = {
                tool.name: {
                    "description": tool.description or "",
                    "inputs": sorted((tool.input_schema or {}).get("properties", {})),
                    "required": sorted((tool.input_schema or {}).get("required", [])),
                    "has_output_schema": tool.output_schema is not None,
                }
                for tool in listed.tools
            }

            # Up, with the progress notifications it sends while it waits.
            progress = []

            async def on_progress(value, total, message):
                progress.append({"progress": value, "message": message})

            await call(session, report, "up", "up", {"path": project}, progress_callback=on_progress)
            report["up_progress"] = progress

            # Read it back.
            await call(session, report, "status", "status", {"path": project})
            await call(session, report, "port", "port", {"path": project, "service": "web"})
            await call(session, report, "url", "url", {"path": project, "service": "web"})
            await call(session, report, "env", "env", {"path": project})
            await call(session, report, "env_web", "env", {"path": project, "service": "web"})
            await call(session, report, "list_instances", "list_instances", {})
            await call(session, report, "snapshot_list", "snapshot_list", {"path": project})

            # The same struct `berth status --json` prints.
            cli = await anyio.run_process(
                [config["command"], "-C", project, "status", "--json"], env=config["env"]
            )
            report["cli_status"] = json.loads(cli.stdout)

            # The stack answers on the reported port; its log shows the request.
            reported = report["port"]["structured"]["port"]
            status, body = http_get(reported, "/hello.txt?from=mcp-client")
            report["http"] = {"port": reported, "status": status, "body": body}
            deadline = time.monotonic() + 15
            while True:
                logs = await session.call_tool(
                    "logs", {"path": project, "service": "web", "lines": 50}
                )
                lines = (logs.structured_content or {}).get("lines", [])
                if any("GET /hello.txt?from=mcp-client" in line["line"] for line in lines) or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.2)
            report["logs"] = summary(logs)
            await call(
                session, report, "logs_since_start", "logs",
                {"path": project, "service": "web", "since": "start", "lines": 5},
            )

            # Restart, and the snapshot tools (each stops the instance and starts it again).
            await call(session, report, "restart", "restart", {"path": project, "services": ["web"]})
            await call(session, report, "snapshot_save", "snapshot_save", {"path": project, "snapshot": "before"})
            await call(session, report, "snapshot_list_saved", "snapshot_list", {"path": project})
            await call(
                session, report, "snapshot_restore", "snapshot_restore",
                {"path": project, "snapshot": "before", "force": True},
            )
            status, body = http_get(reported, "/hello.txt")
            report["http_after_restore"] = {"status": status, "body": body}

            # Mistakes, on purpose; the server answers every one and goes on.
            await call(session, report, "missing_path", "status", {"path": "/nonexistent/berth-mcp-test"})
            await call(session, report, "bad_arguments", "port", {"path": project})
            await call(session, report, "unknown_service", "url", {"path": project, "service": "nope"})
            await call(session, report, "too_many_lines", "logs", {"path": project, "lines": 100000})
            await call(session, report, "after_mistakes", "list_instances", {})

            # An `up` that waits for a service that never gets ready, cancelled after its
            # first progress notification: the wait stops, so `down` (which needs the
            # lock `up` holds while it waits) succeeds at once instead of timing out.
            cancelled = {"progress": []}
            first = anyio.Event()

            async def on_slow_progress(value, total, message):
                cancelled["progress"].append(message)
                first.set()

            async def slow_up():
                await session.call_tool(
                    "up", {"path": slow, "timeout_seconds": 120}, progress_callback=on_slow_progress
                )
                cancelled["returned"] = True

            async with anyio.create_task_group() as group:
                group.start_soon(slow_up)
                with anyio.fail_after(60):
                    await first.wait()
                # Let a beat or two of the wait go by, then give up on the call.
                await anyio.sleep(2.5)
                group.cancel_scope.cancel()
            cancelled["returned"] = cancelled.get("returned", False)
            started = time.monotonic()
            await call(session, report, "slow_down", "down", {"path": slow})
            cancelled["down_seconds"] = time.monotonic() - started
            report["cancel"] = cancelled

            # Down, and the stack no longer answers.
            await call(session, report, "down", "down", {"path": project, "release": True})
            await call(session, report, "status_after_down", "status", {"path": project})
            status, body = http_get(reported, "/hello.txt")
            report["http_after_down"] = {"status": status, "body": body}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        anyio.run(main, json.load(file))
