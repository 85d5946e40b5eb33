//! The `topics` and `cluster` commands. redb locks its file while the sidecar runs, so they ask
//! the running sidecar's admin endpoint first and open the file themselves only when no sidecar
//! answers (`topics regenerate` needs the sidecar: the map it builds is the one it publishes).

use super::adhoc::{self, ClusterReport, ClusterRequest};
use super::admin::{FacetView, TopicsView};
use super::automation::{configured_facets, initial_state};
use super::labels::{labels_text, window_label_counts};
use crate::config::Config;
use crate::store::topics as topic_store;
use std::time::Duration;

/// Why the admin endpoint gave no answer.
enum AdminError {
    /// Nothing listens: no sidecar runs with this config.
    NotRunning(String),
    Failed(String),
}

fn admin_base(config: &Config) -> String {
    let endpoint = &config.topics.admin.endpoint;
    // A wildcard listen address is reached through loopback.
    let host = match endpoint.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "[::1]",
        host => host,
    };
    format!("http://{host}:{}", endpoint.port)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// Reading maps is quick; a sidecar that does not answer this in time is stuck.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one request to the admin endpoint; the answer's JSON on success.
/// `timeout` bounds the whole exchange: a wedged sidecar must not hang a script that calls us.
fn call_admin(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
    timeout: Duration,
) -> Result<serde_json::Value, AdminError> {
    let url = format!("{}{path}", admin_base(config));
    runtime().block_on(async {
        let client = crate::config::tls::http_client_builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            .build()
            .map_err(|e| AdminError::Failed(e.to_string()))?;
        let mut request = client.request(method, &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                AdminError::NotRunning(format!("no sidecar answers at {url}"))
            } else if e.is_timeout() {
                AdminError::Failed(format!(
                    "{url} did not answer within {}; the sidecar goes on with the work, \
                     `tracetopics topics show` shows the result once it is done",
                    humantime::format_duration(timeout)
                ))
            } else {
                AdminError::Failed(format!("{url}: {e}"))
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| AdminError::Failed(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.is_success() {
            Ok(value)
        } else {
            Err(AdminError::Failed(value["error"].as_str().map_or_else(
                || format!("{url} answered {status}"),
                str::to_string,
            )))
        }
    })
}

fn open_local(config: &Config) -> Result<redb::Database, String> {
    if !config.storage.path.exists() {
        return Err(format!(
            "no storage file at {}: nothing was stored yet",
            config.storage.path.display()
        ));
    }
    crate::store::open(&config.storage)
        .map(|(db, _)| db)
        .map_err(|e| {
            format!(
                "{e} (if a sidecar holds the file, its admin endpoint {} did not answer)",
                admin_base(config)
            )
        })
}

/// `topics regenerate --facet NAME`: asks the running sidecar to rebuild the map now.
pub fn regenerate(config: &Config, facet: &str, timeout: Duration) -> Result<String, String> {
    let path = format!("/topics/{facet}/regenerate");
    match call_admin(config, reqwest::Method::POST, &path, None, timeout) {
        Ok(map) => {
            let map: super::TopicMap =
                serde_json::from_value(map).map_err(|e| format!("unexpected answer: {e}"))?;
            Ok(render_map(&map))
        }
        Err(AdminError::NotRunning(why)) => Err(format!(
            "{why}; start the sidecar (`tracetopics run`) to regenerate its maps"
        )),
        Err(AdminError::Failed(why)) => Err(why),
    }
}

/// `topics show [--facet NAME]`: the current maps, from the sidecar or the storage file.
pub fn show(config: &Config, facet: Option<&str>) -> Result<String, String> {
    let views: Vec<FacetView> =
        match call_admin(config, reqwest::Method::GET, "/topics", None, SHOW_TIMEOUT) {
            Ok(value) => {
                serde_json::from_value::<TopicsView>(value)
                    .map_err(|e| format!("unexpected answer: {e}"))?
                    .facets
            }
            Err(AdminError::Failed(why)) => return Err(why),
            Err(AdminError::NotRunning(_)) => {
                let db = open_local(config)?;
                configured_facets(config)
                    .into_iter()
                    .map(|f| -> Result<FacetView, String> {
                        let labels = window_label_counts(&db, config, &f, now_ms());
                        Ok(FacetView {
                            state: topic_store::state(&db, &f)
                                .map_err(|e| e.to_string())?
                                .unwrap_or_else(|| initial_state(labels.is_some())),
                            map: topic_store::latest(&db, &f).map_err(|e| e.to_string())?,
                            labels,
                            facet: f,
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
    let chosen: Vec<&FacetView> = views
        .iter()
        .filter(|v| facet.is_none_or(|f| v.facet == f))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "unknown facet `{}`; configured: {}",
            facet.unwrap_or_default(),
            views
                .iter()
                .map(|v| v.facet.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut out = String::new();
    for view in chosen {
        match &view.map {
            Some(map) => out.push_str(&render_map(map)),
            None if view.labels.is_some() => out.push_str(&format!(
                "facet `{}`: labelled; no map of its reasons yet\n",
                view.facet
            )),
            None => out.push_str(&format!("facet `{}`: no map yet\n", view.facet)),
        }
        if let Some(counts) = &view.labels {
            out.push_str(&format!("  {}\n", labels_text(counts)));
        }
        let state = &view.state;
        out.push_str(&format!(
            "  state: {}",
            serde_json::to_value(state.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ));
        if let Some(e) = &state.last_error {
            out.push_str(&format!(" (last error: {e})"));
        }
        if view.map.is_some() {
            out.push_str(&format!("\n  {}", next_rebuild_text(state, now_ms())));
        }
        out.push_str("\n\n");
    }
    Ok(out)
}

/// One map as a table: id, share, size, name, keywords.
pub fn render_map(map: &super::TopicMap) -> String {
    let mut out = format!(
        "facet `{}`: version {}, {} topics from {} summaries, {}",
        map.facet,
        map.version,
        map.topics.len(),
        map.sample,
        noise_text(map)
    );
    if let Some(c) = &map.changes {
        out.push('\n');
        out.push_str(&changes_text(c, map.topics.len()));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:>5}  {:>6}  {:>6}  {:<40}  {}\n",
        "id", "share", "size", "name", "keywords"
    ));
    for t in &map.topics {
        out.push_str(&format!(
            "{:>5}  {:>5.1}%  {:>6}  {:<40}  {}\n",
            t.id,
            t.share * 100.0,
            t.size,
            adhoc::truncate(&t.name, 40) + if t.named { "" } else { " *" },
            t.keywords
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if map.topics.iter().any(|t| !t.named) {
        out.push_str("  * keyword name: naming failed, retried later\n");
    }
    out
}

fn now_ms() -> u64 {
    super::automation::now_ms()
}

/// "next rebuild: 2026-12-05T17:00:00Z (in 23h 59m) or once 1600 summaries are stored (800
/// when this map was built), whichever comes first".
pub fn next_rebuild_text(state: &super::FacetState, now_ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(state.due_ms);
    let mut text = format!("next rebuild: {}", humantime::format_rfc3339_seconds(at));
    if state.due_ms > now_ms {
        // Minutes are precise enough; seconds would make every `show` differ.
        let minutes = Duration::from_secs((state.due_ms - now_ms) / 60_000 * 60);
        text.push_str(&format!(" (in {})", humantime::format_duration(minutes)));
    } else {
        text.push_str(" (due now)");
    }
    if let Some(at) = state.rebuild_at_records {
        text.push_str(&format!(" or once {at} summaries are stored"));
        if let Some(built) = state.map_records {
            text.push_str(&format!(" ({built} when this map was built)"));
        }
        text.push_str(", whichever comes first");
    }
    text
}

/// "3.2% noise (11.0% before outlier reassignment)".
fn noise_text(map: &super::TopicMap) -> String {
    let mut text = format!("{:.1}% noise", map.noise_share * 100.0);
    if let Some(before) = map.noise_before_reassignment {
        text.push_str(&format!(
            " ({:.1}% before outlier reassignment)",
            before * 100.0
        ));
    }
    text
}

/// All five counts, so that both sides add up (now = kept + split + new; before = kept +
/// merged + retired), and what the stability score means.
pub fn changes_text(c: &super::MapChanges, topics_now: usize) -> String {
    let before = c.kept.len() + c.merged.len() + c.retired.len();
    let mut out = format!(
        "  vs version {}: {} kept, {} split off, {} new (= {} topics now); \
         {} merged into others, {} retired (of {} before)",
        c.previous_version,
        c.kept.len(),
        c.split.len(),
        c.new.len(),
        topics_now,
        c.merged.len(),
        c.retired.len(),
        before
    );
    if let Some(s) = c.stability {
        out.push_str(&format!(
            "\n  stability {s:.2}: adjusted Rand index of how both versions group the traces \
             their samples share (1 = same grouping, 0 = no more alike than chance)"
        ));
    }
    out
}

/// `cluster`: ad-hoc clustering of a filtered subset, through the sidecar or locally (with a
/// progress bar). Returns the rendered table, or the report as JSON.
pub fn cluster(
    config: &Config,
    request: &ClusterRequest,
    as_json: bool,
    timeout: Duration,
) -> Result<String, String> {
    adhoc::plan(config, request)?;
    let body = serde_json::to_string(request).expect("requests serialize");
    let report: ClusterReport = match call_admin(
        config,
        reqwest::Method::POST,
        "/cluster",
        Some(body),
        timeout,
    ) {
        Ok(value) => {
            serde_json::from_value(value).map_err(|e| format!("unexpected answer: {e}"))?
        }
        Err(AdminError::Failed(why)) => return Err(why),
        Err(AdminError::NotRunning(_)) => cluster_locally(config, request)?,
    };
    Ok(if as_json {
        serde_json::to_string_pretty(&report).expect("reports serialize")
    } else {
        adhoc::render(&report)
    })
}

fn cluster_locally(config: &Config, request: &ClusterRequest) -> Result<ClusterReport, String> {
    let db = open_local(config)?;
    let bar = indicatif::ProgressBar::new(100);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:<20} [{bar:30}] {percent:>3}%  {elapsed}",
        )
        .expect("valid template"),
    );
    let progress = |stage: &str, done: f32| {
        if bar.message() != stage {
            bar.set_message(stage.to_string());
        }
        bar.set_position((done * 100.0) as u64);
    };
    let result = adhoc::cluster(&db, config, request, super::automation::now_ms(), &progress);
    let (mut map, matched) = match result {
        Ok(built) => built,
        Err(e) => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    bar.set_message("naming topics");
    bar.set_position(0);
    bar.enable_steady_tick(Duration::from_millis(120));
    let named = runtime().block_on(adhoc::name(config, &mut map));
    bar.finish_and_clear();
    named?;
    Ok(adhoc::report(&map, matched, request.samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::{MapChanges, Topic, TopicMap};

    fn topic(id: u32) -> Topic {
        Topic {
            id,
            name: format!("topic {id}"),
            description: String::new(),
            named: true,
            keywords: vec!["refund".into()],
            centroid: vec![1.0, 0.0],
            threshold: 0.1,
            size: 10,
            share: 0.1,
            exemplars: Vec::new(),
        }
    }

    #[test]
    fn show_prints_all_five_counts_and_says_what_stability_is() {
        // Before: 1, 2, 3, 4, 5. Now: 1 and 2 kept, 7 split off 3, 8 new; 4 merged into 1,
        // 3 and 5 retired.
        let map = TopicMap {
            facet: "task".into(),
            version: 2,
            created_ms: 0,
            embedding_model: "m".into(),
            dim: 2,
            params: crate::cluster::ClusterConfig::default(),
            sample: 100,
            noise_share: 0.032,
            noise_before_reassignment: Some(0.11),
            distance_threshold: 0.2,
            topics: [1, 2, 7, 8].into_iter().map(topic).collect(),
            changes: Some(MapChanges {
                previous_version: 1,
                kept: vec![1, 2],
                split: vec![(7, 3)],
                merged: vec![(4, 1)],
                new: vec![8],
                retired: vec![3, 5],
                stability: Some(0.8312),
            }),
        };
        let text = render_map(&map);
        assert!(
            text.contains("3.2% noise (11.0% before outlier reassignment)"),
            "{text}"
        );
        assert!(
            text.contains(
                "vs version 1: 2 kept, 1 split off, 1 new (= 4 topics now); \
                 1 merged into others, 2 retired (of 5 before)"
            ),
            "{text}"
        );
        assert!(
            text.contains("stability 0.83: adjusted Rand index of how both versions group"),
            "{text}"
        );
    }
}
