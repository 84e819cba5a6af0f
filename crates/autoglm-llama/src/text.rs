//! Turns the byte pieces of sampled tokens into the text a client sees:
//! whole UTF-8 characters only, and nothing that might still turn out to be
//! the start of a stop sequence.

/// What one token's bytes released.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Released {
    /// Text that is now certain; generation goes on.
    Text(String),
    /// A stop sequence matched: the text before it, after which generation ends.
    Stopped(String),
}

/// The text state of one sequence.
#[derive(Debug, Default)]
pub(crate) struct TextStream {
    /// The start of a character whose remaining bytes come with a later token.
    partial: Vec<u8>,
    /// Decoded text that is a prefix of some stop sequence, so not yet sent.
    held: String,
    stops: Vec<String>,
}

impl TextStream {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            partial: Vec::new(),
            held: String::new(),
            stops,
        }
    }

    /// Adds one token's bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Released {
        self.partial.extend_from_slice(bytes);
        let decoded = take_utf8(&mut self.partial);
        if decoded.is_empty() {
            return Released::Text(String::new());
        }
        self.held.push_str(&decoded);

        // Earliest match wins, whichever stop string it is: the client must
        // never see text past the first point where any of them begins.
        let first = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first {
            self.held.truncate(at);
            return Released::Stopped(std::mem::take(&mut self.held));
        }

        let keep = self.stop_prefix_len();
        let cut = self.held.len() - keep;
        Released::Text(self.held.drain(..cut).collect())
    }

    /// Everything still held, when generation ends for a reason other than a
    /// stop sequence: held text was real output after all.
    pub(crate) fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        out
    }

    /// Length of the longest end of `held` that a stop sequence starts with.
    fn stop_prefix_len(&self) -> usize {
        let mut longest = 0;
        for stop in &self.stops {
            // Whole matches were handled by the caller, so only proper prefixes.
            let most = (stop.len() - 1).min(self.held.len());
            for len in (longest + 1..=most).rev() {
                if stop.is_char_boundary(len) && self.held.ends_with(&stop[..len]) {
                    longest = len;
                    break;
                }
            }
        }
        longest
    }
}

/// Removes and returns the longest decodable start of `buf`, leaving an
/// incomplete final character in it. Bytes that can never be UTF-8 become
/// U+FFFD rather than stalling the stream.
fn take_utf8(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(buf) {
            Ok(text) => {
                out.push_str(text);
                buf.clear();
                return out;
            }
            Err(error) => {
                let valid = error.valid_up_to();
                out.push_str(&String::from_utf8_lossy(&buf[..valid]));
                match error.error_len() {
                    None => {
                        buf.drain(..valid);
                        return out;
                    }
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        buf.drain(..valid + bad);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Released {
        Released::Text(s.to_owned())
    }

    #[test]
    fn characters_split_across_tokens_are_joined() {
        let mut stream = TextStream::new(vec![]);
        let euro = "€".as_bytes();
        assert_eq!(stream.push(&euro[..1]), text(""));
        assert_eq!(stream.push(&euro[1..2]), text(""));
        assert_eq!(stream.push(&[euro[2], b'!']), text("€!"));
        assert_eq!(stream.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut stream = TextStream::new(vec![]);
        assert_eq!(stream.push(&[b'a', 0xff, b'b']), text("a\u{fffd}b"));
        assert_eq!(stream.push(&[0xe2, 0x82]), text(""));
        assert_eq!(stream.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_sequence_cuts_output_and_is_not_included() {
        let mut stream = TextStream::new(vec!["END".to_owned()]);
        assert_eq!(stream.push(b"hello E"), text("hello "));
        assert_eq!(stream.push(b"N"), text(""));
        assert_eq!(stream.push(b"D and more"), Released::Stopped(String::new()));
    }

    #[test]
    fn held_text_is_released_when_ruled_out() {
        let mut stream = TextStream::new(vec!["END".to_owned()]);
        assert_eq!(stream.push(b"a EN"), text("a "));
        assert_eq!(stream.push(b"Xb"), text("ENXb"));
    }

    #[test]
    fn held_text_is_flushed_at_the_end() {
        let mut stream = TextStream::new(vec!["\n\n".to_owned()]);
        assert_eq!(stream.push(b"line\n"), text("line"));
        assert_eq!(stream.finish(), "\n");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut stream = TextStream::new(vec!["cd".to_owned(), "b".to_owned()]);
        assert_eq!(stream.push(b"abcd"), Released::Stopped("a".to_owned()));
    }

    #[test]
    fn stop_inside_one_piece_keeps_the_text_before_it() {
        let mut stream = TextStream::new(vec!["Paris".to_owned()]);
        assert_eq!(
            stream.push(b"It is Paris."),
            Released::Stopped("It is ".to_owned())
        );
    }

    #[test]
    fn multibyte_stop_prefixes_are_held_on_character_boundaries() {
        let mut stream = TextStream::new(vec!["é!".to_owned()]);
        assert_eq!(stream.push("caf\u{e9}".as_bytes()), text("caf"));
        assert_eq!(stream.push(b"?"), text("\u{e9}?"));
    }
}
