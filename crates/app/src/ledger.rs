//! Accounts and transfers. Total balance is conserved by construction: a transfer moves an
//! amount from one account to another or changes nothing.

use phalanx_core::wire::RejectReason;
use phalanx_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The key that must sign transfers out of this account.
    pub owner: PublicKey,
    pub balance: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    pub name: String,
    pub owner: PublicKey,
    pub balance: u64,
}

/// The ledger's starting accounts: the application's part of a cluster's genesis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub accounts: Vec<GenesisAccount>,
}

pub(crate) fn transfer(
    accounts: &mut BTreeMap<String, Account>,
    signer: &PublicKey,
    from: &str,
    to: &str,
    amount: u64,
) -> Result<(), RejectReason> {
    let source = accounts.get(from).ok_or(RejectReason::UnknownAccount)?;
    if !accounts.contains_key(to) {
        return Err(RejectReason::UnknownAccount);
    }
    if &source.owner != signer {
        return Err(RejectReason::BadSignature);
    }
    if amount == 0 || from == to {
        return Err(RejectReason::InvalidAmount);
    }
    if source.balance < amount {
        return Err(RejectReason::Overdraft);
    }
    // Both lookups succeeded above; balances cannot overflow because the total is conserved and
    // fits in the u64 sum checked at genesis.
    if let Some(a) = accounts.get_mut(from) {
        a.balance -= amount;
    }
    if let Some(b) = accounts.get_mut(to) {
        b.balance = b.balance.saturating_add(amount);
    }
    Ok(())
}
