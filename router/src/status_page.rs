//! The status page a router serves at `/ui` when started with
//! `--status-page`: the facts of `router status` (health, capacity, nodes,
//! chunks, the worker) and this router's request rate and latency over the
//! last minutes as charts. One HTML document with inline SVG, no scripts;
//! it reloads itself every 10 s. `/ui/status.json` is the same status as
//! JSON.

use std::fmt::Write;

use crate::recent::Point;
use crate::status::{human_bytes, NodeStatus, Status};

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d232a;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.sub{color:#5b6570;margin:0 0 16px}
.badge{padding:2px 10px;border-radius:10px;font-size:14px;vertical-align:middle;color:#fff}
.ok{background:#2e8540}.bad{background:#c0392b}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;min-width:200px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;background:#fff;border:1px solid #dde1e6}
th,td{padding:6px 12px;text-align:left;border-bottom:1px solid #eef0f2}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{width:160px;height:10px;background:#e3e7ec;border-radius:5px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar i{display:block;height:100%;background:#3572b0}
.live{color:#2e8540}.gone{color:#c0392b;font-weight:bold}.unknown{color:#b9770e}
svg{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin-right:12px}
";

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar filled to `part / whole`.
fn bar(part: u64, whole: u64) -> String {
    let percent = if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    };
    format!("<span class=bar><i style=\"width:{percent:.1}%\"></i></span>")
}

fn card(title: &str, value: &str, detail: &str) -> String {
    format!("<div class=card>{title}<b>{value}</b>{detail}</div>")
}

fn node_row(n: &NodeStatus) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td class={}>{}</td><td>{} {} of {}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
        escape(&n.id),
        escape(&n.addr),
        n.state,
        n.state,
        bar(n.used_bytes, n.capacity_bytes),
        human_bytes(n.used_bytes),
        human_bytes(n.capacity_bytes),
        human_bytes(n.free_bytes),
        n.replicas,
        n.quarantined
    )
}

/// An SVG line chart of `series` (name, colour, one value per point; None
/// is a gap) over the points' times.
fn chart(title: &str, unit: &str, series: &[(&str, &str, Vec<Option<f64>>)]) -> String {
    const W: f64 = 480.0;
    const H: f64 = 160.0;
    const LEFT: f64 = 48.0;
    const TOP: f64 = 28.0;
    const BOTTOM: f64 = 20.0;
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten())
        .fold(0.0f64, |m, &v| m.max(v));
    let top = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let n = series.first().map_or(0, |(_, _, v)| v.len()).max(2);
    let x = |i: usize| LEFT + (W - LEFT - 8.0) * i as f64 / (n - 1) as f64;
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / top);
    // Attribute values are quoted: unquoted, `stroke=#ccc/>` reads as the
    // value `#ccc/` and leaves the element open around everything after it.
    let mut svg = format!(
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{title}\">\
         <text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{title}</text>\
         <text x=\"8\" y=\"{}\" font-size=\"11\" fill=\"#5b6570\">{top:.1}</text>\
         <text x=\"8\" y=\"{}\" font-size=\"11\" fill=\"#5b6570\">0 {unit}</text>\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#dde1e6\"/>",
        y(top) + 4.0,
        y(0.0),
        y(0.0),
        W - 8.0,
        y(0.0)
    );
    let mut legend_x = 250.0;
    for (name, colour, values) in series {
        let _ = write!(
            svg,
            "<text x=\"{legend_x}\" y=\"18\" font-size=\"12\" fill=\"{colour}\">&#9644; {name}</text>"
        );
        legend_x += 90.0;
        // One polyline per run of values, so gaps stay gaps.
        for run in values
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .split(|(_, v)| v.is_none())
        {
            let points: Vec<String> = run
                .iter()
                .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(*i), y(v))))
                .collect();
            if !points.is_empty() {
                let _ = write!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                    points.join(" ")
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The page for `status` and this router's (`router`) recent `points`.
pub fn page(status: &Status, points: &[Point], router: &str) -> String {
    let mut html = String::from("<!doctype html><html lang=en><head><meta charset=utf-8>");
    html.push_str("<meta http-equiv=refresh content=10><title>bucketfs status</title><style>");
    html.push_str(STYLE);
    html.push_str("</style></head><body>");
    let (class, word) = if status.is_healthy() {
        ("ok", "healthy")
    } else {
        ("bad", "degraded")
    };
    let _ = write!(
        html,
        "<h1>bucketfs cluster <span class=\"badge {class}\">{word}</span></h1>\
         <p class=sub>served by router {} &middot; Postgres {} &middot; ZooKeeper {}</p>",
        escape(router),
        probe_text(&status.postgres),
        probe_text(&status.zookeeper)
    );

    let live: Vec<&NodeStatus> = status.nodes.iter().filter(|n| n.state == "live").collect();
    let capacity: u64 = live.iter().map(|n| n.capacity_bytes).sum();
    let used: u64 = live.iter().map(|n| n.used_bytes).sum();
    let gone = status.nodes.iter().filter(|n| n.state == "gone").count();
    html.push_str("<div class=cards>");
    html.push_str(&card(
        "Capacity (live nodes)",
        &format!("{} of {}", human_bytes(used), human_bytes(capacity)),
        &format!("{} used", bar(used, capacity)),
    ));
    html.push_str(&card(
        "Storage nodes",
        &format!("{} live", live.len()),
        &format!("{gone} gone"),
    ));
    match &status.chunks {
        Some(c) => html.push_str(&card(
            "Chunks",
            &format!("{} under-replicated", c.under_replicated),
            &format!(
                "{} total, {} unavailable, {} quarantined; {} replicas wanted",
                c.total, c.unavailable, c.quarantined, c.replicas_wanted
            ),
        )),
        None => html.push_str(&card("Chunks", "unknown", "Postgres or ZooKeeper did not answer")),
    }
    match &status.worker {
        Some(w) => html.push_str(&card(
            "Background worker",
            &escape(&w.leader),
            &format!(
                "{} passes; last repaired {}, left {}, collected {}{}",
                w.passes,
                w.repaired,
                w.repair_left,
                w.collected,
                w.finished_secs_ago
                    .map(|s| format!("; finished {s:.0} s ago"))
                    .unwrap_or_default()
            ),
        )),
        None => html.push_str(&card("Background worker", "no pass yet", "")),
    }
    html.push_str("</div><h2>Storage nodes</h2><table><tr><th>node</th><th>address</th><th>state</th><th>space used</th><th>free</th><th>replicas</th><th>quarantined</th></tr>");
    for n in &status.nodes {
        html.push_str(&node_row(n));
    }
    html.push_str("</table><h2>Requests on this router, last 15 minutes</h2>");
    let rates = [
        (
            "requests",
            "#3572b0",
            points.iter().map(|p| Some(p.requests_per_sec)).collect(),
        ),
        (
            "5xx",
            "#c0392b",
            points.iter().map(|p| Some(p.errors_per_sec)).collect(),
        ),
    ];
    html.push_str(&chart("Requests per second", "/s", &rates));
    let latency = [
        ("p50", "#3572b0", points.iter().map(|p| p.p50_ms).collect()),
        ("p99", "#b9770e", points.iter().map(|p| p.p99_ms).collect()),
    ];
    html.push_str(&chart("Latency (ms)", "ms", &latency));
    html.push_str("</body></html>");
    html
}

fn probe_text(probe: &crate::status::Probe) -> String {
    match (probe.ok, probe.ms, &probe.error) {
        (true, Some(ms), _) => format!("<span class=live>ok</span> ({ms:.1} ms)"),
        (true, None, _) => "<span class=live>ok</span>".into(),
        (false, _, e) => format!(
            "<span class=gone>down</span> {}",
            escape(e.as_deref().unwrap_or_default())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_charts_keep_their_gaps() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
        let svg = chart(
            "t",
            "ms",
            &[("p50", "#000", vec![Some(1.0), None, Some(2.0), Some(3.0)])],
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // Every self-closed element ends after a quoted value.
        for part in svg
            .split("/>")
            .filter(|p| !p.is_empty() && !p.ends_with("</svg>"))
        {
            assert!(part.ends_with('"'), "an element runs into its `/>`: {part}");
        }
    }
}
