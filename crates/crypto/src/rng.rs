use rand_core::{TryCryptoRng, TryRng};

/// A deterministic CSPRNG (BLAKE3 in keyed XOF mode). Used for batch-verification coefficients
/// inside the sans-IO core, where global randomness is not allowed: the node seeds it from the
/// OS, the simulator from its run seed. The verdict of batch verification does not depend on
/// these coefficients except with negligible probability.
pub struct SeededRng {
    reader: blake3::OutputReader,
}

impl SeededRng {
    pub fn new(seed: [u8; 32]) -> Self {
        let hasher = blake3::Hasher::new_keyed(&seed);
        SeededRng { reader: hasher.finalize_xof() }
    }

    pub fn from_u64(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self::new(s)
    }
}

impl TryRng for SeededRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.reader.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.reader.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.reader.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}
