//! Frame-level bookkeeping of a session, apart from the socket: the
//! assembly of a fragmented message (continuation frames, bounded by the
//! frame size limit) and the window of recent bad frames that decides
//! when a session is closed 1008. Pure: the session maps the outcomes to
//! WebSocket close codes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix_http::ws::Item;
use actix_web::web::{Bytes, BytesMut};

/// Why a fragmented message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// A continuation without a first fragment, or a first fragment
    /// inside a message (close 1002).
    OutOfOrder,
    /// The message grew past the size limit (close 1009).
    TooLarge,
    /// A text message that is not UTF-8 (close 1007).
    NotUtf8,
}

/// What a fragment completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// The message goes on.
    More,
    /// A complete text message.
    Text(String),
    /// A complete binary message (a download's data frame).
    Binary(Bytes),
}

/// A fragmented message being assembled.
#[derive(Debug)]
struct Partial {
    text: bool,
    buf: BytesMut,
}

/// Assembles fragmented messages of at most `max_bytes`.
#[derive(Debug)]
pub struct Fragments {
    partial: Option<Partial>,
    max_bytes: usize,
}

impl Fragments {
    pub fn new(max_bytes: usize) -> Self {
        Fragments {
            partial: None,
            max_bytes,
        }
    }

    /// Whether a fragmented message is under way (a plain text frame now
    /// is a protocol error).
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes one fragment.
    pub fn push(&mut self, item: Item) -> Result<Assembled, FragmentError> {
        let (text, bytes, last) = match item {
            Item::FirstText(bytes) => (Some(true), bytes, false),
            Item::FirstBinary(bytes) => (Some(false), bytes, false),
            Item::Continue(bytes) => (None, bytes, false),
            Item::Last(bytes) => (None, bytes, true),
        };
        match (text, self.partial.as_mut()) {
            (Some(text), None) => {
                self.partial = Some(Partial {
                    text,
                    buf: BytesMut::from(&bytes[..]),
                });
            }
            (None, Some(partial)) => partial.buf.extend_from_slice(&bytes),
            _ => {
                self.partial = None;
                return Err(FragmentError::OutOfOrder);
            }
        }
        if self
            .partial
            .as_ref()
            .is_some_and(|p| p.buf.len() > self.max_bytes)
        {
            self.partial = None;
            return Err(FragmentError::TooLarge);
        }
        if !last {
            return Ok(Assembled::More);
        }
        let Some(partial) = self.partial.take() else {
            return Ok(Assembled::More);
        };
        if !partial.text {
            return Ok(Assembled::Binary(partial.buf.freeze()));
        }
        String::from_utf8(partial.buf.to_vec())
            .map(Assembled::Text)
            .map_err(|_| FragmentError::NotUtf8)
    }
}

/// Recent bad frames: `limit` within `window` closes the session.
#[derive(Debug)]
pub struct BadFrames {
    times: VecDeque<Instant>,
    limit: usize,
    window: Duration,
}

impl BadFrames {
    pub fn new(limit: usize, window: Duration) -> Self {
        BadFrames {
            times: VecDeque::new(),
            limit,
            window,
        }
    }

    /// Counts a bad frame at `now`; true when the limit is reached.
    pub fn record(&mut self, now: Instant) -> bool {
        while let Some(first) = self.times.front() {
            if now.saturating_duration_since(*first) >= self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.push_back(now);
        self.times.len() >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// First, continue and last fragments make one text message.
    #[test]
    fn text_in_three_fragments() {
        let mut f = Fragments::new(100);
        assert_eq!(f.push(Item::FirstText(b("he"))), Ok(Assembled::More));
        assert!(f.in_progress());
        assert_eq!(f.push(Item::Continue(b("ll"))), Ok(Assembled::More));
        assert_eq!(
            f.push(Item::Last(b("o"))),
            Ok(Assembled::Text("hello".into()))
        );
        assert!(!f.in_progress());
        assert_eq!(f.push(Item::FirstBinary(b("x"))), Ok(Assembled::More));
        assert_eq!(f.push(Item::Last(b("y"))), Ok(Assembled::Binary(b("xy"))));
    }

    /// Fragments out of order, past the limit, or not UTF-8 are refused.
    #[test]
    fn refusals() {
        let mut f = Fragments::new(4);
        assert_eq!(
            f.push(Item::Continue(b("a"))),
            Err(FragmentError::OutOfOrder)
        );
        f.push(Item::FirstText(b("ab"))).unwrap();
        assert_eq!(
            f.push(Item::FirstText(b("c"))),
            Err(FragmentError::OutOfOrder)
        );
        f.push(Item::FirstText(b("abc"))).unwrap();
        assert_eq!(f.push(Item::Last(b("de"))), Err(FragmentError::TooLarge));
        f.push(Item::FirstText(Bytes::from_static(&[0xff])))
            .unwrap();
        assert_eq!(
            f.push(Item::Last(Bytes::new())),
            Err(FragmentError::NotUtf8)
        );
    }

    /// The limit counts bad frames inside the window only.
    #[test]
    fn bad_frames_in_a_window() {
        let start = Instant::now();
        let mut bad = BadFrames::new(3, Duration::from_secs(60));
        assert!(!bad.record(start));
        assert!(!bad.record(start + Duration::from_secs(10)));
        assert!(
            bad.record(start + Duration::from_secs(20)),
            "three in a minute"
        );
        let mut bad = BadFrames::new(3, Duration::from_secs(60));
        assert!(!bad.record(start));
        assert!(!bad.record(start + Duration::from_secs(10)));
        assert!(
            !bad.record(start + Duration::from_secs(70)),
            "the first two expired"
        );
    }
}
