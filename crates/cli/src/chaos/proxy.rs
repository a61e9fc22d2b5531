//! A fault-injecting TCP proxy for every ordered pair of members. Member `i` dials member `j`
//! through the proxy for link (i, j) (the `dial` table of its node.toml), so each direction of
//! each pair can be cut, stalled, slowed or corrupted on its own, while the members see an
//! ordinary network. Only loopback is ever addressed.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the network does to the connections one member opens to another. A link is named by
/// the member that dials (`from`) and the one it dials (`to`); the fault applies to the bytes
/// flowing both ways on those connections (handshake answers included). Member to member
/// traffic uses the connection the sender opened, so (from, to) carries from's messages to to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFault {
    /// Connections are reset and new ones refused (a host that is down).
    pub cut: bool,
    /// Nothing is read or forwarded, connections stay open (a partition that drops packets
    /// silently); what was sent arrives, late, when the stall ends.
    pub stall: bool,
    /// Every chunk is held this long before it is forwarded (order is kept).
    pub delay_ms: u64,
    /// One chunk in this many has one byte flipped (0: never).
    pub corrupt_one_in: u32,
}

/// The faults of every link, shared by the proxies; a change wakes every connection.
#[derive(Clone)]
pub struct Network {
    n: usize,
    faults: Arc<watch::Sender<Vec<LinkFault>>>,
    bytes: Arc<Mutex<u64>>,
}

impl Network {
    pub fn new(n: usize) -> Self {
        let (tx, _) = watch::channel(vec![LinkFault::default(); n * n]);
        Network { n, faults: Arc::new(tx), bytes: Arc::new(Mutex::new(0)) }
    }

    /// Sets the fault of the link from `from` to `to` (the connection `from` opened).
    pub fn set(&self, from: usize, to: usize, fault: LinkFault) {
        let n = self.n;
        self.faults.send_modify(|f| f[from * n + to] = fault);
    }

    /// Both directions between every member of `a` and every member of `b`.
    pub fn set_between(&self, a: &[usize], b: &[usize], fault: LinkFault) {
        let n = self.n;
        self.faults.send_modify(|f| {
            for &i in a {
                for &j in b {
                    if i != j {
                        f[i * n + j] = fault;
                        f[j * n + i] = fault;
                    }
                }
            }
        });
    }

    pub fn heal(&self) {
        self.faults.send_modify(|f| f.iter_mut().for_each(|l| *l = LinkFault::default()));
    }

    pub fn fault(&self, from: usize, to: usize) -> LinkFault {
        self.faults.borrow()[from * self.n + to]
    }

    /// Bytes forwarded so far, all links.
    pub fn bytes(&self) -> u64 {
        *self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Listens for link (from, to) on an OS-chosen loopback port and forwards to `target`.
    pub async fn listen(
        &self,
        from: usize,
        to: usize,
        target: SocketAddr,
        seed: u64,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let net = self.clone();
        tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    // Out of descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                reset_on_close(&inbound);
                if net.fault(from, to).cut {
                    continue;
                }
                let (net, seeds) = (net.clone(), (rng.random(), rng.random()));
                tokio::spawn(async move {
                    let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target));
                    let Ok(Ok(outbound)) = connect.await else { return };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    reset_on_close(&outbound);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    // Data flows both ways on a link (the handshake answers), and the fault of
                    // the link applies to both: a cut pair is cut in both directions.
                    tokio::spawn(pump(net.clone(), from, to, ri, wo, seeds.0));
                    tokio::spawn(pump(net, from, to, ro, wi, seeds.1));
                });
            }
        });
        Ok(addr)
    }
}

/// Closing sends a reset, as a host that is down does. (Deprecated in tokio because a nonzero
/// linger blocks the thread on drop; a zero linger never waits.)
#[allow(deprecated)]
fn reset_on_close(s: &TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
}

/// Copies one direction of a connection under the link's current fault, until either side
/// closes or the link is cut.
async fn pump(
    net: Network,
    from: usize,
    to: usize,
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut faults = net.faults.subscribe();
    // A writer task keeps the order of delayed chunks without blocking the reader.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if w.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let fault = net.fault(from, to);
        if fault.cut {
            break;
        }
        if fault.stall {
            if faults.changed().await.is_err() {
                break;
            }
            continue;
        }
        tokio::select! {
            read = r.read(&mut buf) => {
                let len = match read {
                    Ok(0) | Err(_) => break,
                    Ok(len) => len,
                };
                let mut chunk = buf[..len].to_vec();
                let fault = net.fault(from, to);
                if fault.corrupt_one_in > 0 && rng.random_range(0..fault.corrupt_one_in) == 0 {
                    let at = rng.random_range(0..len);
                    chunk[at] ^= 1 << rng.random_range(0..8);
                }
                *net.bytes.lock().unwrap_or_else(|p| p.into_inner()) += len as u64;
                let due = tokio::time::Instant::now() + Duration::from_millis(fault.delay_ms);
                // The writer may be stuck on a peer that does not read: a cut must still close.
                let permit = loop {
                    tokio::select! {
                        permit = tx.reserve() => break permit.ok(),
                        changed = faults.changed() => {
                            if changed.is_err() || net.fault(from, to).cut {
                                break None;
                            }
                        }
                    }
                };
                let Some(permit) = permit else { break };
                permit.send((due, chunk));
            }
            changed = faults.changed() => if changed.is_err() { break },
        }
    }
    drop(tx);
    if net.fault(from, to).cut {
        writer.abort();
    } else {
        let _ = writer.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(within, s.read_exact(&mut got)).await.ok()?.ok()?;
        Some(got)
    }

    #[tokio::test]
    async fn links_forward_stall_delay_corrupt_and_cut_as_told() {
        let net = Network::new(2);
        let proxy = net.listen(0, 1, echo_server().await, 7).await.unwrap();
        let mut s = TcpStream::connect(proxy).await.unwrap();
        assert_eq!(
            round_trip(&mut s, b"hello", Duration::from_secs(2)).await.as_deref(),
            Some(&b"hello"[..])
        );

        // A stall holds the bytes; they arrive once it ends.
        net.set(0, 1, LinkFault { stall: true, ..Default::default() });
        assert_eq!(round_trip(&mut s, b"held", Duration::from_millis(300)).await, None);
        net.heal();
        let mut late = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut late)).await.unwrap().unwrap();
        assert_eq!(&late, b"held");

        // A delay applies on each way through the proxy.
        net.set(0, 1, LinkFault { delay_ms: 150, ..Default::default() });
        let start = std::time::Instant::now();
        round_trip(&mut s, b"slow", Duration::from_secs(3)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());

        // Corruption flips bits.
        net.set(0, 1, LinkFault { corrupt_one_in: 1, ..Default::default() });
        assert_ne!(
            round_trip(&mut s, b"intact", Duration::from_secs(2)).await.as_deref(),
            Some(&b"intact"[..])
        );

        // A cut closes the connection and refuses new ones until it heals.
        net.set(0, 1, LinkFault { cut: true, ..Default::default() });
        assert_eq!(round_trip(&mut s, b"gone", Duration::from_millis(500)).await, None);
        let mut fresh = TcpStream::connect(proxy).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"refused", Duration::from_millis(500)).await, None);
        net.heal();
        let mut again = TcpStream::connect(proxy).await.unwrap();
        assert_eq!(
            round_trip(&mut again, b"back", Duration::from_secs(2)).await.as_deref(),
            Some(&b"back"[..])
        );
    }
}
