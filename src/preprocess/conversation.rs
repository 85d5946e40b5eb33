//! Walks a trace's spans in parent/time order and assembles the one conversation they describe:
//! every message once, in order, with tool calls, tool results and errors in place, and the
//! trace metadata later stages need.

use super::conventions::{self, Extracted, agent_name, is_scorer};
use super::messages::Msg;
use super::trace::{Attributes, LogView, SpanView, TraceView};
use super::{Kind, Role, Segment, TraceMeta};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The conversation under construction. Each source's message list is merged by walking it
/// against what is already there: a message found at or after the cursor is a repeat (history
/// re-sent to the next LLM call), anything else is new. Legitimately repeated messages ("yes",
/// "yes") stay, because the cursor only moves forward.
#[derive(Default)]
struct Conversation {
    segments: Vec<Segment>,
    /// Positions of each message identity (a 64-bit hash: every LLM call re-sends the history,
    /// so comparing full texts would dominate the cost; a collision is vanishingly unlikely).
    positions: HashMap<u64, Vec<usize>>,
    tool_names: HashMap<String, String>,
    errors: HashSet<String>,
}

impl Conversation {
    /// Identity of a message: role, kind, tool name for calls (results are named inconsistently
    /// across conventions; their content identifies them) and whitespace-normalized text.
    fn key(msg: &Msg) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = rustc_hash::FxHasher::default();
        (msg.role, msg.kind).hash(&mut hasher);
        if msg.kind == Kind::ToolCall {
            msg.name.hash(&mut hasher);
        }
        for word in msg.text.split_whitespace() {
            hasher.write(word.as_bytes());
            hasher.write_u8(0xff);
        }
        hasher.finish()
    }

    /// Merges `list`, treating as repeats only messages found at or after `start`.
    fn merge(&mut self, list: Vec<Msg>, start: usize, span_id: &str, agent: Option<&String>) {
        let mut cursor = start;
        for mut msg in list {
            let key = Self::key(&msg);
            let found = self.positions.get(&key).and_then(|positions| {
                let i = positions.partition_point(|&p| p < cursor);
                positions.get(i).copied()
            });
            if let Some(position) = found {
                cursor = position + 1;
                continue;
            }
            if let (Some(id), Some(name)) = (&msg.id, &msg.name) {
                self.tool_names
                    .entry(id.clone())
                    .or_insert_with(|| name.clone());
            }
            if msg.name.is_none() {
                msg.name = msg
                    .id
                    .as_ref()
                    .and_then(|id| self.tool_names.get(id))
                    .cloned();
            }
            self.positions
                .entry(key)
                .or_default()
                .push(self.segments.len());
            if let std::borrow::Cow::Owned(stripped) = super::values::strip_attachments(&msg.text) {
                msg.text = stripped;
            }
            self.segments.push(Segment {
                role: msg.role,
                kind: msg.kind,
                name: msg.name,
                text: msg.text,
                span_id: span_id.to_string(),
                agent: agent.cloned(),
            });
            cursor = self.segments.len();
        }
    }

    fn error(&mut self, text: String, span_id: &str, agent: Option<&String>) {
        // The same exception recorded again on a parent span is one error: compare without the
        // span name prefix.
        let key = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, rest)| rest);
        if self.errors.insert(key.to_string()) {
            self.segments.push(Segment {
                role: Role::Error,
                kind: Kind::Error,
                name: None,
                text,
                span_id: span_id.to_string(),
                agent: agent.cloned(),
            });
        }
    }
}

/// The default preprocessor's conversation and the trace's metadata.
pub fn assemble(trace: &TraceView) -> (Vec<Segment>, TraceMeta) {
    let mut meta = TraceMeta {
        trace_id: trace.trace_id.clone(),
        span_count: trace.spans.len(),
        log_record_count: trace.logs.len(),
        ..Default::default()
    };
    let by_id: HashMap<&str, usize> = trace
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, span) in trace.spans.iter().enumerate() {
        match by_id.get(span.parent_span_id.as_str()) {
            Some(&parent) if !span.parent_span_id.is_empty() && parent != i => {
                children.entry(parent).or_default().push(i)
            }
            _ => roots.push(i),
        }
    }
    let order = |list: &mut Vec<usize>| {
        list.sort_by_key(|&i| {
            let s = &trace.spans[i];
            (
                s.start_time_unix_nano,
                std::cmp::Reverse(s.end_time_unix_nano),
            )
        })
    };
    order(&mut roots);
    children.values_mut().for_each(order);

    // Log records join their span; those without one join the first root (or stand alone).
    let mut logs_of: HashMap<usize, Vec<&LogView>> = HashMap::new();
    let mut orphan_logs = Vec::new();
    for log in &trace.logs {
        match by_id.get(log.span_id.as_str()) {
            Some(&i) => logs_of.entry(i).or_default().push(log),
            None => orphan_logs.push(log),
        }
    }
    match roots.first() {
        Some(&root) => logs_of
            .entry(root)
            .or_default()
            .extend(orphan_logs.iter().copied()),
        None if !orphan_logs.is_empty() => {
            let ex = conventions::extract(&SpanView::default(), &orphan_logs);
            let mut conversation = Conversation::default();
            apply_inputs(&mut conversation, &ex, "", None);
            apply_outputs(&mut conversation, ex, 0, "", None);
            meta.error_count = conversation.errors.len();
            return (conversation.segments, meta);
        }
        None => {}
    }

    let mut conversation = Conversation::default();
    let mut fallback = Vec::new();
    let mut usage_spans: Vec<(usize, (u64, u64))> = Vec::new();
    // Explicit stack: a hostile trace may nest deeper than the thread stack allows recursion.
    enum Step {
        Enter(usize, Option<String>),
        /// The span, what it said, its agent, and where the conversation stood after its
        /// inputs: its outputs are new from there on.
        Leave(usize, Extracted, Option<String>, usize),
    }
    let mut stack: Vec<Step> = roots.iter().rev().map(|&i| Step::Enter(i, None)).collect();
    let mut visited = vec![false; trace.spans.len()];
    while let Some(step) = stack.pop() {
        match step {
            Step::Enter(i, agent) => {
                if std::mem::replace(&mut visited[i], true) {
                    continue;
                }
                let span = &trace.spans[i];
                if is_scorer(span) {
                    meta.dropped_scorer_spans += count_subtree(i, &children);
                    continue;
                }
                collect_meta(span, &mut meta);
                if let Some(usage) = usage_of(&span.attributes) {
                    usage_spans.push((i, usage));
                }
                let agent = agent_name(span).or(agent);
                let logs = logs_of.remove(&i).unwrap_or_default();
                let mut ex = conventions::extract(span, &logs);
                apply_inputs(&mut conversation, &ex, &span.span_id, agent.as_ref());
                fallback.append(&mut ex.fallback);
                let after_inputs = conversation.segments.len();
                stack.push(Step::Leave(i, ex, agent.clone(), after_inputs));
                if let Some(kids) = children.get(&i) {
                    stack.extend(kids.iter().rev().map(|&k| Step::Enter(k, agent.clone())));
                }
            }
            Step::Leave(i, ex, agent, after_inputs) => {
                apply_outputs(
                    &mut conversation,
                    ex,
                    after_inputs,
                    &trace.spans[i].span_id,
                    agent.as_ref(),
                );
            }
        }
    }
    let has_dialogue = conversation
        .segments
        .iter()
        .any(|s| matches!(s.role, Role::User | Role::Assistant | Role::Tool));
    if !has_dialogue && !fallback.is_empty() {
        let root = roots
            .first()
            .map(|&r| trace.spans[r].span_id.clone())
            .unwrap_or_default();
        let errors: Vec<Segment> = std::mem::take(&mut conversation.segments);
        conversation.positions.clear();
        conversation.merge(fallback, 0, &root, None);
        conversation.segments.extend(errors);
    }
    meta.error_count = conversation.errors.len();
    // Usage is counted on the innermost spans that report it: wrappers repeat their children's.
    let with_usage: HashSet<usize> = usage_spans.iter().map(|(i, _)| *i).collect();
    for (i, (input, output)) in &usage_spans {
        let wraps_another = children
            .get(i)
            .is_some_and(|kids| subtree_any(kids, &children, &with_usage));
        if !wraps_another {
            meta.input_tokens += input;
            meta.output_tokens += output;
        }
    }
    if let Some(&root) = roots.first() {
        let root = &trace.spans[root];
        for (key, value) in root.resource.iter().chain(root.attributes.iter()) {
            let text = match value {
                Value::String(s) if s.len() <= 256 => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            meta.attributes.insert(key.clone(), text);
        }
        meta.root_span_name = root.name.clone();
        meta.duration_ms = root
            .end_time_unix_nano
            .saturating_sub(root.start_time_unix_nano)
            / 1_000_000;
    }
    (conversation.segments, meta)
}

fn apply_inputs(
    conversation: &mut Conversation,
    ex: &Extracted,
    span_id: &str,
    agent: Option<&String>,
) {
    for list in &ex.inputs {
        conversation.merge(list.clone(), 0, span_id, agent);
    }
}

/// A span's outputs are what it produced after its inputs: a message the conversation holds
/// only from before them (a retried tool call with the same arguments) is said again, not a
/// repeat.
fn apply_outputs(
    conversation: &mut Conversation,
    ex: Extracted,
    after_inputs: usize,
    span_id: &str,
    agent: Option<&String>,
) {
    for list in ex.outputs {
        conversation.merge(list, after_inputs, span_id, agent);
    }
    for error in ex.errors {
        conversation.error(error, span_id, agent);
    }
}

fn count_subtree(root: usize, children: &HashMap<usize, Vec<usize>>) -> usize {
    let mut count = 0;
    let mut stack = vec![root];
    let mut seen = HashSet::new();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            count += 1;
            stack.extend(children.get(&i).into_iter().flatten().copied());
        }
    }
    count
}

fn subtree_any(
    kids: &[usize],
    children: &HashMap<usize, Vec<usize>>,
    set: &HashSet<usize>,
) -> bool {
    let mut stack: Vec<usize> = kids.to_vec();
    let mut seen = HashSet::new();
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        if set.contains(&i) {
            return true;
        }
        stack.extend(children.get(&i).into_iter().flatten().copied());
    }
    false
}

fn number(attrs: &Attributes, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| match attrs.get(*k)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

fn usage_of(a: &Attributes) -> Option<(u64, u64)> {
    let input = number(
        a,
        &[
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "ai.usage.promptTokens",
            "ai.usage.inputTokens",
        ],
    );
    let output = number(
        a,
        &[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "ai.usage.completionTokens",
            "ai.usage.outputTokens",
        ],
    );
    (input.is_some() || output.is_some()).then(|| (input.unwrap_or(0), output.unwrap_or(0)))
}

fn collect_meta(span: &SpanView, meta: &mut TraceMeta) {
    let text = |attrs: &Attributes, keys: &[&str]| {
        keys.iter()
            .find_map(|k| {
                attrs
                    .get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_string)
    };
    if meta.service_name.is_none() {
        meta.service_name = text(&span.resource, &["service.name"]);
    }
    let a = &span.attributes;
    if meta.user_id.is_none() {
        meta.user_id = text(
            a,
            &[
                "user.id",
                "enduser.id",
                "langfuse.user.id",
                "ai.telemetry.metadata.userId",
            ],
        )
        .or_else(|| text(&span.resource, &["user.id", "enduser.id"]));
    }
    if meta.session_id.is_none() {
        meta.session_id = text(
            a,
            &[
                "session.id",
                "gen_ai.conversation.id",
                "langfuse.session.id",
                "ai.telemetry.metadata.sessionId",
            ],
        );
    }
    for key in [
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.model_name",
        "ai.model.id",
    ] {
        if let Some(model) = a.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            if !meta.models.iter().any(|m| m == model) {
                meta.models.push(model.to_string());
            }
            break;
        }
    }
}
