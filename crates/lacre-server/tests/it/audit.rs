//! The audit log: a run of calls is logged and re-verifies; one byte
//! changed in a stored request, reply or link breaks it at that entry.

use crate::store_contract::sqlite_url;
use crate::support::{
    envelope, envelope_001, now_ms, unique, CLIENT_SECRET, SERVER_ID, SERVER_SECRET,
};
use lacre_proto::{Envelope, SigningKey};
use lacre_server::audit::verify::{verify_log, AuditKeys};
use lacre_server::audit::{AuditQuery, AuditSettings};
use lacre_server::store::{self, Stores};
use lacre_server::{Server, ToolFilter};
use std::collections::HashMap;
use std::time::Duration;

fn ed_key() -> SigningKey {
    SigningKey::ed25519_from_seed(&[9u8; 32]).unwrap()
}

fn keys() -> AuditKeys {
    AuditKeys {
        server_id: SERVER_ID.into(),
        server: SigningKey::hmac(SERVER_SECRET).unwrap().verifying_key(),
        clients: HashMap::from([
            (
                "client-001".to_owned(),
                vec![SigningKey::hmac(CLIENT_SECRET).unwrap().verifying_key()],
            ),
            ("client-ed".to_owned(), vec![ed_key().verifying_key()]),
        ]),
    }
}

fn server(stores: &Stores) -> Server {
    Server::builder(SERVER_ID, SigningKey::hmac(SERVER_SECRET).unwrap())
        .client(
            "client-001",
            [SigningKey::hmac(CLIENT_SECRET).unwrap().verifying_key()],
            ToolFilter::All,
        )
        .unwrap()
        .client("client-ed", [ed_key().verifying_key()], ToolFilter::All)
        .unwrap()
        .job_store(stores.jobs.clone())
        .nonce_store(stores.nonces.clone())
        .build()
}

/// Runs calls of every kind through a server with the audit log on;
/// returns how many should be logged.
async fn a_run_of_calls(stores: &Stores) -> usize {
    let server = server(stores);
    let writer = server
        .start_audit(stores.audit.clone(), AuditSettings::default())
        .unwrap();
    assert!(server
        .start_audit(stores.audit.clone(), AuditSettings::default())
        .is_err());
    let sum = envelope_001("batch_sum", serde_json::json!({"numbers": [1, 2]}));
    let replies = [
        server.handle(&sum.to_json()).await,
        // A replay: authenticated, refused, logged.
        server.handle(&sum.to_json()).await,
        // Bad arguments: a signed, bound error.
        server
            .handle(&envelope_001("batch_sum", serde_json::json!({"numbers": "x"})).to_json())
            .await,
        server
            .handle(&envelope_001("start_long_task", serde_json::json!({"seconds": 1})).to_json())
            .await,
    ];
    assert!(replies[0].response.ok && !replies[1].response.ok && !replies[2].response.ok);
    // An Ed25519 client: its entry is evidence that it sent the call.
    let mut ed = Envelope {
        request_id: unique("req"),
        ts_ms: now_ms(),
        client_id: "client-ed".into(),
        server_id: SERVER_ID.into(),
        tool: "batch_sum".into(),
        args: crate::support::args_map(serde_json::json!({"numbers": [5]})),
        nonce: unique("nonce"),
        signature: String::new(),
    };
    ed.sign(&ed_key());
    assert!(server.handle(&ed.to_json()).await.response.ok);
    // Not authenticated: not logged (anyone could fill the log).
    let forged = envelope(
        "client-001",
        b"not the secret",
        "batch_sum",
        serde_json::json!({"numbers": [1]}),
    );
    assert!(!server.handle(&forged.to_json()).await.response.ok);
    assert!(!server.handle(b"{not json").await.response.ok);
    writer.finish(Duration::from_secs(5)).await;
    5
}

#[tokio::test]
async fn a_run_of_calls_verifies_on_memory() {
    let stores = store::open("memory").await.unwrap();
    let n = a_run_of_calls(&stores).await;
    let report = verify_log(&*stores.audit, &keys()).await.unwrap().unwrap();
    assert_eq!(report.entries, n as u64);
    assert_eq!(report.chains.len(), 1);
    // Without the Ed25519 client's key, its entry cannot be checked.
    let mut partial = keys();
    partial.clients.remove("client-ed");
    let broken = verify_log(&*stores.audit, &partial)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.seq, 5, "{broken}");
    assert!(broken.what.contains("not in the configuration"), "{broken}");
}

/// One stored field changed with SQL, as someone with the database could.
/// The first `limit` entries of one chain.
async fn entries_of(
    stores: &Stores,
    chain: &str,
    limit: usize,
) -> Vec<lacre_server::audit::AuditEntry> {
    let query = AuditQuery {
        chain: Some(chain.to_owned()),
        limit,
        ..AuditQuery::default()
    };
    stores.audit.entries(&query).await.unwrap()
}

async fn tamper(url: &str, sql: &str) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(url)
        .await
        .unwrap();
    let done = sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
    pool.close().await;
}

#[tokio::test]
async fn one_changed_byte_breaks_the_log_at_its_entry() {
    let (url, _dir) = sqlite_url("audit");
    let stores = store::open(&url).await.unwrap();
    let n = a_run_of_calls(&stores).await;
    // A second process run: a second chain.
    let second = a_run_of_calls(&stores).await;
    let report = verify_log(&*stores.audit, &keys()).await.unwrap().unwrap();
    assert_eq!(report.entries, (n + second) as u64);
    assert_eq!(report.chains.len(), 2);
    let chain = report.chains[0].chain.clone();
    let entries = entries_of(&stores, &chain, 100).await;
    assert_eq!(entries.len(), n);
    assert!(
        entries[0].request.contains("\"numbers\":[1,2]"),
        "{:?}",
        entries[0]
    );
    assert_eq!(entries[0].tool, "batch_sum");
    assert!(
        entries[1].reply.contains("replayed_nonce"),
        "{:?}",
        entries[1]
    );
    let where_ = format!("chain = '{chain}' AND seq = 2");
    let cases: [(String, String, &str); 5] = [
        // A byte of the request (the arguments).
        (
            format!("UPDATE lacre_audit SET request = replace(request, '[1,2]', '[1,3]') WHERE chain = '{chain}' AND seq = 1"),
            format!("UPDATE lacre_audit SET request = replace(request, '[1,3]', '[1,2]') WHERE chain = '{chain}' AND seq = 1"),
            "entry 1: altered",
        ),
        // A byte of the reply.
        (
            format!("UPDATE lacre_audit SET reply = replace(reply, 'replayed_nonce', 'replayed_nonci') WHERE {where_}"),
            format!("UPDATE lacre_audit SET reply = replace(reply, 'replayed_nonci', 'replayed_nonce') WHERE {where_}"),
            "entry 2: altered",
        ),
        // The chain link.
        (
            format!("UPDATE lacre_audit SET prev = (CASE WHEN substr(prev, 1, 1) = '0' THEN '1' ELSE '0' END) || substr(prev, 2) WHERE chain = '{chain}' AND seq = 3"),
            format!("UPDATE lacre_audit SET prev = (SELECT hash FROM lacre_audit WHERE {where_}) WHERE chain = '{chain}' AND seq = 3"),
            "entry 3: does not link to entry 2",
        ),
        // A column the hash does not cover: it must match the request.
        (
            format!("UPDATE lacre_audit SET tool = 'poll_job' WHERE {where_}"),
            format!("UPDATE lacre_audit SET tool = 'batch_sum' WHERE {where_}"),
            "entry 2: its client, tool or request_id columns differ",
        ),
        // The stored hash itself (last: not mended).
        (
            format!("UPDATE lacre_audit SET hash = (CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END) || substr(hash, 2) WHERE chain = '{chain}' AND seq = 4"),
            String::new(),
            "entry 4: altered",
        ),
    ];
    for (break_it, mend, want) in &cases {
        tamper(&url, break_it).await;
        let broken = verify_log(&*stores.audit, &keys())
            .await
            .unwrap()
            .unwrap_err();
        assert!(broken.to_string().contains(want), "{break_it}: {broken}");
        assert!(
            broken.to_string().starts_with(&format!("chain {chain} ")),
            "{broken}"
        );
        if mend.is_empty() {
            break;
        }
        tamper(&url, mend).await;
        verify_log(&*stores.audit, &keys()).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_removed_or_rehashed_entry_is_found() {
    let (url, _dir) = sqlite_url("audit-cut");
    let stores = store::open(&url).await.unwrap();
    a_run_of_calls(&stores).await;
    let chain = verify_log(&*stores.audit, &keys())
        .await
        .unwrap()
        .unwrap()
        .chains[0]
        .chain
        .clone();
    // Someone who rewrites a request and recomputes its hash still cannot
    // sign it: the link to the next entry breaks, and so would the
    // signature.
    let e = &entries_of(&stores, &chain, 1).await[0];
    let mut forged = e.clone();
    forged.request = forged.request.replace("[1,2]", "[1,3]");
    forged.hash = lacre_server::audit::entry_hash(&forged);
    tamper(
        &url,
        &format!(
            "UPDATE lacre_audit SET request = '{}', hash = '{}' WHERE chain = '{chain}' AND seq = 1",
            forged.request, forged.hash
        ),
    )
    .await;
    let broken = verify_log(&*stores.audit, &keys())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.seq, 1, "{broken}");
    assert!(
        broken.what.contains("signature does not verify"),
        "{broken}"
    );
    // An entry deleted from the middle.
    tamper(
        &url,
        &format!("DELETE FROM lacre_audit WHERE chain = '{chain}' AND seq = 3"),
    )
    .await;
    tamper(
        &url,
        &format!("DELETE FROM lacre_audit WHERE chain = '{chain}' AND seq = 1"),
    )
    .await;
    let broken = verify_log(&*stores.audit, &keys())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (broken.seq, broken.what.as_str()),
        (4, "entries 3 to 3 are missing"),
        "{broken}"
    );
}

#[tokio::test]
async fn a_run_of_calls_verifies_on_postgres() {
    let Some(url) = crate::store_contract::pg_url("a_run_of_calls_verifies_on_postgres").await
    else {
        return;
    };
    let stores = store::open(&url).await.unwrap();
    let n = a_run_of_calls(&stores).await + a_run_of_calls(&stores).await;
    let report = verify_log(&*stores.audit, &keys()).await.unwrap().unwrap();
    assert_eq!((report.entries, report.chains.len()), (n as u64, 2));
    // Retention: entries older than the cut are pruned, the rest still verify.
    assert_eq!(
        stores.audit.prune_audit(now_ms() + 60_000).await.unwrap(),
        n as u64
    );
    assert_eq!(
        verify_log(&*stores.audit, &keys())
            .await
            .unwrap()
            .unwrap()
            .entries,
        0
    );
}
