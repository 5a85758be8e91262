//! Bounds-checked little-endian reader over a byte slice.

use crate::Error;

pub(crate) type Result<T> = std::result::Result<T, Error>;

#[derive(Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn buf(&self) -> &'a [u8] {
        self.buf
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    pub(crate) fn err(&self, what: &'static str) -> Error {
        Error::Malformed {
            height: None,
            offset: self.pos,
            what,
        }
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        if n > self.remaining() {
            return Err(self.err(what));
        }
        self.pos += n;
        Ok(())
    }

    /// Skips `count * size` bytes, checking for overflow.
    pub(crate) fn skip_n(&mut self, count: u64, size: usize, what: &'static str) -> Result<()> {
        let total = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .ok_or_else(|| self.err(what))?;
        self.skip(total, what)
    }

    #[inline]
    pub(crate) fn peek_u8_at(&self, ahead: usize) -> Option<u8> {
        self.buf.get(self.pos.checked_add(ahead)?).copied()
    }

    #[inline]
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    #[inline]
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    #[inline]
    pub(crate) fn hash(&mut self, what: &'static str) -> Result<[u8; 32]> {
        let s = self.take(32, what)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Bitcoin compact-size integer.
    #[inline]
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64> {
        let b = self.u8(what)?;
        Ok(match b {
            0xfd => self.u16(what)? as u64,
            0xfe => self.u32(what)? as u64,
            0xff => self.u64(what)?,
            n => n as u64,
        })
    }

    /// A count of items each at least `min_size` bytes long: rejected before any
    /// allocation when the remaining bytes cannot hold that many.
    #[inline]
    pub(crate) fn count(&mut self, min_size: usize, what: &'static str) -> Result<usize> {
        let start = self.pos;
        let n = self.varint(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_size.max(1)))
            .is_some_and(|need| need <= self.remaining());
        if !fits {
            self.pos = start;
            return Err(self.err(what));
        }
        Ok(n as usize)
    }

    /// Length-prefixed bytes.
    #[inline]
    pub(crate) fn var_bytes(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let start = self.pos;
        let n = self.varint(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => self.take(n, what),
            _ => {
                self.pos = start;
                Err(self.err(what))
            }
        }
    }
}

/// Appends a compact-size integer.
pub(crate) fn write_varint(out: &mut Vec<u8>, n: u64) {
    if n < 0xfd {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xfd);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xfe);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(0xff);
        out.extend_from_slice(&n.to_le_bytes());
    }
}
