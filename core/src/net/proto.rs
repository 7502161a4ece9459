//! The servers lab's wire protocol: fixed-size requests that say what the server should spend
//! on them, and responses of the size asked for.
//!
//! A request is 32 bytes: its id, the CPU time the handler burns, the I/O wait it then makes (a
//! simulated database call), the response's payload size, and an endpoint tag (which of a
//! server's endpoints, for the lessons that mix a slow one and a fast one). A response is a
//! 16-byte header — the request's id, the payload's length — and the payload, every byte the
//! id's low byte, so the client checks that each request was answered exactly once, in order,
//! and in full.
//!
//! [`FrameReader`] cuts frames out of a byte stream with a start offset into one buffer: a
//! consumed frame costs no copy, and the unread tail moves to the front only when the buffer
//! must grow (amortised linear — the `framing` lesson's good buffer).

use std::time::Duration;

/// What one request asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    /// Handler CPU time.
    pub cpu: Duration,
    /// Handler I/O wait after the CPU part.
    pub io: Duration,
    pub response_bytes: u32,
    pub endpoint: u32,
}

pub const REQUEST_BYTES: usize = 32;
pub const RESPONSE_HEADER_BYTES: usize = 16;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn half(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl Request {
    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let mut bytes = [0; REQUEST_BYTES];
        bytes[0..8].copy_from_slice(&self.id.to_le_bytes());
        bytes[8..16].copy_from_slice(&nanos(self.cpu).to_le_bytes());
        bytes[16..24].copy_from_slice(&nanos(self.io).to_le_bytes());
        bytes[24..28].copy_from_slice(&self.response_bytes.to_le_bytes());
        bytes[28..32].copy_from_slice(&self.endpoint.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Self {
        Self {
            id: word(bytes, 0),
            cpu: Duration::from_nanos(word(bytes, 8)),
            io: Duration::from_nanos(word(bytes, 16)),
            response_bytes: half(bytes, 24),
            endpoint: half(bytes, 28),
        }
    }

    /// The whole response to this request: header and payload.
    pub fn response(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(RESPONSE_HEADER_BYTES + self.response_bytes as usize);
        bytes.extend_from_slice(&self.id.to_le_bytes());
        bytes.extend_from_slice(&u64::from(self.response_bytes).to_le_bytes());
        bytes.resize(RESPONSE_HEADER_BYTES + self.response_bytes as usize, self.id as u8);
        bytes
    }
}

/// A response's header: (id, payload bytes).
pub fn decode_response_header(bytes: &[u8]) -> (u64, usize) {
    (word(bytes, 0), usize::try_from(word(bytes, 8)).unwrap_or(usize::MAX))
}

/// Frames cut from a byte stream.
#[derive(Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Start of the unread bytes.
    start: usize,
}

impl FrameReader {
    /// Room for at least `want` more bytes at the end, moving the unread tail to the front
    /// first if that makes the room.
    pub fn space(&mut self, want: usize) -> &mut [u8] {
        if self.start == self.buffer.len() {
            // Everything read: start over at the front without a copy.
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 0 && self.buffer.capacity() - self.buffer.len() < want {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let filled = self.buffer.len();
        self.buffer.resize(filled + want, 0);
        &mut self.buffer[filled..]
    }

    /// After reading into [`FrameReader::space`]: keeps the first `count` of its bytes.
    pub fn filled(&mut self, want: usize, count: usize) {
        self.buffer.truncate(self.buffer.len() - want + count);
    }

    /// Unread bytes.
    pub fn available(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next `length` bytes, consumed, if they have all arrived.
    pub fn take(&mut self, length: usize) -> Option<&[u8]> {
        if self.available() < length {
            return None;
        }
        let frame = &self.buffer[self.start..self.start + length];
        self.start += length;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_the_wire_and_its_response_says_who_it_answers() {
        let request = Request {
            id: 7,
            cpu: Duration::from_micros(250),
            io: Duration::from_millis(3),
            response_bytes: 5,
            endpoint: 1,
        };
        assert_eq!(Request::decode(&request.encode()), request);
        let response = request.response();
        assert_eq!(decode_response_header(&response), (7, 5));
        assert_eq!(&response[RESPONSE_HEADER_BYTES..], &[7; 5]);
    }

    #[test]
    fn frames_split_across_reads_come_out_whole_and_in_order() {
        let stream: Vec<u8> = (0..10u8).flat_map(|frame| [frame; 3]).collect();
        let mut reader = FrameReader::default();
        let mut frames = Vec::new();
        for chunk in stream.chunks(4) {
            let space = reader.space(4);
            space[..chunk.len()].copy_from_slice(chunk);
            reader.filled(4, chunk.len());
            while let Some(frame) = reader.take(3) {
                frames.push(frame.to_vec());
            }
        }
        assert_eq!(frames, (0..10u8).map(|frame| vec![frame; 3]).collect::<Vec<_>>());
        assert_eq!(reader.available(), 0);
    }
}
