//! `phalanx keygen`: a new Ed25519 identity as a PKCS#8 PEM file.

use clap::Args;
use phalanx_crypto::Keypair;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct KeygenArgs {
    /// Name of the agent (printed with the public key).
    #[arg(long)]
    name: String,
    /// Where to write the private key; refuses to overwrite an existing file.
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn os_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").map_err(|e| format!("cannot open /dev/urandom: {e}"))?;
    std::io::Read::read_exact(&mut f, &mut seed).map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(seed)
}

pub fn run(a: KeygenArgs) -> Result<ExitCode, String> {
    let key = Keypair::from_seed(os_seed()?);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a.out)
        .map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    file.write_all(key.to_pem().as_bytes()).map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
    if a.json {
        let v = serde_json::json!({"name": a.name, "public_key": key.public().to_hex(), "file": a.out});
        println!("{v}");
    } else {
        println!("{}  {}  {}", a.name, key.public().to_hex(), a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}
