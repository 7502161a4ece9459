//! `framing`: cutting line-delimited messages out of a stream. The books' reader appends each
//! read to a buffer and, for every message, slices the rest off into a new buffer
//! (`line, buffer = buffer.split(b"\n", 1)`): each message copies everything behind it, so a
//! read that brings `b` messages costs O(b²) copying. A reader that keeps an offset into its
//! buffer (and moves the unread tail to the front only once per read) copies each byte once.
//!
//! Every run frames the same stream at every batch size — 1, 10, 100, … messages per read, up
//! to `max_batch` — and records the time per message at each, so the quadratic shows as a
//! line that climbs with the batch while the offset reader's stays flat.

use crate::experiment::{
    verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use std::hash::Hasher;

use conlab_core::hash::Fnv;
use conlab_core::platform::Instant;

pub struct Framing;

const PER_MESSAGE: CurveSpec = CurveSpec {
    name: "time per message against messages per read",
    x: "messages per read",
    y: "ns per message",
    log_x: true,
    log_y: true,
};

/// The batch sizes a run frames at (up to `max_batch`), with their metric names.
const BATCHES: [(usize, &str); 5] = [
    (1, "ns/message at batch 1"),
    (10, "ns/message at batch 10"),
    (100, "ns/message at batch 100"),
    (1000, "ns/message at batch 1000"),
    (10_000, "ns/message at batch 10000"),
];

impl Experiment for Framing {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "framing",
            title: "Framing a byte stream: the buffer that copies on every message",
            topic: super::NAME,
            concept: "asyncio StreamReader.readline, protocol buffers, socket framing",
            teaches: "A server reads bytes, not messages: one read may bring part of a message or many of them. The \
                      books' reader appends each read to a buffer and then, for every complete line, slices the rest \
                      into a new buffer — `line, buffer = buffer.split(b'\\n', 1)`. Each message copies everything \
                      behind it, so a read that brings b messages costs about b²/2 message-lengths of copying: fine one \
                      message at a time, ruinous when a fast client pipelines a thousand. Keeping an offset into the \
                      buffer (and moving the unread tail to the front once per read, as asyncio's StreamReader does \
                      with its bytearray) copies each byte once, whatever the batch.",
            params: vec![
                ParamSpec::int("message_bytes", 64, 2, 65_536, "bytes", "each message, its newline included"),
                ParamSpec::int("messages", 20_000, 10, 10_000_000, "", "messages framed at each batch size"),
                ParamSpec::int("max_batch", 1000, 1, 10_000, "messages", "the largest batch: 1, 10, 100, … up to it"),
            ],
            variants: vec![
                VariantSpec::fixed("slice-copy", "the books' reader: the rest of the buffer copied for every message"),
                VariantSpec::fixed("offset", "an offset into the buffer; the tail moved once per read"),
            ],
            baseline: "slice-copy",
            work_unit: Some("messages"),
            chart_metric: Some("ns/message at batch 1000"),
            quick: &["messages=2000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let size = params.count("message_bytes");
        let messages = params.count("messages");
        let max_batch = params.count("max_batch");
        let batches: Vec<(usize, &'static str)> =
            BATCHES.into_iter().filter(|&(batch, _)| batch <= max_batch).collect();
        // Message i: its number in decimal, padded with letters, then a newline.
        let message = |i: usize| {
            let mut line = format!("{i}:").into_bytes();
            line.resize(size - 1, b'a' + (i % 26) as u8);
            line.push(b'\n');
            line
        };
        let stream: Vec<u8> = (0..messages).flat_map(message).collect();
        let expected = batches.iter().fold(0, |digest, _| digest ^ checksum(&stream, size).rotate_left(1));
        Ok(Box::new(Stream { stream, size, batches, expected }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "one message per read, both readers cost about the same: slice-copy within 2× of offset (fastest \
                 runs)",
                |facts| {
                    let ratio = facts.fixed_metric("slice-copy", BATCHES[0].1)?.min
                        / facts.fixed_metric("offset", BATCHES[0].1)?.min;
                    verdict(
                        ratio <= 2.0,
                        format!("slice-copy {ratio:.2}× offset at batch 1"),
                        "a neighbour took a core",
                    )
                },
            ),
            Claim::new(
                "copying the rest for every message is quadratic: at the largest batch of ≥ 100, slice-copy takes \
                 ≥ 5× as long per message as offset (fastest runs)",
                |facts| {
                    let batch = facts.param("max_batch")?;
                    let Some(&(size, name)) = BATCHES.iter().rev().find(|&&(size, _)| size as f64 <= batch) else {
                        return Err(crate::experiment::not_testable("no batch size ran"));
                    };
                    if size < 100 {
                        return Err(crate::experiment::not_testable(format!("the largest batch is {size}: under 100")));
                    }
                    let ratio = facts.fixed_metric("slice-copy", name)?.min / facts.fixed_metric("offset", name)?.min;
                    verdict(
                        ratio >= 5.0,
                        format!("slice-copy {ratio:.1}× offset at batch {size}"),
                        "messages too short",
                    )
                },
            ),
        ]
    }
}

/// FNV-1a of one message.
fn fnv1a(message: &[u8]) -> u64 {
    let mut hasher = Fnv::default();
    hasher.write(message);
    hasher.finish()
}

/// A digest of the messages' contents in order (each message hashed, the hashes chained).
fn checksum(stream: &[u8], size: usize) -> u64 {
    stream.chunks(size).fold(0, |digest, message| digest.rotate_left(5) ^ fnv1a(message))
}

struct Stream {
    stream: Vec<u8>,
    size: usize,
    batches: Vec<(usize, &'static str)>,
    expected: Digest,
}

impl Workload for Stream {
    fn work_units(&self) -> Option<f64> {
        Some((self.stream.len() / self.size * self.batches.len()) as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(FramingCell { stream: self, copies: variant == "slice-copy" }))
    }
}

struct FramingCell<'a> {
    stream: &'a Stream,
    copies: bool,
}

impl Cell for FramingCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let stream = self.stream;
        let mut digest: u64 = 0;
        for &(batch, name) in &stream.batches {
            context.check_cancel()?;
            let start = Instant::now();
            let framed = if self.copies {
                frame_by_slicing(&stream.stream, batch * stream.size, context)?
            } else {
                frame_with_offset(&stream.stream, batch * stream.size, context)?
            };
            let per_message = start.elapsed().as_nanos() as f64 / (stream.stream.len() / stream.size) as f64;
            context.record_time(name, TimeUnit::Nanoseconds, per_message);
            context.record_point(PER_MESSAGE, batch as f64, per_message);
            digest ^= framed.rotate_left(1);
        }
        Ok(digest)
    }
}

/// The books' reader: for every line, the rest of the buffer becomes the new buffer.
fn frame_by_slicing(stream: &[u8], read: usize, context: &RunContext) -> Result<u64, RunError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut digest: u64 = 0;
    for chunk in stream.chunks(read) {
        context.check_cancel()?;
        buffer.extend_from_slice(chunk);
        while let Some(end) = buffer.iter().position(|&byte| byte == b'\n') {
            digest = digest.rotate_left(5) ^ fnv1a(&buffer[..=end]);
            // `line, buffer = buffer.split(b"\n", 1)`: the rest is copied to a new buffer.
            buffer = buffer[end + 1..].to_vec();
        }
    }
    Ok(digest)
}

/// An offset into one buffer: lines are read in place; the unread tail moves to the front once
/// per read.
fn frame_with_offset(stream: &[u8], read: usize, context: &RunContext) -> Result<u64, RunError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut digest: u64 = 0;
    for chunk in stream.chunks(read) {
        context.check_cancel()?;
        buffer.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(length) = buffer[start..].iter().position(|&byte| byte == b'\n') {
            digest = digest.rotate_left(5) ^ fnv1a(&buffer[start..=start + length]);
            start += length + 1;
        }
        buffer.drain(..start);
    }
    Ok(digest)
}
