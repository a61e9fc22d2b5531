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
