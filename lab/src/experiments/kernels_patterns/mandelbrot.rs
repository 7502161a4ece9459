//! `mandelbrot`: the wasm-bindgen-rayon demo's kernel, sequential vs a static split over a
//! thread team vs rayon.

use rayon::prelude::*;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::kernels::mandelbrot::{digest, Frame};
use conlab_core::platform::{run_team, RayonPool};
use conlab_core::sched::steal::StealPool;
use conlab_core::sync::{lock, Mutex};
use conlab_core::trace::SpanKind;

pub struct Mandelbrot;

impl Experiment for Mandelbrot {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "mandelbrot",
            title: "Mandelbrot: static split vs work stealing",
            topic: super::NAME,
            concept: "data parallelism (Pool.map over rows)",
            teaches: "An embarrassingly parallel image: every pixel is independent, yet the work per pixel \
                      varies a thousandfold (points inside the set iterate to the limit). Splitting the rows into \
                      one equal block per thread — what a naive Pool.map with a big chunksize does — leaves the \
                      thread with the body of the set doing most of the work while the others idle; work stealing \
                      (rayon's, and our StealPool's) hands out rows dynamically and gets closer to the ideal speedup. \
                      The default view puts the real axis a quarter of the way down, so the set's body falls in the \
                      upper half; centred (axis=0.5) the set is symmetric, two halves carry equal work, and at 2 \
                      threads the static split ties stealing — the imbalance then shows only at 3 or more. Compare \
                      the curves, then look at the timelines: the static split's idle threads, the stealers' short \
                      searches.",
            params: vec![
                ParamSpec::int("width", 640, 16, 4096, "px", "image width"),
                ParamSpec::int("height", 400, 16, 4096, "px", "image height"),
                ParamSpec::int("max_iter", 500, 1, 100_000, "iterations", "escape-time limit per pixel"),
                ParamSpec::float(
                    "axis",
                    0.25,
                    0.0,
                    1.0,
                    "of the height",
                    "where the real axis crosses the image, from the top (0.5: the symmetric view, whose halves \
                     carry equal work)",
                ),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "one thread, row by row"),
                VariantSpec::sweep("team", "one contiguous block of rows per thread (static split)"),
                VariantSpec::sweep("rayon", "rayon par_chunks_mut over rows (work stealing)"),
                VariantSpec::sweep("steal", "our StealPool: the rows split in halves with join, down to one row"),
            ],
            baseline: "seq",
            work_unit: Some("pixels"),
            shows_timeline: true,
            quick: &["width=96", "height=64", "max_iter=200"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let frame = Frame {
            width: params.count("width"),
            height: params.count("height"),
            max_iter: params.int("max_iter") as u32,
            axis: params.float("axis"),
        };
        let mut image = vec![0; frame.width * frame.height];
        render_seq(&frame, &mut image, || true);
        Ok(Box::new(Image { frame, expected: digest(&image) }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "work stealing beats the static split: at 2 threads rayon's and steal's speedups are each ≥ 1.2× \
                 team's (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    facts.lasting("team", 1, 5.0)?;
                    let team = facts.speedup("team", 2)?;
                    let (rayon, steal) = (facts.speedup("rayon", 2)?, facts.speedup("steal", 2)?);
                    verdict(
                        rayon >= 1.2 * team && steal >= 1.2 * team,
                        format!("speedups at 2 threads: team {team:.2}×, rayon {rayon:.2}×, steal {steal:.2}×"),
                        "the view is balanced between the halves (axis near 0.5), or another program held a core",
                    )
                },
            ),
            Claim::new(
                "stealing gets close to the ideal: steal's 2-thread speedup is ≥ 1.6× (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    facts.lasting("steal", 1, 5.0)?;
                    let steal = facts.speedup("steal", 2)?;
                    verdict(
                        steal >= 1.6,
                        format!("steal at 2 threads: {steal:.2}×"),
                        "another program held a core, or the image is too small to split",
                    )
                },
            ),
        ]
    }
}

struct Image {
    frame: Frame,
    expected: Digest,
}

fn render_seq(frame: &Frame, image: &mut [u32], mut keep_going: impl FnMut() -> bool) {
    for (y, row) in image.chunks_mut(frame.width).enumerate() {
        if !frame.render_row(y, row, &mut keep_going) {
            return;
        }
    }
}

impl Workload for Image {
    fn work_units(&self) -> Option<f64> {
        Some((self.frame.width * self.frame.height) as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let image = vec![0; self.frame.width * self.frame.height];
        let pool = if variant == "rayon" { Some(RayonPool::new(threads)?) } else { None };
        Ok(Box::new(ImageCell { frame: self.frame, variant: variant.to_string(), threads, image, pool }))
    }
}

struct ImageCell {
    frame: Frame,
    variant: String,
    threads: usize,
    image: Vec<u32>,
    pool: Option<RayonPool>,
}

impl Cell for ImageCell {
    fn threads(&self) -> usize {
        if self.variant == "seq" {
            1
        } else {
            self.threads
        }
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let frame = self.frame;
        match (&self.pool, self.variant.as_str()) {
            (Some(pool), _) => render_rayon(pool, &frame, &mut self.image, context),
            (None, "team") => render_team(self.threads, &frame, &mut self.image, context)?,
            (None, "steal") => {
                let ((), stats) = StealPool::run(self.threads, context.trace(), |pool| {
                    render_split(pool, &frame, &mut self.image, 0, context)
                })?;
                crate::experiments::schedulers::policies::record_steals(context, &stats);
            }
            _ => context.trace().lane(0).span(
                SpanKind::Run,
                || "all rows",
                || {
                    render_seq(&frame, &mut self.image, || context.check_cancel().is_ok());
                },
            ),
        }
        // A cancelled render stops early; its image is incomplete and must not be reported.
        context.check_cancel()?;
        Ok(digest(&self.image))
    }
}

/// Member i renders rows [i·⌈h/t⌉, (i+1)·⌈h/t⌉).
fn render_team(threads: usize, frame: &Frame, image: &mut [u32], context: &RunContext) -> Result<(), RunError> {
    let rows_per_block = frame.height.div_ceil(threads);
    let blocks: Vec<Mutex<(usize, &mut [u32])>> = image
        .chunks_mut(rows_per_block * frame.width)
        .enumerate()
        .map(|(i, block)| Mutex::new((i * rows_per_block, block)))
        .collect();
    run_team(threads, |member| {
        let Some(block) = blocks.get(member.index) else { return };
        let mut block = lock(block);
        let (first_row, ref mut pixels) = *block;
        let rows = pixels.len() / frame.width;
        context.trace().lane(member.index).span(
            SpanKind::Run,
            || format!("rows {first_row}–{}", first_row + rows - 1),
            || {
                for (y, row) in pixels.chunks_mut(frame.width).enumerate() {
                    if !frame.render_row(first_row + y, row, || context.check_cancel().is_ok()) {
                        return;
                    }
                }
            },
        );
    })?;
    Ok(())
}

/// Rows `first_row..` of `image`, halved with `join` down to single rows.
fn render_split(pool: &StealPool<'_>, frame: &Frame, image: &mut [u32], first_row: usize, context: &RunContext) {
    let rows = image.len() / frame.width;
    if rows <= 1 {
        frame.render_row(first_row, image, || context.check_cancel().is_ok());
        return;
    }
    let (top, bottom) = image.split_at_mut(rows / 2 * frame.width);
    pool.join(
        || render_split(pool, frame, top, first_row, context),
        || render_split(pool, frame, bottom, first_row + rows / 2, context),
    );
}

fn render_rayon(pool: &RayonPool, frame: &Frame, image: &mut [u32], context: &RunContext) {
    pool.install(|| {
        image.par_chunks_mut(frame.width).enumerate().for_each(|(y, row)| {
            let thread = rayon::current_thread_index().unwrap_or(0);
            context.trace().lane(thread).span(
                SpanKind::Run,
                || format!("row {y}"),
                || frame.render_row(y, row, || context.check_cancel().is_ok()),
            );
        })
    })
}
