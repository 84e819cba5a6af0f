//! A reader bounded by the file's declared length.
//!
//! Every read is checked against the bytes left *before* a buffer is allocated, so a corrupt or
//! hostile length field turns into a clear "truncated" error instead of a multi-gigabyte
//! allocation. Offsets in messages are absolute positions in the file.

use std::io::{self, Read, Seek};

use autoglm_core::artifact::ArtifactFormat;

use super::FormatError;

/// A `Read + Seek` source positioned at offset 0, with the file length it must stay within.
#[derive(Debug)]
pub(super) struct Source<R> {
    inner: R,
    pos: u64,
    len: u64,
    format: ArtifactFormat,
}

impl<R: Read + Seek> Source<R> {
    /// `inner` must be positioned at offset 0; `len` is the file size every read is checked against.
    pub(super) fn new(inner: R, len: u64, format: ArtifactFormat) -> Self {
        Self {
            inner,
            pos: 0,
            len,
            format,
        }
    }

    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    pub(super) fn invalid(&self, message: impl Into<String>) -> FormatError {
        FormatError::Invalid {
            format: self.format,
            message: message.into(),
        }
    }

    fn reserve(&self, n: u64, what: &str) -> Result<(), FormatError> {
        if n > self.remaining() {
            return Err(self.invalid(format!(
                "truncated {what} at offset {}: needs {n} bytes, {} left",
                self.pos,
                self.remaining()
            )));
        }
        Ok(())
    }

    fn io_error(&self, source: io::Error, what: &str) -> FormatError {
        // The caller's length was larger than what the reader actually holds.
        if source.kind() == io::ErrorKind::UnexpectedEof {
            return self.invalid(format!(
                "file ends before {what} at offset {} (declared size {})",
                self.pos, self.len
            ));
        }
        FormatError::Io {
            format: self.format,
            source,
        }
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), FormatError> {
        let n = buf.len() as u64;
        self.reserve(n, what)?;
        self.inner
            .read_exact(buf)
            .map_err(|e| self.io_error(e, what))?;
        self.pos += n;
        Ok(())
    }

    /// Reads `n` bytes; callers cap `n` by their own limits, this caps it by the file.
    pub(super) fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, FormatError> {
        self.reserve(n, what)?;
        let size = usize::try_from(n)
            .map_err(|_| self.invalid(format!("{what} of {n} bytes does not fit in memory")))?;
        let mut buf = vec![0; size];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FormatError> {
        let mut buf = [0; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Skips `n` bytes without reading them into memory.
    pub(super) fn skip(&mut self, n: u64, what: &str) -> Result<(), FormatError> {
        self.reserve(n, what)?;
        let offset = i64::try_from(n)
            .map_err(|_| self.invalid(format!("{what} of {n} bytes is too large to skip")))?;
        // `seek_relative` keeps a `BufReader`'s buffer, which matters for many small skips.
        self.inner
            .seek_relative(offset)
            .map_err(|e| self.io_error(e, what))?;
        self.pos += n;
        Ok(())
    }

    /// Runs `f` with the end of the file narrowed to the next `n` bytes (a nested message), so
    /// nothing inside can read past it. Whatever `f` leaves unread is an error.
    pub(super) fn within<T>(
        &mut self,
        n: u64,
        what: &str,
        f: impl FnOnce(&mut Self) -> Result<T, FormatError>,
    ) -> Result<T, FormatError> {
        self.reserve(n, what)?;
        let outer = self.len;
        self.len = self.pos + n;
        let result = f(self);
        let left = self.remaining();
        self.len = outer;
        let value = result?;
        if left > 0 {
            return Err(self.invalid(format!(
                "{left} unread bytes at the end of {what} at offset {}",
                self.pos
            )));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use super::*;

    fn source(bytes: &[u8], len: u64) -> Source<Cursor<&[u8]>> {
        Source::new(Cursor::new(bytes), len, ArtifactFormat::Gguf)
    }

    #[test]
    fn reads_little_endian_and_tracks_position() {
        let mut src = source(&[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9], 13);
        assert_eq!(src.u32("a").unwrap(), 1);
        assert_eq!(src.u64("b").unwrap(), 2);
        assert_eq!(src.pos(), 12);
        assert_eq!(src.remaining(), 1);
        assert_eq!(src.bytes(1, "c").unwrap(), vec![9]);
    }

    #[test]
    fn refuses_reads_beyond_the_declared_length_before_allocating() {
        let mut src = source(&[0; 4], 4);
        let err = src.bytes(u64::MAX, "blob").unwrap_err().to_string();
        assert_eq!(
            err,
            "GGUF: truncated blob at offset 0: needs 18446744073709551615 bytes, 4 left"
        );
        assert!(src.skip(5, "gap").is_err());
        src.skip(4, "gap").unwrap();
        assert_eq!(src.remaining(), 0);
    }

    #[test]
    fn a_reader_shorter_than_declared_is_a_clear_error() {
        let mut src = source(&[1, 2], 100);
        let err = src.u32("version").unwrap_err().to_string();
        assert_eq!(
            err,
            "GGUF: file ends before version at offset 0 (declared size 100)"
        );
    }

    #[test]
    fn within_bounds_nested_reads_and_requires_them_to_finish() {
        let mut src = source(&[1, 2, 3, 4, 5], 5);
        let err = src.within(2, "inner", |s| s.u32("x")).unwrap_err();
        assert!(err.to_string().contains("truncated x at offset 0"), "{err}");

        let mut src = source(&[1, 2, 3, 4, 5], 5);
        let err = src.within(3, "inner", |s| s.u8("x")).unwrap_err();
        assert!(err.to_string().contains("2 unread bytes"), "{err}");

        let mut src = source(&[1, 2, 3, 4, 5], 5);
        assert_eq!(src.within(1, "inner", |s| s.u8("x")).unwrap(), 1);
        assert_eq!(src.remaining(), 4);
    }
}
