//! Re-verifying the audit log: every entry's hash and link, every request's
//! signature with its client's keys, every reply's with the server's key,
//! and that each reply answers its request. The first break is reported.

use super::{entry_hash, AuditEntry, AuditQuery, AuditStore, GENESIS};
use crate::error::StoreError;
use lacre_proto::{Envelope, Response, VerifyingKey, REPLY_LIMITS};
use std::collections::HashMap;

/// The keys an audit is checked with (from the server's configuration).
#[derive(Debug, Clone)]
pub struct AuditKeys {
    /// The server's id.
    pub server_id: String,
    /// The server's key, as verified.
    pub server: VerifyingKey,
    /// Each client's keys (retired ones too, to check old entries).
    pub clients: HashMap<String, Vec<VerifyingKey>>,
}

/// One chain, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// Its id.
    pub chain: String,
    /// Its first kept entry (above 1 when older ones were pruned).
    pub first_seq: i64,
    /// Its last entry.
    pub last_seq: i64,
    /// The last entry's hash: record it elsewhere to detect a truncation
    /// later.
    pub head: String,
}

/// The whole log, verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// The chains, in id order.
    pub chains: Vec<ChainSummary>,
}

/// Where and why the log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain {chain} entry {seq}: {what}")]
pub struct AuditBreak {
    /// The chain.
    pub chain: String,
    /// The entry.
    pub seq: i64,
    /// What is wrong.
    pub what: String,
}

/// Checks one entry on its own (not its link).
pub fn check_entry(e: &AuditEntry, keys: &AuditKeys) -> Result<(), String> {
    if entry_hash(e) != e.hash {
        return Err("altered: its hash does not match its content".to_owned());
    }
    let env = Envelope::parse(e.request.as_bytes(), REPLY_LIMITS)
        .map_err(|err| format!("the request is not an envelope: {err}"))?;
    if env.client_id != e.client_id || env.tool != e.tool || env.request_id != e.request_id {
        return Err("its client, tool or request_id columns differ from its request".to_owned());
    }
    let client_keys = keys.clients.get(&e.client_id).ok_or_else(|| {
        format!(
            "client {:?} is not in the configuration (add its keys, retired ones included)",
            e.client_id
        )
    })?;
    let signed = env.signing_bytes();
    if !client_keys
        .iter()
        .any(|k| k.verify_hex(&signed, &env.signature).is_ok())
    {
        return Err(format!(
            "the request's signature does not verify with client {:?}'s keys",
            e.client_id
        ));
    }
    let reply = Response::parse(e.reply.as_bytes(), REPLY_LIMITS)
        .map_err(|err| format!("the reply is not a response: {err}"))?;
    if keys
        .server
        .verify_hex(&reply.signing_bytes(), &reply.signature)
        .is_err()
    {
        return Err("the reply's signature does not verify with the server's key".to_owned());
    }
    if reply.server_id != keys.server_id || reply.ts_ms != e.at_ms {
        return Err("the reply's server_id or ts_ms differ from the entry's".to_owned());
    }
    if reply.request_id != env.request_id {
        return Err("the reply answers another request_id".to_owned());
    }
    if let Some(binding) = lacre_proto::reply::binding_of(&reply) {
        if binding != lacre_proto::reply::request_digest(e.request.as_bytes()) {
            return Err("the reply is bound to other request bytes".to_owned());
        }
    }
    Ok(())
}

/// Entries read per query.
const PAGE: usize = 1000;

/// Verifies every entry of `store`: `Ok(Err(break))` at the first break.
pub async fn verify_log(
    store: &dyn AuditStore,
    keys: &AuditKeys,
) -> Result<Result<AuditReport, AuditBreak>, StoreError> {
    let mut report = AuditReport::default();
    let mut after: Option<(String, i64)> = None;
    let mut current: Option<ChainSummary> = None;
    loop {
        let page = store
            .entries(&AuditQuery {
                after: after.clone(),
                limit: PAGE,
                ..AuditQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.chain.clone(), last.seq));
        for e in &page {
            let fail = |what: String| AuditBreak {
                chain: e.chain.clone(),
                seq: e.seq,
                what,
            };
            match current.as_mut().filter(|c| c.chain == e.chain) {
                Some(chain) => {
                    if e.seq != chain.last_seq + 1 {
                        return Ok(Err(fail(format!(
                            "entries {} to {} are missing",
                            chain.last_seq + 1,
                            e.seq - 1
                        ))));
                    }
                    if e.prev != chain.head {
                        return Ok(Err(fail(format!(
                            "does not link to entry {} (its prev is not that entry's hash)",
                            chain.last_seq
                        ))));
                    }
                }
                None => {
                    // A chain's first entry links to nothing, unless older
                    // entries were pruned (retention).
                    if e.seq == 1 && e.prev != GENESIS {
                        return Ok(Err(fail(
                            "the chain's first entry links to a predecessor".to_owned(),
                        )));
                    }
                    report.chains.extend(current.take());
                }
            }
            if let Err(what) = check_entry(e, keys) {
                return Ok(Err(fail(what)));
            }
            report.entries += 1;
            match current.as_mut().filter(|c| c.chain == e.chain) {
                Some(chain) => {
                    chain.last_seq = e.seq;
                    chain.head.clone_from(&e.hash);
                }
                None => {
                    current = Some(ChainSummary {
                        chain: e.chain.clone(),
                        first_seq: e.seq,
                        last_seq: e.seq,
                        head: e.hash.clone(),
                    })
                }
            }
        }
    }
    report.chains.extend(current);
    Ok(Ok(report))
}
