//! A profile in the ecosystem's formats: Brendan Gregg's collapsed stacks (what `flamegraph.pl`,
//! inferno and speedscope read), speedscope's own JSON file format, and a flame graph as SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{Path, Profile, View};

/// A frame name as collapsed stacks can carry it: `;` separates frames and a newline ends a
/// line, so both become something else.
fn collapsed_name(name: &str) -> String {
    name.replace(';', ",").replace(['\n', '\r'], " ")
}

/// One line per distinct stack: `thread 0;main;work 42` (frames root first, then the samples).
pub fn collapsed(profile: &Profile, view: View) -> String {
    let mut text = String::new();
    for (path, count) in profile.paths(view) {
        let frames: Vec<String> = path.iter().map(|name| collapsed_name(name)).collect();
        let _ = writeln!(text, "{} {count}", frames.join(";"));
    }
    text
}

/// Reads collapsed stacks back: each line's frames and count.
pub fn parse_collapsed(text: &str) -> Result<Vec<(Path, u64)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            let (stack, count) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("line {}: expected `frame;frame COUNT`, got `{line}`", number + 1))?;
            let count = count.parse().map_err(|_| format!("line {}: `{count}` is not a sample count", number + 1))?;
            Ok((stack.split(';').map(str::to_string).collect(), count))
        })
        .collect()
}

/// speedscope's file format (<https://www.speedscope.app/file-format-schema.json>): one
/// sampled profile per thread, weighted in nanoseconds (samples × the sampling period).
pub fn speedscope(profile: &Profile, view: View, name: &str) -> Value {
    let mut frames: Vec<String> = Vec::new();
    let mut frame_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut threads: BTreeMap<String, (Vec<Vec<usize>>, Vec<f64>)> = BTreeMap::new();
    for (path, count) in profile.paths(view) {
        let Some((thread, stack)) = path.split_first() else { continue };
        let indices = stack
            .iter()
            .map(|frame| {
                *frame_index.entry(frame.clone()).or_insert_with(|| {
                    frames.push(frame.clone());
                    frames.len() - 1
                })
            })
            .collect();
        let (samples, weights) = threads.entry(thread.clone()).or_default();
        samples.push(indices);
        weights.push(count as f64 * profile.period_ns);
    }
    let profiles: Vec<Value> = threads
        .into_iter()
        .map(|(thread, (samples, weights))| {
            let end: f64 = weights.iter().sum();
            json!({
                "type": "sampled",
                "name": thread,
                "unit": "nanoseconds",
                "startValue": 0,
                "endValue": end,
                "samples": samples,
                "weights": weights,
            })
        })
        .collect();
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": { "frames": frames.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>() },
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": concat!("conlab ", env!("CARGO_PKG_VERSION")),
    })
}

/// Total samples per frame name across a speedscope file, for checking an export.
pub fn speedscope_totals(file: &Value) -> Result<(f64, usize), String> {
    let frames = file["shared"]["frames"].as_array().ok_or("no shared.frames")?.len();
    let mut total = 0.0;
    for profile in file["profiles"].as_array().ok_or("no profiles")? {
        let samples = profile["samples"].as_array().ok_or("a profile without samples")?;
        let weights = profile["weights"].as_array().ok_or("a profile without weights")?;
        if samples.len() != weights.len() {
            return Err("samples and weights differ in length".into());
        }
        for sample in samples {
            let indices = sample.as_array().ok_or("a sample is not a list")?;
            if indices.iter().any(|i| i.as_u64().is_none_or(|i| i as usize >= frames)) {
                return Err("a sample names a frame that does not exist".into());
            }
        }
        total += weights.iter().filter_map(Value::as_f64).sum::<f64>();
    }
    Ok((total, frames))
}

/// A node of the flame graph: a frame in one calling context.
#[derive(Default)]
struct Node {
    count: u64,
    /// Samples that ended here with the thread waiting.
    waiting: u64,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn insert(&mut self, path: &[String], count: u64, waiting: bool) {
        self.count += count;
        match path.split_first() {
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest, count, waiting),
            None if waiting => self.waiting += count,
            None => {}
        }
    }

    fn depth(&self) -> usize {
        self.children.values().map(|child| 1 + child.depth()).max().unwrap_or(0)
    }
}

const WIDTH: f64 = 1200.0;
const ROW: f64 = 17.0;
const TOP: f64 = 34.0;

/// A flame graph: one box per frame in each calling context, as wide as its samples, callers
/// below callees (threads at the bottom), siblings in name order — Brendan Gregg's layout. Each
/// box's tooltip gives its samples and share; waits (in the wall-clock view) are drawn grey-blue.
pub fn flame_svg(profile: &Profile, view: View, title: &str) -> String {
    let mut root = Node::default();
    for (path, count, waiting) in profile.paths_waiting(view) {
        root.insert(&path, count, waiting);
    }
    let depth = root.depth().max(1);
    let height = TOP + depth as f64 * ROW + 24.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fdfaf4"/><text x="{}" y="20" text-anchor="middle" font-size="15">{}</text>"##,
        WIDTH / 2.0,
        escape(title)
    );
    let total = root.count.max(1) as f64;
    let view_name = match view {
        View::Wall => "wall-clock",
        View::OnCpu => "on-CPU",
    };
    let _ = write!(
        svg,
        r##"<text x="10" y="{}" font-size="11" fill="#555">{} samples, {view_name}; width is the share of samples</text>"##,
        height - 8.0,
        root.count
    );
    let mut x = 0.0;
    for (name, child) in &root.children {
        draw(&mut svg, name, child, x, 0, total, height);
        x += child.count as f64 / total * WIDTH;
    }
    svg.push_str("</svg>");
    svg
}

fn draw(svg: &mut String, name: &str, node: &Node, x: f64, level: usize, total: f64, height: f64) {
    let width = node.count as f64 / total * WIDTH;
    if width < 0.1 {
        return;
    }
    let y = height - 24.0 - (level + 1) as f64 * ROW;
    let share = node.count as f64 / total * 100.0;
    let _ = write!(
        svg,
        r#"<g class="frame" data-depth="{level}" data-samples="{}" data-name="{}"><title>{} — {} samples ({share:.1}%)</title><rect x="{x:.2}" y="{y:.1}" width="{width:.2}" height="{}" fill="{}" rx="2"/>"#,
        node.count,
        escape(name),
        escape(name),
        node.count,
        ROW - 1.0,
        color(name, level, node.waiting * 2 > node.count)
    );
    let fits = ((width - 6.0) / 7.0).floor() as usize;
    if fits >= 3 {
        let label: String = if name.chars().count() > fits {
            name.chars().take(fits.saturating_sub(2)).chain("..".chars()).collect()
        } else {
            name.to_string()
        };
        let _ = write!(svg, r#"<text x="{:.2}" y="{:.1}">{}</text>"#, x + 3.0, y + ROW - 5.0, escape(&label));
    }
    svg.push_str("</g>");
    let mut child_x = x;
    for (child_name, child) in &node.children {
        draw(svg, child_name, child, child_x, level + 1, total, height);
        child_x += child.count as f64 / total * WIDTH;
    }
}

/// The classic warm palette, fixed per name so that the same function keeps its colour; a frame
/// whose samples mostly found the thread waiting grey-blue, threads pale.
fn color(name: &str, level: usize, waiting: bool) -> String {
    if waiting {
        return "#a9b8c9".into();
    }
    if level == 0 {
        return "#e8dcc8".into();
    }
    let hash = name.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
    format!("rgb({},{},{})", 205 + hash % 50, 80 + (hash >> 8) % 130, (hash >> 16) % 55)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::profile::{ProfileBuilder, ThreadState};

    fn profile() -> Profile {
        let mut builder = ProfileBuilder::with_frames(vec!["main".into(), "a;b".into(), "work <hot>".into()], 1000.0);
        builder.add("thread 0", vec![0, 1], ThreadState::Running, 3);
        builder.add("thread 0", vec![0, 2], ThreadState::Running, 6);
        builder.add("thread 1", vec![0], ThreadState::Lock, 4);
        builder.finish()
    }

    #[test]
    fn collapsed_stacks_parse_back_with_the_same_totals() {
        let profile = profile();
        for view in [View::Wall, View::OnCpu] {
            let text = collapsed(&profile, view);
            let parsed = parse_collapsed(&text).unwrap();
            assert_eq!(parsed.iter().map(|(_, n)| n).sum::<u64>(), profile.samples(view), "{text}");
            assert!(parsed.iter().all(|(path, _)| path.len() >= 2), "{text}");
        }
        let wall = collapsed(&profile, View::Wall);
        assert!(wall.contains("thread 0;main;a,b 3\n"), "{wall}");
        assert!(wall.contains("thread 1;main;(waiting for a lock) 4\n"), "{wall}");
        assert!(parse_collapsed("main;x notanumber").is_err());
    }

    #[test]
    fn speedscope_files_hold_the_same_totals() {
        let profile = profile();
        let file = speedscope(&profile, View::Wall, "test");
        let text = serde_json::to_string(&file).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        let (total, frames) = speedscope_totals(&back).unwrap();
        assert_eq!(total, 13.0 * 1000.0);
        assert_eq!(frames, 4, "main, a;b, work <hot>, the lock wait");
        assert_eq!(back["profiles"].as_array().unwrap().len(), 2);
        let (cpu, _) = speedscope_totals(&speedscope(&profile, View::OnCpu, "test")).unwrap();
        assert_eq!(cpu, 9.0 * 1000.0);
    }

    #[test]
    fn the_flame_graph_draws_every_frame_with_its_share() {
        let svg = flame_svg(&profile(), View::Wall, "a <test>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("work &lt;hot&gt; — 6 samples (46.2%)"), "{svg}");
        assert!(svg.contains("(waiting for a lock) — 4 samples"), "{svg}");
        assert_eq!(svg.matches("<g class=\"frame\"").count(), 7, "2 threads, 2 mains, a;b, work, the wait");
        assert_eq!(svg.matches("#a9b8c9").count(), 1, "the one frame where the thread waited is drawn as a wait");
        assert!(!flame_svg(&profile(), View::OnCpu, "cpu").contains("waiting"));
    }
}
