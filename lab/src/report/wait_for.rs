//! The wait-for graph of a deadlock found by [`conlab_core::sim`]: a circle per blocked thread, an
//! arrow from each waiter to the thread holding what it waits for, labelled with the lock; the
//! cycle drawn in red.

use std::fmt::Write;

use super::xml_escape;
use conlab_core::sim::Failure;

/// The graph as SVG, or `None` when `failure` is not a deadlock.
pub fn wait_for_svg(failure: &Failure) -> Option<String> {
    let Failure::Deadlock { blocked, cycle } = failure else {
        return None;
    };
    let (width, height, radius) = (420.0_f64, 300.0_f64, 24.0_f64);
    let (centre_x, centre_y, ring) = (width / 2.0, height / 2.0, 100.0);
    let count = blocked.len().max(1) as f64;
    let position = |index: usize| {
        let angle = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * index as f64 / count;
        (centre_x + ring * angle.cos(), centre_y + ring * angle.sin())
    };
    let index_of = |thread: char| blocked.iter().position(|b| b.thread == thread);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="wait-for" role="img" font-family="system-ui, sans-serif" font-size="13"><title>wait-for graph</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##
    );
    for (index, waiter) in blocked.iter().enumerate() {
        let Some(holder) = waiter.holder.and_then(index_of) else { continue };
        let ((x1, y1), (x2, y2)) = (position(index), position(holder));
        let length = ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt().max(1.0);
        let (ux, uy) = ((x2 - x1) / length, (y2 - y1) / length);
        let in_cycle = cycle.contains(&waiter.thread) && cycle.contains(&blocked[holder].thread);
        let colour = if in_cycle { "#d62728" } else { "#555" };
        let lock = waiter.waits_for.strip_prefix("lock ").unwrap_or(&waiter.waits_for);
        let _ = write!(
            svg,
            r#"<line class="{}" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" marker-end="url(#arrow)"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{colour}">waits for {}</text>"#,
            if in_cycle { "edge cycle" } else { "edge" },
            x1 + ux * radius,
            y1 + uy * radius,
            x2 - ux * (radius + 2.0),
            y2 - uy * (radius + 2.0),
            (x1 + x2) / 2.0 - uy * 14.0,
            (y1 + y2) / 2.0 + ux * 14.0,
            xml_escape(lock)
        );
    }
    for (index, waiter) in blocked.iter().enumerate() {
        let (x, y) = position(index);
        let _ = write!(
            svg,
            r##"<circle class="thread" cx="{x:.1}" cy="{y:.1}" r="{radius}" fill="#fff" stroke="#1f77b4" stroke-width="2"><title>{} waits for {}</title></circle><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"##,
            waiter.thread,
            xml_escape(&waiter.waits_for),
            y + 5.0,
            waiter.thread
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conlab_core::sim::{find_scenario, replay};

    #[test]
    fn a_deadlock_draws_its_cycle_and_other_failures_draw_nothing() {
        let philosophers = find_scenario("dining-philosophers").unwrap().program();
        let run = replay(&philosophers, "ABC").unwrap();
        let svg = wait_for_svg(run.failure.as_ref().unwrap()).unwrap();
        assert_eq!(svg.matches(r#"<line class="edge cycle""#).count(), 3, "{svg}");
        assert_eq!(svg.matches(r#"<circle class="thread""#).count(), 3);
        assert!(svg.contains("waits for fork1"));
        let lost = find_scenario("lost-update").unwrap().program();
        assert_eq!(wait_for_svg(replay(&lost, "ABAB").unwrap().failure.as_ref().unwrap()), None);
    }
}
