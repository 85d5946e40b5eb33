// Multi-agent traces: keep only the top-level agent's conversation.
//
// An orchestrator that delegates to sub-agents produces one trace holding every agent's LLM
// calls. For topics about what the *user* wanted, the sub-agents' internal chatter is noise: this
// plugin keeps the segments that happened in the outermost agent (`invoke_agent` span), plus
// anything outside any agent. The orchestrator's calls to sub-agents (tool calls) stay.
//
// Config:
//   preprocess:
//     plugins:
//       multi_agent: { path: plugins/multi_agent.js }

function render(s) {
  switch (s.kind) {
    case "tool_call": return "[" + s.role + " tool_call " + (s.name || "unknown") + "] " + s.text;
    case "tool_result": return s.name ? "[tool " + s.name + "] " + s.text : "[tool] " + s.text;
    case "reasoning": return "[" + s.role + " reasoning] " + s.text;
    default: return "[" + s.role + "] " + s.text;
  }
}

function topLevelAgent(trace) {
  const byId = {};
  for (const span of trace.spans) byId[span.spanId] = span;
  const isAgent = (span) =>
    span.attributes["gen_ai.operation.name"] === "invoke_agent" || span.name.startsWith("invoke_agent");
  let best = null;
  for (const span of trace.spans) {
    if (!isAgent(span)) continue;
    // Outermost: no agent among its ancestors.
    let parent = byId[span.parentSpanId];
    let nested = false;
    for (let hops = 0; parent && hops < 1000; hops++) {
      if (isAgent(parent)) { nested = true; break; }
      parent = byId[parent.parentSpanId];
    }
    if (!nested && (best === null || Number(span.startTimeUnixNano) < Number(best.startTimeUnixNano))) best = span;
  }
  if (best === null) return null;
  return best.attributes["gen_ai.agent.name"] || best.name.replace(/^invoke_agent\s*/, "");
}

function preprocess(trace) {
  const top = topLevelAgent(trace);
  const segments = defaultSegments(trace);
  if (top === null) return segments.map(render);
  return segments.filter((s) => s.agent === null || s.agent === top).map(render);
}
