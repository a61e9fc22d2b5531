//! The client's rules for whom to believe, tested directly. The reference scenario's attack:
//! agents 5 and 6 are replaced by 8 and 9; a client that took replies from anyone ever in
//! genesis, with genesis f, accepted a forged result signed by the two removed agents and one
//! faulty voter (f+1 = 3 at n = 7).

use phalanx_app::Config;
use phalanx_client::Membership;
use phalanx_client::membership::HANDOVER_MS;
use phalanx_core::consensus::{Epoch, Member, Params};
use phalanx_core::state::Genesis;
use phalanx_core::wire::{
    Batch, ClientRequest, CommitCert, EpochProof, Joiner, Operation, OperatorAction, Outcome, Phase, Reply,
    ReplyEntry, RequestBody, Signed, Vote,
};
use phalanx_crypto::{Keypair, digest};

const SEQ: u64 = 7;
const COMMITTED_AT_MS: u64 = 1_000_000;

struct World {
    keys: Vec<Keypair>,
    operator: Keypair,
    config: Config,
}

fn world() -> World {
    let keys: Vec<Keypair> = (0..9).map(|i| Keypair::from_seed([i as u8 + 1; 32])).collect();
    let operator = Keypair::from_seed([100; 32]);
    let members =
        (0..7).map(|i| Member { name: format!("bft-agent-{}", i + 1), key: keys[i].public() }).collect();
    let genesis = Genesis { operator: Some(operator.public()), ..Genesis::default() };
    let config = Config {
        cluster_id: digest(b"membership-test"),
        epoch: Epoch::genesis(members, 2),
        params: Params::default(),
        genesis,
        app: Default::default(),
    };
    World { keys, operator, config }
}

impl World {
    /// The operator's reconfiguration: agents 5 and 6 (ids 4, 5) out, 8 and 9 in.
    fn replacement(&self, signer: &Keypair) -> ClientRequest {
        let joiner = |i: usize| Joiner {
            name: format!("bft-agent-{}", i + 1),
            key: self.keys[i].public(),
            replica_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
        };
        let op = Operation::Operator(OperatorAction::UpdateQuorum {
            remove: vec!["bft-agent-5".into(), "bft-agent-6".into()],
            add: vec![joiner(7), joiner(8)],
            f: None,
        });
        ClientRequest::sign(
            RequestBody { client: signer.public(), nonce: 1, op },
            signer,
            &self.config.cluster_id,
        )
    }

    fn cert(&self, req: &ClientRequest, committers: &[u32]) -> CommitCert {
        let batch = Batch { timestamp_ms: COMMITTED_AT_MS, requests: vec![req.clone()].into() };
        let vote = Vote { phase: Phase::Commit, epoch: 0, view: 0, seq: SEQ, digest: batch.digest() };
        let commits = committers
            .iter()
            .map(|&i| Signed::sign(vote.clone(), i, &self.keys[i as usize], &self.config.cluster_id))
            .collect();
        CommitCert { commits, batch }
    }

    fn reply(&self, from: u32, epoch: u64, seq: u64, req: &ClientRequest, outcome: Outcome) -> Signed<Reply> {
        let entry =
            ReplyEntry { client: req.body.client, nonce: req.body.nonce, op: req.op_digest(), outcome };
        let body = Reply { epoch, view: 0, seq, entries: vec![entry] };
        Signed::sign(body, from, &self.keys[from as usize], &self.config.cluster_id)
    }

    fn proofs(&self, req: &ClientRequest, committers: &[u32], repliers: &[u32]) -> Vec<EpochProof> {
        let cert = self.cert(req, committers);
        repliers
            .iter()
            .map(|&i| EpochProof {
                request: req.clone(),
                cert: cert.clone(),
                reply: self.reply(i, 0, SEQ, req, Outcome::Applied),
            })
            .collect()
    }
}

#[test]
fn replies_of_removed_members_do_not_count_after_a_replacement() {
    let w = world();
    let mut m = Membership::genesis(&w.config);
    let req = w.replacement(&w.operator);
    let payment = ClientRequest::sign(
        RequestBody {
            client: w.operator.public(),
            nonce: 2,
            op: Operation::Transfer { from: "a".into(), to: "b".into(), amount: 1 },
        },
        &w.operator,
        &w.config.cluster_id,
    );
    // Epoch 1 is unknown until proven.
    assert!(m.reply_weight(&w.reply(7, 1, 300, &payment, Outcome::Applied)).is_err());
    m.learn(1, &w.proofs(&req, &[0, 1, 2, 3, 6], &[0, 1, 6])).unwrap();
    let epoch = m.epoch(1).unwrap();
    assert_eq!(epoch.voters, vec![0, 1, 2, 3, 6, 7, 8]);

    // The removed agents 5 and 6 (ids 4, 5) and faulty voter 0 sign a forged result in epoch 1:
    // only agent 0's reply counts, one of the f+1 = 3 needed.
    let forged: Vec<_> = [4, 5, 0].map(|i| w.reply(i, 1, 300, &payment, Outcome::Applied)).to_vec();
    let counted = forged.iter().filter(|r| m.reply_weight(r).is_ok()).count();
    assert_eq!(counted, 1);
    // The same three in epoch 0, where all three were voters, for a request created a minute
    // after epoch 1 was committed: epoch 0 had ended before the request existed.
    for r in [4, 5, 0].map(|i| w.reply(i, 0, 300, &payment, Outcome::Applied)) {
        assert_eq!(m.reply_weight(&r), Ok(2), "signatures of epoch-0 voters are valid as such");
    }
    assert!(!m.may_have_executed_in(0, COMMITTED_AT_MS + HANDOVER_MS + 1));
    assert!(m.may_have_executed_in(0, COMMITTED_AT_MS));
    assert!(m.may_have_executed_in(1, COMMITTED_AT_MS + HANDOVER_MS + 1));
    // Honest voters of epoch 1, joiners included, count.
    for i in [1, 7, 8] {
        assert_eq!(m.reply_weight(&w.reply(i, 1, 300, &payment, Outcome::Applied)), Ok(2));
    }
}

#[test]
fn an_epoch_is_taken_only_on_a_proof_the_client_checks() {
    let w = world();
    let req = w.replacement(&w.operator);
    let refused = |proofs: Vec<EpochProof>| {
        let mut m = Membership::genesis(&w.config);
        m.learn(1, &proofs).expect_err("a bad proof was taken");
        assert_eq!(m.latest().number, 0);
    };
    // Four commits are not a quorum of seven.
    refused(w.proofs(&req, &[0, 1, 2, 3], &[0, 1, 2]));
    // Two replies are not f+1 (the removed pair alone cannot vouch for it).
    refused(w.proofs(&req, &[0, 1, 2, 3, 6], &[4, 5]));
    // A reconfiguration not signed by the operator.
    let rogue = w.replacement(&w.keys[4]);
    refused(w.proofs(&rogue, &[0, 1, 2, 3, 6], &[0, 1, 2]));
    // Replies that say it was rejected.
    let cert = w.cert(&req, &[0, 1, 2, 3, 6]);
    let rejected = [0, 1, 2]
        .map(|i| EpochProof {
            request: req.clone(),
            cert: cert.clone(),
            reply: w.reply(
                i,
                0,
                SEQ,
                &req,
                Outcome::Rejected(phalanx_core::wire::RejectReason::Unauthorized),
            ),
        })
        .to_vec();
    refused(rejected);
    // A certificate of a batch that does not hold the request.
    let other = w.replacement(&w.operator);
    let mut proofs = w.proofs(&req, &[0, 1, 2, 3, 6], &[0, 1, 2]);
    let mut elsewhere = w.cert(&other, &[0, 1, 2, 3, 6]);
    elsewhere.batch.timestamp_ms += 1;
    for p in &mut proofs {
        p.cert = elsewhere.clone();
    }
    refused(proofs);
}
