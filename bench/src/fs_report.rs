//! The filesystem benchmark's report: its rows, the targets said met
//! or missed, and the chart.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

/// One row of results: the workload, its unit and whether more is better.
#[derive(Clone, serde::Serialize)]
pub struct Row {
    pub workload: String,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub values: BTreeMap<String, f64>,
}

/// The FUSE-over-object-store peers bucketfs is held against.
pub const PEERS: [&str; 3] = ["s3fs", "rclone", "moosefs"];

/// The targets, each said met or missed with its figures.
pub fn targets_met(rows: &[Row]) -> String {
    let get = |w: &str, t: &str| {
        rows.iter()
            .find(|r| r.workload.starts_with(w))
            .and_then(|r| r.values.get(t).copied())
    };
    let mut out = String::from("\nTargets:\n");
    let mut line = |ok: Option<bool>, text: String| {
        let mark = match ok {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        out.push_str(&format!("- {mark}: {text}\n"));
    };
    let behind: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let b = *r.values.get("bucketfs")?;
            let lost: Vec<&str> = PEERS
                .iter()
                .filter(|p| {
                    r.values
                        .get(**p)
                        .is_some_and(|v| if r.higher_is_better { *v > b } else { *v < b })
                })
                .copied()
                .collect();
            (!lost.is_empty()).then(|| format!("{} (behind {})", r.workload, lost.join(", ")))
        })
        .collect();
    let measured = rows.iter().any(|r| r.values.contains_key("bucketfs"));
    line(
        measured.then_some(behind.is_empty()),
        if behind.is_empty() {
            "bucketfs at least as fast as every peer on every row".into()
        } else {
            format!(
                "bucketfs at least as fast as every peer; behind on: {}",
                behind.join("; ")
            )
        },
    );
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let r = ratio(get("seq read", "bucketfs"), get("seq read", "bindfs"));
    line(
        r.map(|r| r >= 0.7),
        format!("sequential read ≥ 0.70× bindfs: {}", fmt_ratio(r)),
    );
    let r = ratio(get("seq write", "bucketfs"), get("seq write", "moosefs"));
    line(
        r.map(|r| r >= 1.5),
        format!("sequential write ≥ 1.5× MooseFS: {}", fmt_ratio(r)),
    );
    let c = get("create", "bucketfs");
    line(
        c.map(|c| c >= 1000.0),
        format!(
            "create ≥ 1,000 files/s: {}",
            c.map_or("—".into(), |c| format!("{c:.0}"))
        ),
    );
    let r = ratio(get("tar -x", "bucketfs"), get("tar -x", "moosefs"));
    line(
        r.map(|r| r < 2.0 / 3.0),
        format!("tar -x < 2/3 of MooseFS's time: {}", fmt_ratio(r)),
    );
    out
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

/// A PNG bar chart (gnuplot) of each target relative to the local directory,
/// so rows of different units share one axis.
pub fn chart(stem: &Path, rows: &[Row], names: &[&str]) -> Result<()> {
    let data = stem.with_extension("dat");
    let mut text = format!("workload {}\n", names.join(" "));
    for row in rows {
        let Some(local) = row.values.get("local").copied().filter(|v| *v > 0.0) else {
            continue;
        };
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                row.values.get(*n).map_or("0".into(), |v| {
                    let rel = if row.higher_is_better {
                        v / local
                    } else {
                        local / v
                    };
                    format!("{rel:.4}")
                })
            })
            .collect();
        let label = row
            .workload
            .split(" (")
            .next()
            .unwrap_or(&row.workload)
            .replace(' ', "_");
        text.push_str(&format!("\"{label}\" {}\n", cells.join(" ")));
    }
    fs::write(&data, text)?;
    let script = format!(
        "set terminal png size 1400,600 noenhanced\nset output '{}'\n\
         set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n\
         set logscale y\nset ylabel 'relative to local directory (higher is better)'\n\
         set xtics rotate by -30\nset key top right\nset grid ytics\n\
         plot for [i=2:{}] '{}' using i:xtic(1) title columnheader(i)\n",
        stem.with_extension("png").display(),
        names.len() + 1,
        data.display()
    );
    let plot = stem.with_extension("gp");
    fs::write(&plot, &script)?;
    let out = Command::new("gnuplot").arg(&plot).output();
    let _ = fs::remove_file(&plot);
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => println!("gnuplot failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("gnuplot not available: {e}"),
    }
    let _ = fs::remove_file(&data);
    Ok(())
}
