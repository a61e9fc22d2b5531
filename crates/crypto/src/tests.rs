use super::*;

struct TestRng(u64);
impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Ok(self.0 ^ (self.0 >> 29))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestRng {}

#[test]
fn pem_round_trip_and_garbage_is_an_error() {
    let kp = Keypair::from_seed([7; 32]);
    let pem = kp.to_pem();
    assert!(pem.contains("BEGIN PRIVATE KEY"));
    let back = Keypair::from_pem(&pem).unwrap();
    assert_eq!(back.public(), kp.public());
    assert!(matches!(Keypair::from_pem("garbage"), Err(KeyError::Pem(_))));
    let truncated = &pem[..pem.len() / 2];
    assert!(Keypair::from_pem(truncated).is_err());
}

#[test]
fn domain_separation_changes_what_is_signed() {
    let kp = Keypair::from_seed([1; 32]);
    let cluster = digest(b"cluster");
    let a = signing_bytes(&cluster, 1, 3, b"body");
    let b = signing_bytes(&cluster, 2, 3, b"body");
    let c = signing_bytes(&cluster, 1, 4, b"body");
    let sig = kp.sign(&a);
    assert!(verify_one(&kp.public(), &a, &sig));
    assert!(!verify_one(&kp.public(), &b, &sig));
    assert!(!verify_one(&kp.public(), &c, &sig));
}

#[test]
fn batch_verdicts_equal_single_verdicts() {
    let mut rng = TestRng(42);
    let keys: Vec<Keypair> = (0..6).map(|i| Keypair::from_seed([i; 32])).collect();
    let mut items: Vec<VerifyItem> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let message = vec![i as u8; 10];
            VerifyItem { key: k.public(), signature: k.sign(&message), message }
        })
        .collect();
    assert_eq!(BatchVerifier::verify(&mut rng, &items), vec![true; 6]);
    items[2].signature.s[0] ^= 1;
    items[4].message.push(0);
    items[5].key = PublicKey([0xff; 32]);
    let batch = BatchVerifier::verify(&mut rng, &items);
    let single: Vec<bool> = items.iter().map(|i| verify_one(&i.key, &i.message, &i.signature)).collect();
    assert_eq!(batch, single);
    assert_eq!(batch, vec![true, true, false, true, false, false]);
}

#[test]
fn public_key_hex_round_trip() {
    let kp = Keypair::from_seed([9; 32]);
    assert_eq!(PublicKey::from_hex(&kp.public().to_hex()).unwrap(), kp.public());
    assert!(PublicKey::from_hex("zz").is_err());
}

#[test]
fn remembered_keys_change_no_verdict() {
    // Each key checked again and again: the decompressed-key cache must answer exactly as a
    // fresh decompression does, and never remember an invalid key.
    let (a, b) = (Keypair::from_seed([7; 32]), Keypair::from_seed([8; 32]));
    let m = b"message";
    let (sa, sb) = (a.sign(m), b.sign(m));
    for _ in 0..3 {
        assert!(verify_one(&a.public(), m, &sa));
        assert!(!verify_one(&a.public(), m, &sb));
        assert!(verify_one(&b.public(), m, &sb));
        assert!(!verify_one(&b.public(), b"other", &sb));
        assert!(!verify_one(&PublicKey([0xff; 32]), m, &sa));
    }
}

/// Signatures built from chosen scalars, to reach the encodings ZIP 215 has rules for.
mod crafted {
    use super::*;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::digest::Update;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;

    /// s = r + H(R ‖ A ‖ M)·a over the given encodings of A and R (R = rB + torsion).
    fn sign(a: Scalar, a_bytes: [u8; 32], r: Scalar, torsion: EdwardsPoint, m: &[u8]) -> VerifyItem {
        sign_encoded(a, a_bytes, r, (r * B + torsion).compress().to_bytes(), m)
    }

    /// The same with R given by its encoding (which must encode rB plus a torsion point).
    fn sign_encoded(a: Scalar, a_bytes: [u8; 32], r: Scalar, big_r: [u8; 32], m: &[u8]) -> VerifyItem {
        let k = Scalar::from_hash(sha2::Sha512::default().chain(&big_r[..]).chain(&a_bytes[..]).chain(m));
        let s = (r + k * a).to_bytes();
        VerifyItem { key: PublicKey(a_bytes), message: m.to_vec(), signature: Signature { r: big_r, s } }
    }

    fn scalar(i: u8) -> Scalar {
        Scalar::from_bytes_mod_order([i.wrapping_mul(37).wrapping_add(11); 32])
    }

    /// (item, accepted under ZIP 215)
    pub fn cases() -> Vec<(VerifyItem, bool)> {
        let order4 = CompressedEdwardsY([0; 32]).decompress().expect("y = 0 is a point of order 4");
        let zero = EdwardsPoint::default();
        // The identity encoded with y = p + 1: not canonical, accepted by ZIP 215.
        let mut identity_noncanonical = [0xff; 32];
        identity_noncanonical[0] = 0xee;
        identity_noncanonical[31] = 0x7f;
        let mut out = Vec::new();
        for i in 0..4u8 {
            let a = scalar(i);
            let a_bytes = (a * B).compress().to_bytes();
            let m = [i; 20];
            out.push((sign(a, a_bytes, scalar(i + 50), zero, &m), true));
            // A torsion component in R: the cofactored equation accepts, a cofactorless one would not.
            out.push((sign(a, a_bytes, scalar(i + 90), order4, &m), true));
            // s not reduced (s + ℓ): rejected.
            let mut item = sign(a, a_bytes, scalar(i + 120), zero, &m);
            let s = Scalar::from_canonical_bytes(item.signature.s).unwrap();
            item.signature.s = num_add(&s.to_bytes(), &ELL);
            out.push((item, false));
            // Another message under the same signature: rejected.
            let mut item = sign(a, a_bytes, scalar(i + 160), zero, &m);
            item.message.push(1);
            out.push((item, false));
        }
        // R in encodings `compress` never produces, under a real key: k must hash them as
        // received. y = p + 1 (the identity), y = p (a point of order 4), and y = 1 with the
        // sign bit set (the identity again, x = −0).
        let (a, a_bytes) = (scalar(9), (scalar(9) * B).compress().to_bytes());
        let mut order4_noncanonical = [0xff; 32];
        order4_noncanonical[0] = 0xed;
        order4_noncanonical[31] = 0x7f;
        let mut identity_signed = [0u8; 32];
        identity_signed[0] = 1;
        identity_signed[31] = 0x80;
        for (i, big_r) in
            [identity_noncanonical, order4_noncanonical, identity_signed].into_iter().enumerate()
        {
            let m = [0x40 + i as u8; 8];
            out.push((sign_encoded(a, a_bytes, Scalar::ZERO, big_r, &m), true));
        }
        // The non-canonical identity as a key, with a = 0.
        out.push((sign(Scalar::ZERO, identity_noncanonical, scalar(200), zero, b"noncanonical"), true));
        // Key bytes that are no curve point (y = 2 has no x): rejected.
        let mut bad = sign(scalar(1), (scalar(1) * B).compress().to_bytes(), scalar(210), zero, b"x");
        bad.key = PublicKey({
            let mut b = [0u8; 32];
            b[0] = 2;
            b
        });
        out.push((bad, false));
        out
    }

    /// ℓ, the group order, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    fn num_add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = a[i] as u16 + b[i] as u16 + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        out
    }
}

#[test]
fn crafted_edge_cases_are_judged_as_zip215_single_verification_judges_them() {
    for (item, accepted) in crafted::cases() {
        assert_eq!(verify_one(&item.key, &item.message, &item.signature), accepted, "{item:?}");
    }
}

#[test]
fn batch_equation_over_cached_points_agrees_with_the_reference_verifier() {
    let cases = crafted::cases();
    let valid: Vec<VerifyItem> = cases.iter().filter(|c| c.1).map(|c| c.0.clone()).collect();
    let mut rng = TestRng(7);
    // Every accepted edge case together, twice (the second time from remembered points, and
    // with repeated signers sharing a term): the equation holds.
    for _ in 0..2 {
        assert!(crate::equation::holds(&mut rng, &valid));
        let doubled: Vec<VerifyItem> = valid.iter().chain(&valid).cloned().collect();
        assert!(crate::equation::holds(&mut rng, &doubled));
    }
    // One rejected case among them breaks it, wherever it sits.
    for (bad, _) in cases.iter().filter(|c| !c.1) {
        for at in [0, valid.len() / 2, valid.len()] {
            let mut items = valid.clone();
            items.insert(at, bad.clone());
            assert!(!crate::equation::holds(&mut rng, &items), "{bad:?} at {at}");
        }
    }
    // Mixed batches, many coefficient draws: per-item verdicts equal the reference's and the
    // single verifier's.
    for seed in 0..40u64 {
        let mut rng = TestRng(seed);
        let mut items: Vec<VerifyItem> = Vec::new();
        for (i, (item, _)) in cases.iter().enumerate() {
            if (seed >> (i % 7)) & 1 == 0 || i % 3 == 0 {
                items.push(item.clone());
            }
        }
        let single: Vec<bool> = items.iter().map(|i| verify_one(&i.key, &i.message, &i.signature)).collect();
        assert_eq!(BatchVerifier::verify(&mut rng, &items), single, "seed {seed}");
        assert_eq!(BatchVerifier::verify_reference(&mut rng, &items), single, "seed {seed}");
    }
}
