//! Decoding untrusted bytes: total (an error, never a panic) and bounded by the limits.

use super::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message of {0} bytes exceeds the {max} byte limit", max = limits::MAX_MESSAGE_BYTES)]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("message exceeds a limit: {0}")]
    Limit(&'static str),
}

pub fn encode(msg: &Message) -> Vec<u8> {
    to_bytes(msg)
}

/// Decodes untrusted bytes into a message whose collections are within limits. Never panics.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    decode_value::<Message>(bytes).and_then(|m| {
        check_limits(&m)?;
        Ok(m)
    })
}

/// Total decoding of any wire value: size-checked, no trailing bytes.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > limits::MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

pub(crate) fn check_batch(b: &Batch) -> Result<(), WireError> {
    if b.requests.len() > limits::MAX_BATCH_REQUESTS {
        return Err(WireError::Limit("too many requests in a batch"));
    }
    b.requests.iter().try_for_each(check_request)
}

/// Size limits of one client request (what [`check_limits`] checks of a `Message::Request`,
/// without building the message).
pub fn check_request(r: &ClientRequest) -> Result<(), WireError> {
    match &r.body.op {
        Operation::Transfer { from, to, .. } => {
            if from.len() > limits::MAX_ACCOUNT_NAME || to.len() > limits::MAX_ACCOUNT_NAME {
                return Err(WireError::Limit("account name too long"));
            }
        }
        Operation::MemoryStore { namespace, key, value, .. } => {
            if namespace.len() > limits::MAX_MEMORY_NAMESPACE {
                return Err(WireError::Limit("memory namespace longer than 64 bytes"));
            }
            if key.is_empty() || key.len() > limits::MAX_MEMORY_KEY {
                return Err(WireError::Limit("memory key empty or longer than 256 bytes"));
            }
            if value.len() > limits::MAX_MEMORY_VALUE {
                return Err(WireError::Limit("memory value larger than 16 KiB"));
            }
        }
        Operation::Report(bytes) => {
            if bytes.len() > limits::MAX_REPORT_BYTES {
                return Err(WireError::Limit("report larger than 1 MiB"));
            }
        }
        Operation::Opaque(payload) => {
            if payload.len() > limits::MAX_OPAQUE_BYTES {
                return Err(WireError::Limit("opaque payload larger than 64 KiB"));
            }
        }
        Operation::Operator(OperatorAction::LiftQuarantine { member })
            if member.len() > limits::MAX_ACCOUNT_NAME =>
        {
            return Err(WireError::Limit("member name too long"));
        }
        Operation::Operator(OperatorAction::UpdateQuorum { remove, add, .. }) => {
            if remove.len() + add.len() > limits::MAX_MEMBERS {
                return Err(WireError::Limit("too many members in a reconfiguration"));
            }
            let long = |s: &String| s.len() > limits::MAX_ACCOUNT_NAME;
            if remove.iter().any(long)
                || add.iter().any(|j| long(&j.name) || long(&j.replica_addr) || long(&j.http_addr))
            {
                return Err(WireError::Limit("member name or address longer than 64 bytes"));
            }
        }
        Operation::Operator(OperatorAction::ShareNamespace { namespace })
            if namespace.len() > limits::MAX_MEMORY_NAMESPACE =>
        {
            return Err(WireError::Limit("memory namespace longer than 64 bytes"));
        }
        Operation::Operator(_) => {}
        Operation::Federated(op) => op.check_limits()?,
        Operation::Decision(op) => op.check_limits()?,
    }
    Ok(())
}

fn check_cert(c: &CheckpointCert) -> Result<(), WireError> {
    if c.proofs.len() > limits::MAX_MEMBERS {
        return Err(WireError::Limit("too many checkpoint proofs"));
    }
    Ok(())
}

pub(crate) fn check_view_change(vc: &ViewChange) -> Result<(), WireError> {
    check_cert(&vc.stable)?;
    if vc.prepared.len() > limits::MAX_PREPARED_CERTS {
        return Err(WireError::Limit("too many prepared certificates"));
    }
    for p in &vc.prepared {
        if p.prepares.len() > limits::MAX_MEMBERS {
            return Err(WireError::Limit("too many prepares in a certificate"));
        }
    }
    Ok(())
}

/// Collection limits the type system cannot express.
pub fn check_limits(m: &Message) -> Result<(), WireError> {
    match m {
        Message::Request(r) => check_request(r),
        Message::PrePrepare(_, b) => check_batch(b),
        Message::ViewChange(vc) => check_view_change(&vc.body),
        Message::NewView(nv) => {
            if nv.body.view_changes.len() > limits::MAX_MEMBERS
                || nv.body.pre_prepares.len() > limits::MAX_PREPARED_CERTS
            {
                return Err(WireError::Limit("new-view too large"));
            }
            nv.body.view_changes.iter().try_for_each(|vc| check_view_change(&vc.body))
        }
        Message::StateResponse(s) => check_cert(&s.body.cert),
        Message::Committed(c) => {
            if c.commits.len() > limits::MAX_MEMBERS {
                return Err(WireError::Limit("too many commits in a certificate"));
            }
            check_batch(&c.batch)
        }
        Message::BatchRequest(r) => {
            if r.body.wanted.len() > limits::MAX_PREPARED_CERTS {
                return Err(WireError::Limit("too many batches asked for"));
            }
            Ok(())
        }
        Message::Batch(_, b) => check_batch(b),
        Message::Vote(_) | Message::Checkpoint(_) | Message::StateRequest(_) | Message::Fetch(_) => Ok(()),
    }
}
