//! Inbound messages, served to the replica one member at a time. Each member's link has its own
//! queue, bounded by messages and by bytes; the replica loop takes from the queues in turn. A
//! member that floods fills only its own queue: its link then stops reading (its TCP window
//! closes on it), it gets its share of the loop and of the signature checks, and the messages of
//! the others wait behind at most one of its messages per turn, not behind its backlog.

use phalanx_core::wire::{Message, ReplicaId};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Messages queued from one member, at most.
const QUEUED_MESSAGES: usize = 1024;
/// Bytes (as framed) queued from one member, at most: one largest frame fits, with room.
const QUEUED_BYTES: usize = phalanx_core::wire::limits::MAX_MESSAGE_BYTES + (8 << 20);

/// A message and the share of its member's byte budget it holds until the loop takes it.
type Queued = (Message, OwnedSemaphorePermit);

/// The link's end of its member's queue.
pub struct MemberQueue {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
}

impl MemberQueue {
    /// Queues a message of `frame_len` bytes, waiting while the member's queue is full (the
    /// link stops reading meanwhile). Err: the loop dropped this queue (a newer link replaced
    /// it, or the node stops).
    pub async fn send(&self, m: Message, frame_len: usize) -> Result<(), ()> {
        let n = frame_len.clamp(1, QUEUED_BYTES) as u32;
        let permit = self.budget.clone().acquire_many_owned(n).await.map_err(|_| ())?;
        self.tx.send((m, permit)).await.map_err(|_| ())
    }
}

/// Where new links register their member's queue.
pub type Registrations = mpsc::Sender<(ReplicaId, mpsc::Receiver<Queued>)>;

/// A queue for a member's new link; the receiving end goes to the loop via `register`.
pub async fn member_queue(register: &Registrations, peer: ReplicaId) -> Option<MemberQueue> {
    let (tx, rx) = mpsc::channel(QUEUED_MESSAGES);
    register.send((peer, rx)).await.ok()?;
    Some(MemberQueue { tx, budget: Arc::new(Semaphore::new(QUEUED_BYTES)) })
}

/// The loop's end: every member's queue, taken from in turn.
pub struct FairInbound {
    registrations: mpsc::Receiver<(ReplicaId, mpsc::Receiver<Queued>)>,
    queues: Vec<(ReplicaId, mpsc::Receiver<Queued>)>,
    next: usize,
}

impl FairInbound {
    /// A new inbound side, and where links register.
    pub fn new() -> (FairInbound, Registrations) {
        let (tx, rx) = mpsc::channel(256);
        (FairInbound { registrations: rx, queues: Vec::new(), next: 0 }, tx)
    }

    /// The next message, from the member whose turn it is among those with messages waiting.
    pub async fn recv(&mut self) -> (ReplicaId, Message) {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// A waiting message, if any.
    pub fn try_recv(&mut self) -> Option<(ReplicaId, Message)> {
        match self.poll_next(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(m) => Some(m),
            Poll::Pending => None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(ReplicaId, Message)> {
        while let Poll::Ready(Some((peer, rx))) = self.registrations.poll_recv(cx) {
            // One queue per member: a newer link replaces the older one, whose link then ends.
            match self.queues.iter_mut().find(|(p, _)| *p == peer) {
                Some(q) => q.1 = rx,
                None => self.queues.push((peer, rx)),
            }
        }
        let n = self.queues.len();
        let mut closed = Vec::new();
        for k in 0..n {
            let i = (self.next + k) % n;
            match self.queues[i].1.poll_recv(cx) {
                Poll::Ready(Some((m, _permit))) => {
                    self.next = (i + 1) % n;
                    return Poll::Ready((self.queues[i].0, m));
                }
                Poll::Ready(None) => closed.push(i),
                Poll::Pending => {}
            }
        }
        // Collected in turn order, which wraps around: remove from the highest index down, or
        // an earlier removal shifts a later index past the end (a panic that took down a node
        // whose peers' links closed at once).
        closed.sort_unstable_by(|a, b| b.cmp(a));
        for i in closed {
            self.queues.remove(i);
        }
        self.next = 0;
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_core::wire::{ClientRequest, Message};
    use phalanx_crypto::PublicKey;

    fn msg(i: u64) -> Message {
        Message::Request(ClientRequest::opaque(PublicKey([0; 32]), i, Vec::new()))
    }

    #[tokio::test]
    async fn a_flooding_member_gets_one_turn_in_each_round() {
        let (mut inbound, register) = FairInbound::new();
        let flooder = member_queue(&register, 1).await.unwrap();
        let honest = member_queue(&register, 2).await.unwrap();
        for i in 0..500 {
            flooder.send(msg(i), 100).await.unwrap();
        }
        for i in 0..3 {
            honest.send(msg(1000 + i), 100).await.unwrap();
        }
        // The honest member's three messages come within the first six, not after 500.
        let first: Vec<ReplicaId> = (0..6).map(|_| inbound.try_recv().unwrap().0).collect();
        assert_eq!(first.iter().filter(|p| **p == 2).count(), 3, "{first:?}");
    }

    #[tokio::test]
    async fn links_that_close_together_past_the_turn_are_all_forgotten() {
        let (mut inbound, register) = FairInbound::new();
        let mut queues = Vec::new();
        for peer in 0..6 {
            queues.push(member_queue(&register, peer).await.unwrap());
        }
        // The turn moves to the fifth queue; then the first and the last links close. Seen in
        // turn order (4, 5, 0, ...), the closed ones are 5 then 0.
        for _ in 0..4 {
            queues[4].send(msg(0), 1).await.unwrap();
        }
        assert_eq!(inbound.try_recv().unwrap().0, 4);
        assert_eq!(inbound.try_recv().unwrap().0, 4);
        let (last, first) = (queues.pop().unwrap(), queues.remove(0));
        drop((last, first));
        // Both are dropped without a panic, and the others still deliver.
        while inbound.try_recv().is_some() {}
        queues[1].send(msg(1), 1).await.unwrap();
        assert_eq!(inbound.try_recv().unwrap().0, 2);
    }

    #[tokio::test]
    async fn a_member_queue_is_bounded_in_bytes_and_a_full_one_waits() {
        let (mut inbound, register) = FairInbound::new();
        let q = member_queue(&register, 1).await.unwrap();
        q.send(msg(0), QUEUED_BYTES).await.unwrap();
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), q.send(msg(1), 1)).await;
        assert!(blocked.is_err(), "a full queue took more");
        assert!(inbound.try_recv().is_some());
        // Taking the message released its bytes.
        q.send(msg(2), 1).await.unwrap();
    }
}
