//! The chunk file layout and its block checksums.
//!
//! A chunk file is a fixed header, one crc32c per 64 KiB block of payload, then
//! the payload itself:
//!
//! ```text
//! magic "BFSCHNK1" | payload length u64 LE | block count u32 LE | crc32c u32 LE * count | payload
//! ```
//!
//! Keeping the checksums in the same file as the data means one atomic rename
//! publishes both. A ranged read loads only the blocks it covers and checks each
//! before a byte leaves the node.

pub const BLOCK_SIZE: usize = 64 * 1024;
pub const MAGIC: &[u8; 8] = b"BFSCHNK1";
const FIXED_HEADER: usize = 8 + 8 + 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("chunk header is malformed")]
    BadHeader,
    #[error("block {block} failed its checksum")]
    Corrupt { block: usize },
}

/// Checksums of every block of `payload`, in order.
pub fn block_checksums(payload: &[u8]) -> Vec<u32> {
    payload.chunks(BLOCK_SIZE).map(crc32c::crc32c).collect()
}

/// The crc32c of a whole payload of `payload_len` bytes, from its block
/// checksums: a sender's checksum is checked without a second pass.
pub fn whole_checksum(sums: &[u32], payload_len: usize) -> u32 {
    sums.iter().enumerate().fold(0, |crc, (i, &sum)| {
        let len = (payload_len - i * BLOCK_SIZE).min(BLOCK_SIZE);
        crc32c::crc32c_combine(crc, sum, len)
    })
}

/// Length of the header of a chunk with `payload_len` bytes of payload.
pub fn header_len(payload_len: usize) -> usize {
    FIXED_HEADER + 4 * payload_len.div_ceil(BLOCK_SIZE)
}

/// Header bytes (magic, length, checksums) to write before `payload`.
pub fn encode_header(payload: &[u8]) -> Vec<u8> {
    encode_header_of(payload.len(), &block_checksums(payload))
}

/// Header bytes for a payload of `payload_len` bytes whose block checksums are `sums`.
pub fn encode_header_of(payload_len: usize, sums: &[u32]) -> Vec<u8> {
    let mut header = Vec::with_capacity(header_len(payload_len));
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(payload_len as u64).to_le_bytes());
    header.extend_from_slice(&(sums.len() as u32).to_le_bytes());
    for sum in sums {
        header.extend_from_slice(&sum.to_le_bytes());
    }
    header
}

/// The decoded header of a chunk file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub payload_len: u64,
    pub checksums: Vec<u32>,
}

impl Header {
    /// Length of the fixed part, enough to learn how long the whole header is.
    pub const FIXED_LEN: usize = FIXED_HEADER;

    /// Number of checksum entries announced by a fixed header prefix.
    pub fn block_count(fixed: &[u8]) -> Result<usize, LayoutError> {
        if fixed.len() < FIXED_HEADER || &fixed[..8] != MAGIC {
            return Err(LayoutError::BadHeader);
        }
        Ok(u32::from_le_bytes(fixed[16..20].try_into().unwrap()) as usize)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LayoutError> {
        let count = Self::block_count(bytes)?;
        if bytes.len() != FIXED_HEADER + 4 * count {
            return Err(LayoutError::BadHeader);
        }
        let payload_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        if payload_len.div_ceil(BLOCK_SIZE as u64) != count as u64 {
            return Err(LayoutError::BadHeader);
        }
        let checksums = bytes[FIXED_HEADER..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Self {
            payload_len,
            checksums,
        })
    }

    pub fn encoded_len(&self) -> u64 {
        (FIXED_HEADER + 4 * self.checksums.len()) as u64
    }

    /// Payload byte range of whole blocks covering `[start, end)`.
    pub fn covering_blocks(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        let first = (start / BLOCK_SIZE as u64) as usize;
        let last = end.div_ceil(BLOCK_SIZE as u64) as usize;
        first..last.min(self.checksums.len())
    }

    /// Checks `data`, which holds the blocks starting at block `first`.
    pub fn verify(&self, first: usize, data: &[u8]) -> Result<(), LayoutError> {
        for (i, block) in data.chunks(BLOCK_SIZE).enumerate() {
            let index = first + i;
            if self.checksums.get(index) != Some(&crc32c::crc32c(block)) {
                return Err(LayoutError::Corrupt { block: index });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn header_round_trips() {
        for len in [
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            5 * BLOCK_SIZE + 7,
        ] {
            let data = payload(len);
            let encoded = encode_header(&data);
            assert_eq!(encoded.len(), header_len(len));
            let header = Header::decode(&encoded).unwrap();
            assert_eq!(whole_checksum(&header.checksums, len), crc32c::crc32c(&data));
            assert_eq!(header.payload_len, len as u64);
            assert_eq!(header.checksums.len(), len.div_ceil(BLOCK_SIZE));
            header.verify(0, &data).unwrap();
        }
    }

    #[test]
    fn a_flipped_bit_is_found_in_its_block() {
        let mut data = payload(3 * BLOCK_SIZE);
        let header = Header::decode(&encode_header(&data)).unwrap();
        data[BLOCK_SIZE + 5] ^= 1;
        assert_eq!(header.verify(0, &data), Err(LayoutError::Corrupt { block: 1 }));
        header.verify(2, &data[2 * BLOCK_SIZE..]).unwrap();
    }

    #[test]
    fn covering_blocks_are_clamped() {
        let header = Header::decode(&encode_header(&payload(2 * BLOCK_SIZE + 10))).unwrap();
        assert_eq!(header.covering_blocks(0, 1), 0..1);
        assert_eq!(
            header.covering_blocks(BLOCK_SIZE as u64, BLOCK_SIZE as u64 + 1),
            1..2
        );
        assert_eq!(header.covering_blocks(0, u64::MAX / 2), 0..3);
    }

    #[test]
    fn garbage_headers_are_rejected() {
        assert_eq!(Header::decode(b"nonsense"), Err(LayoutError::BadHeader));
        let mut header = encode_header(&payload(10));
        header.push(0);
        assert_eq!(Header::decode(&header), Err(LayoutError::BadHeader));
    }
}
