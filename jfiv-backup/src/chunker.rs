//! Content-defined chunking (FastCDC 2020, normalisation level 1) over a reader, with one
//! reusable buffer.

use std::io::Read;

use fastcdc::v2020;

use crate::{Error, Result};

/// Chunk size bounds for FastCDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk (except a file's last one).
    pub min: u32,
    /// Target average.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB.
    fn default() -> Self {
        Self {
            min: 256 << 10,
            avg: 1 << 20,
            max: 4 << 20,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds against what FastCDC accepts.
    ///
    /// # Errors
    /// [`Error::Internal`] naming the bad bound (a configuration error).
    pub fn validate(&self) -> Result<()> {
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max;
        if ok {
            Ok(())
        } else {
            Err(Error::Internal {
                reason: format!(
                    "chunker bounds {self:?} outside FastCDC's limits ({}..{}, {}..{}, {}..{})",
                    v2020::MINIMUM_MIN,
                    v2020::MINIMUM_MAX,
                    v2020::AVERAGE_MIN,
                    v2020::AVERAGE_MAX,
                    v2020::MAXIMUM_MIN,
                    v2020::MAXIMUM_MAX
                ),
            })
        }
    }
}

/// A streaming chunker that keeps one buffer of twice the maximum chunk size.
#[derive(Debug)]
pub(crate) struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    buf: Vec<u8>,
}

impl Chunker {
    pub(crate) fn new(params: ChunkerParams) -> Result<Self> {
        params.validate()?;
        let bits = v2020::logarithm2(params.avg) as usize;
        // Normalisation level 1, as `FastCDC::new`.
        let masks = (v2020::MASKS[bits + 1], v2020::MASKS[bits - 1]);
        Ok(Self {
            params,
            masks,
            buf: Vec::new(),
        })
    }

    /// Cuts everything `reader` yields into chunks, calling `emit` with each in order.
    /// Returns the number of bytes read.
    pub(crate) fn run<R: Read>(
        &mut self,
        mut reader: R,
        mut emit: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let max = self.params.max as usize;
        if self.buf.len() < 2 * max {
            self.buf.resize(2 * max, 0);
        }
        let (mask_s, mask_l) = self.masks;
        let mut len = 0usize;
        let mut pos = 0usize;
        let mut eof = false;
        let mut total = 0u64;
        loop {
            while !eof && len < self.buf.len() {
                match reader.read(&mut self.buf[len..]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        len += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            while pos < len && (eof || len - pos >= max) {
                let (_, count) = v2020::cut(
                    &self.buf[pos..len],
                    self.params.min as usize,
                    self.params.avg as usize,
                    max,
                    mask_s,
                    mask_l,
                    mask_s << 1,
                    mask_l << 1,
                );
                if count == 0 {
                    break;
                }
                emit(&self.buf[pos..pos + count])?;
                pos += count;
            }
            if eof {
                return Ok(total);
            }
            self.buf.copy_within(pos..len, 0);
            len -= pos;
            pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_input_and_respect_bounds() {
        let params = ChunkerParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        };
        let mut data = vec![0u8; 300_000];
        let mut x = 12345u64;
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut chunker = Chunker::new(params).unwrap();
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        // A reader that returns short reads, to exercise refills.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(777).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let total = chunker
            .run(Trickle(&data), |c| {
                out.extend_from_slice(c);
                sizes.push(c.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(total, data.len() as u64);
        assert_eq!(out, data);
        assert!(sizes.len() > 10);
        assert!(
            sizes[..sizes.len() - 1]
                .iter()
                .all(|&s| (1024..=16384).contains(&s))
        );
        // Same cut points as the crate's own slice chunker.
        let reference: Vec<usize> = v2020::FastCDC::new(&data, 1024, 4096, 16384)
            .map(|c| c.length)
            .collect();
        assert_eq!(sizes, reference);
        assert!(
            Chunker::new(ChunkerParams {
                min: 1,
                avg: 2,
                max: 3
            })
            .is_err()
        );
    }
}
