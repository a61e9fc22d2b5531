//! Replica links under attack, over real TCP.

use bytes::BufMut;
use phalanx_core::wire::{self, Message, Phase, Signed, Vote};
use phalanx_crypto::{Digest, Keypair, VerdictCache, verify_one};
use phalanx_node::directory::{Agent, Directory};
use phalanx_node::transport::{FairInbound, Identity, accept_loop, connect_loop, outbox};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const X: u32 = 0;
const R: u32 = 1;

fn vote(seq: u64, from: u32, key: &Keypair, cluster: &Digest) -> Signed<Vote> {
    let body = Vote { phase: Phase::Prepare, epoch: 0, view: 0, seq, digest: Digest([seq as u8; 32]) };
    Signed::sign(body, from, key, cluster)
}

/// Copies bytes one way, keeping a copy of everything seen, until either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: Arc<tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>>,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.lock().await.write_all(&buf[..n]).await.is_err() {
            break;
        }
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

/// Two members, X and R, and R listening: what its links deliver lands in `inbound`.
struct Pair {
    cluster: Digest,
    kx: Keypair,
    x: Identity,
    r_addr: std::net::SocketAddr,
    inbound: FairInbound,
    /// Whom R knows, and where.
    r_directory: phalanx_node::directory::SharedDirectory,
}

async fn pair() -> Pair {
    let cluster = Digest([7; 32]);
    let (kx, kr) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
    let agent = |name: &str, key: &Keypair| Agent {
        name: name.into(),
        key: key.public(),
        replica_addr: None,
        http_addr: None,
        voter: true,
    };
    let directory = |id| {
        Arc::new(RwLock::new(Directory {
            id,
            epoch: 0,
            f: 0,
            quorum: 1,
            agents: vec![agent("x", &kx), agent("r", &kr)],
        }))
    };
    let x = Identity { key: kx.clone(), cluster, directory: directory(X), views: Default::default() };
    let r_directory = directory(R);
    let r = Identity { key: kr.clone(), cluster, directory: r_directory.clone(), views: Default::default() };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r_addr = listener.local_addr().unwrap();
    let (inbound, registrations) = FairInbound::new();
    let seen = Arc::new(Mutex::new(vec![None; 2]));
    tokio::spawn(accept_loop(
        listener,
        r,
        registrations,
        Arc::new(VerdictCache::new(1024)),
        seen,
        [9; 32],
        Default::default(),
    ));
    Pair { cluster, kx, x, r_addr, inbound, r_directory }
}

/// A network attacker between two members: it relays the bytes of member X's link to member R and
/// then writes its own frame into the stream, a vote "from X" under a signature X never made. On a
/// link authenticated only at connection time, R took that frame as X's and accused X of
/// corrupting signatures (framing an honest member). On the secure channel the relay can neither
/// read what X sends nor inject a frame R will open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_between_two_members_can_neither_read_nor_frame_them() {
    let Pair { cluster, kx, x, r_addr, mut inbound, .. } = pair().await;
    let attacker = Keypair::from_seed([3; 32]);

    // The relay: X dials it believing it is R; it dials R and copies both ways. On a signal it
    // writes its own frame, a length-delimited vote "from X" that X never signed.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let upstream_bytes = Arc::new(Mutex::new(Vec::new()));
    let (inject_tx, inject_rx) = watch::channel(false);
    let forged = wire::encode(&Message::Vote(vote(99, X, &attacker, &cluster)));
    {
        let upstream_bytes = upstream_bytes.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = relay.accept().await {
                let Ok(server) = TcpStream::connect(r_addr).await else { continue };
                let (c_read, c_write) = client.into_split();
                let (s_read, s_write) = server.into_split();
                let s_write = Arc::new(tokio::sync::Mutex::new(s_write));
                let c_write = Arc::new(tokio::sync::Mutex::new(c_write));
                tokio::spawn(pump(c_read, s_write.clone(), upstream_bytes.clone()));
                tokio::spawn(pump(s_read, c_write, Arc::new(Mutex::new(Vec::new()))));
                let (mut go, forged) = (inject_rx.clone(), forged.clone());
                tokio::spawn(async move {
                    if go.wait_for(|g| *g).await.is_ok() {
                        let mut frame = Vec::new();
                        frame.put_u32(forged.len() as u32);
                        frame.extend_from_slice(&forged);
                        let _ = s_write.lock().await.write_all(&frame).await;
                    }
                });
            }
        });
    }

    // X's outbound link to "R" goes through the relay; X sends an honest vote.
    let (outbox, rx) = outbox();
    tokio::spawn(connect_loop(x, R, relay_addr, rx));
    let honest = wire::encode(&Message::Vote(vote(1, X, &kx, &cluster)));
    assert!(outbox.try_send(honest.clone().into()));
    let (from, first) = tokio::time::timeout(Duration::from_secs(10), inbound.recv()).await.unwrap();
    assert_eq!((from, wire::encode(&first)), (X, honest.clone()), "the relayed link still carries X's votes");

    // The relay injects its frame, then X keeps talking.
    inject_tx.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(outbox.try_send(wire::encode(&Message::Vote(vote(2, X, &kx, &cluster))).into()));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Nothing R's transport handed on as X's is anything but X's own signed vote.
    while let Some((from, m)) = inbound.try_recv() {
        let Message::Vote(v) = m else { panic!("R received a message X never sent: {m:?}") };
        let item = v.verify_item(kx.public(), &cluster);
        assert!(
            from == X && verify_one(&item.key, &item.message, &item.signature),
            "R took a frame the relay wrote as member {from}'s (seq {})",
            v.body.seq
        );
    }
    // And the relay saw no plaintext: X's vote is not in the bytes it copied.
    let copied = upstream_bytes.lock().unwrap().clone();
    assert!(!copied.is_empty());
    assert!(
        !copied.windows(honest.len()).any(|w| w == honest.as_slice()),
        "the relay read X's vote in the clear"
    );
}

/// A peer that claims member X's key without holding it: it completes the Noise handshake but
/// cannot sign this session's transcript with X's key, so R refuses it before reading anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_with_a_members_key_but_not_its_secret_is_refused() {
    let Pair { cluster, kx, r_addr, mut inbound, .. } = pair().await;
    let mut stream = TcpStream::connect(r_addr).await.unwrap();
    let mut prologue = b"phalanx-link/1".to_vec();
    prologue.extend_from_slice(&cluster.0);
    let params = "Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
    let mut hs = snow::Builder::new(params).prologue(&prologue).unwrap().build_initiator().unwrap();
    let (mut msg, mut payload) = (vec![0u8; 1024], vec![0u8; 1024]);
    let n = hs.write_message(&[], &mut msg).unwrap();
    write_frame(&mut stream, &msg[..n]).await;
    let reply = read_frame(&mut stream).await.expect("R answers the handshake");
    hs.read_message(&reply, &mut payload).unwrap();
    let mut session = hs.into_transport_mode().unwrap();
    // X's key, with a signature made by another key over the right transcript shape.
    // Sealed as the channel seals a one-chunk frame: a first byte saying it is the last chunk.
    let sealed = |body: Vec<u8>| [vec![1u8], body].concat();
    let forged = (kx.public(), Keypair::from_seed([3; 32]).sign(b"not X"));
    let n = session.write_message(&sealed(wire::to_bytes(&forged)), &mut msg).unwrap();
    write_frame(&mut stream, &msg[..n]).await;
    let vote = wire::encode(&Message::Vote(vote(5, X, &kx, &cluster)));
    let n = session.write_message(&sealed(vote), &mut msg).unwrap();
    write_frame(&mut stream, &msg[..n]).await;
    // R sends its own proof, then closes.
    let mut closed = false;
    for _ in 0..3 {
        if read_frame(&mut stream).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "R kept the impostor's link open");
    assert!(inbound.try_recv().is_none(), "R delivered a message from an impostor");
}

async fn write_frame(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(&(bytes.len() as u32).to_be_bytes()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("R neither answers nor closes")
}

/// Strangers open connections and leave them hanging in the handshake. Slots are shared no
/// more: connections from hosts that are not members' have their own small share, so a member
/// still links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_take_the_connection_slots_of_members() {
    let Pair { cluster, kx, x, r_addr, mut inbound, r_directory } = pair().await;
    // Members live on 127.0.0.1 (their directory addresses); strangers come from 127.0.0.2.
    if let Ok(mut d) = r_directory.write() {
        d.agents[0].replica_addr = Some("127.0.0.1:1".parse().unwrap());
    }
    let mut hanging = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(s) = socket.connect(r_addr).await {
            hanging.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (outbox, rx) = outbox();
    tokio::spawn(connect_loop(x, R, r_addr, rx));
    let vote = wire::encode(&Message::Vote(vote(1, X, &kx, &cluster)));
    assert!(outbox.try_send(vote.into()));
    let got = tokio::time::timeout(Duration::from_secs(4), inbound.recv()).await;
    assert!(got.is_ok_and(|(from, _)| from == X), "the member could not link");
    drop(hanging);
}

/// A member that floods validly signed messages as fast as its link takes them. Before links
/// were metered, the receiver opened, decoded and verified all of it: the flooder bought as much
/// of the receiver's CPU as it cared to send. Now the link is read against the member's budget
/// (here, with no other member to compare with, the floor of 1,000 signature checks a second
/// after a burst of 4,096), and the rest of the flood waits unread on the flooder's side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_member_is_read_no_faster_than_its_budget() {
    let Pair { cluster, kx, x, r_addr, mut inbound, .. } = pair().await;
    const SENT: u64 = 30_000;
    let frames: Vec<Vec<u8>> =
        (0..SENT).map(|s| wire::encode(&Message::Vote(vote(s, X, &kx, &cluster)))).collect();
    let mut link = phalanx_node::transport::Link::dial(&x, r_addr).await.unwrap();
    let flood = tokio::spawn(async move {
        for chunk in frames.chunks(256) {
            let chunk: Vec<&[u8]> = chunk.iter().map(|f| f.as_slice()).collect();
            if link.send(&chunk).await.is_err() {
                return;
            }
        }
        // Keep the link open while the receiver reads.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let start = tokio::time::Instant::now();
    let mut taken = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        match inbound.try_recv() {
            Some(_) => taken += 1,
            None => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    flood.abort();
    // Burst and three seconds of the floor, and one read-ahead of 64 messages, with slack for
    // the clock; far below what was sent.
    let budget = 4096 + 3 * 1000 + 64;
    assert!(
        taken <= budget * 11 / 10,
        "took {taken} of the flood's {SENT} messages in 3 s (budget {budget})"
    );
    // And the member is still heard: its link is slowed, not dropped.
    assert!(taken >= 4096 + 1000, "took only {taken}: the member was shut out, not metered");
}
