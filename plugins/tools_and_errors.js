// Tools and errors only: for an "Issues" style facet that should look at what the agent *did*
// and what failed, not at the chat. Keeps tool calls, tool results and error lines; skips traces
// that used no tool and had no error (returns null: nothing to facet).
//
// Config (per facet, once facets exist; or globally):
//   preprocess:
//     plugins:
//       tools_and_errors: { path: plugins/tools_and_errors.js }

function preprocess(trace) {
  const kept = defaultSegments(trace).filter(
    (s) => s.kind === "tool_call" || s.kind === "tool_result" || s.kind === "error");
  if (kept.length === 0) return null;
  return kept.map((s) => {
    switch (s.kind) {
      case "tool_call": return "[tool_call " + (s.name || "unknown") + "] " + s.text;
      case "tool_result": return "[tool_result " + (s.name || "unknown") + "] " + s.text;
      default: return "[error] " + s.text;
    }
  });
}
